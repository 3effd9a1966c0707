"""Bit-exact golden model of specmx's floating-point multiply-add r = a*b + c.

The model follows the RTL datapath step by step so that the two agree bit for bit, and in exact
mode it equals a correctly rounded single-rounding FMA (checked against gmpy2 in the tests):

1. unpack   a, b (input format) and c (accumulator word) into sign, integer significand and
            the exponent of its least significant bit;
2. multiply the significands exactly (2*p_in bits);
3. align    both terms into one `sum_width`-bit register anchored at the larger top exponent T;
            the lower term is shifted right and every bit shifted out is ORed into the LSB
            (sticky).  `sum_width = 2*p_in + p_c + 2` is wide enough that truncation only ever
            happens at least two bits below the final rounding position, which is what makes
            the single sticky bit sufficient for correct rounding;
4. add      the signed terms;
5. normalize: shift left by the leading-zero count (exact), or by the approximate count
            (`window`, `step`), clamped so results stop at the subnormal boundary;
6. round    the top p bits (rne or rtz) and pack.

Approximate normalization (specmx's own design space, see README):
  window W  the leading-zero detector sees only the top W bits of the sum;
  step   G  the normalizing shifter only shifts by multiples of G;
  policy    what a sum that is left unnormalized becomes:
            "round"    rounded at the fixed position (fewer significant bits), written as IEEE;
            "flush"    replaced by zero of the sum's sign;
            "internal" kept unnormalized in the internal accumulator word (explicit leading bit,
                       p_acc + G - 1 significand bits, exponent 2 bits wider than the
                       accumulator's, no subnormals), for chaining PEs with one exact
                       `normalize` at the array edge.
`window=None, step=1` is exact normalization; with policy round/flush it reproduces exact mode
bit for bit.

NaN handling: any NaN operand or invalid operation (inf*0, inf-inf) gives the result format's
canonical quiet NaN, so results compare bit-exactly including NaNs.
Zero sign: an exact zero sum is +0 unless both terms are -0 (IEEE, round to nearest / to zero).
"""

import functools
import numpy as np

# The config objects live in `config` (RTL imports them without the golden model); they are
# re-exported here, where users have always imported them.
from specmx.models.config import (ACC_FORMATS, IN_FORMATS, NORM_POLICIES, ROUNDINGS,
                                  SUBNORMAL_MODES, FMAConfig, InternalFormat, WideView)
from specmx.models.formats import check_bits, decode, encode

__all__ = ["FMAConfig", "InternalFormat", "fma", "fma_wide", "to_internal", "normalize", "acc_decode",
           "NORM_POLICIES", "ROUNDINGS", "SUBNORMAL_MODES", "IN_FORMATS", "ACC_FORMATS"]


# --- unpacking --------------------------------------------------------------------------------

def _unpack_ieee(bits, fmt, daz):
    """Sign, integer significand, exponent of its LSB and class (finite/inf/NaN) of IEEE words."""
    sign = bits >> (fmt.width - 1)
    exp = (bits >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    man = bits & ((1 << fmt.man_bits) - 1)
    normal = exp != 0
    sig = (man | (normal.astype(np.int64) << fmt.man_bits)) if not daz else \
        np.where(normal, man | (1 << fmt.man_bits), 0)
    lsb_exp = np.maximum(exp, 1) - (fmt.bias + fmt.man_bits)
    if fmt.has_inf:
        top = exp == (1 << fmt.exp_bits) - 1
        cls = np.where(top, np.where(man == 0, _INF, _NAN), _FINITE)
    else:
        cls = np.where((bits & (fmt.sign_bit - 1)) == fmt.sign_bit - 1, _NAN, _FINITE)
    sig = np.where(cls == _FINITE, sig, 0)
    return sign, sig, lsb_exp, cls


@functools.lru_cache(maxsize=None)
def _unpack_table(fmt, daz):
    """_unpack_ieee of every pattern of a <= 16-bit format, for table look-up."""
    return _unpack_ieee(np.arange(1 << fmt.width, dtype=np.int64), fmt, daz)


def _unpack_in(bits, fmt, daz):
    """Unpack multiplicands by table look-up (their formats are at most 16 bits wide)."""
    sign, sig, lsb_exp, cls = _unpack_table(fmt, daz)
    return sign[bits], sig[bits], lsb_exp[bits], cls[bits]


def _unpack_internal(bits, ifmt):
    sign = bits >> (ifmt.width - 1)
    exp = (bits >> ifmt.sig_bits) & ifmt.exp_all_ones
    sig = bits & ((1 << ifmt.sig_bits) - 1)
    cls = np.where(exp == ifmt.exp_all_ones, np.where(sig == 0, _INF, _NAN), _FINITE)
    sig = np.where(cls == _FINITE, sig, 0)
    lsb_exp = exp - ifmt.bias - (ifmt.sig_bits - 1)
    return sign, sig, lsb_exp, cls


def _bit_length(x):
    """Bit length of non-negative int64 values (0 for 0), vectorised. float64 rounding can
    carry a value above 2**53 up to the next power of two; the shift test takes that back."""
    _, e = np.frexp(x.astype(np.float64))
    e = e.astype(np.int64)
    return e - ((x >> np.maximum(e - 1, 0)) == 0) * (x > 0)


def _align(x, width, top, anchor, sum_width):
    """Place x (`width` bits, container top exponent `top`) in the sum register anchored at
    exponent `anchor`, ORing every bit shifted out into the LSB (sticky)."""
    shift = np.clip(anchor - top, 0, 62)
    placed = x << (sum_width - width)
    kept = placed >> shift
    return kept | ((kept << shift) != placed)


# --- the multiply-add -------------------------------------------------------------------------

CHUNK = 8192   # elements per vectorised block: temporaries stay in cache (several times faster)


def fma(a, b, c, cfg: FMAConfig):
    """r = a*b + c on raw bit patterns, vectorised over (broadcastable) numpy arrays.

    a, b are `cfg.in_fmt` patterns; c and the result are accumulator words (`cfg.acc_fmt`
    IEEE patterns, or internal words when `cfg.policy == "internal"`). Returns int64 patterns
    of the broadcast shape.
    """
    a, b, c, shape = flat_operands(a, b, c, cfg)
    out = np.empty(a.size, dtype=np.int64)
    for i in range(0, a.size, CHUNK):
        s = slice(i, i + CHUNK)
        out[s] = _fma_block(a[s], b[s], c[s], cfg)
    return out.reshape(shape)


def flat_operands(a, b, c, cfg: FMAConfig):
    """Checked, broadcast, flattened int64 operands of `fma` and their broadcast shape."""
    a = check_bits(a, cfg.in_f, "a")
    b = check_bits(b, cfg.in_f, "b")
    c = check_bits(c, _acc_word(cfg), "c")
    a, b, c = np.broadcast_arrays(a, b, c)
    return (*(np.ascontiguousarray(x).reshape(-1) for x in (a, b, c)), a.shape)


def fma_wide(a, b, c, cfg: FMAConfig):
    """r = a*b + c with a in `cfg.in_fmt` and b, c, r in `cfg.acc_fmt` (IEEE words): the
    multiply-add of the SSM datapath whose multiplicand is a state or accumulator word (h * dA,
    C * h, x * rsqrt). Same datapath and normalization knobs as `fma`, one rounding."""
    if cfg.internal:
        raise ValueError("policy: fma_wide takes IEEE accumulator words; allowed: round, flush")
    a = check_bits(a, cfg.in_f, "a")
    b = check_bits(b, cfg.acc_f, "b")
    c = check_bits(c, cfg.acc_f, "c")
    a, b, c = np.broadcast_arrays(a, b, c)
    shape = a.shape
    a, b, c = (np.ascontiguousarray(x).reshape(-1) for x in (a, b, c))
    out = np.empty(a.size, dtype=np.int64)
    view = WideView(cfg)
    for i in range(0, a.size, CHUNK):
        s = slice(i, i + CHUNK)
        out[s] = _fma_block(a[s], b[s], c[s], view)
    return out.reshape(shape)


def _acc_word(cfg):
    return _WordWidth(cfg.int_f.width, "internal") if cfg.internal else cfg.acc_f


def _fma_block(a, b, c, cfg):
    """The datapath on one block of equal-length 1-D int64 arrays."""
    in_f, acc_f = cfg.in_f, cfg.acc_f
    daz = cfg.subnormals == "flush"
    sa, sig_a, ea, cls_a = _unpack_in(a, in_f, daz)
    b_f = getattr(cfg, "b_f", in_f)
    sb, sig_b, eb, cls_b = _unpack_in(b, b_f, daz) if b_f.width <= 16 else _unpack_ieee(b, b_f, daz)
    if cfg.internal:
        sc, sig_c, ec, cls_c = _unpack_internal(c, cfg.int_f)
    else:
        sc, sig_c, ec, cls_c = _unpack_ieee(c, acc_f, daz)
    sp = sa ^ sb

    # Exact product and alignment around the larger container top.
    W = cfg.sum_width
    prod = sig_a * sig_b
    top_p = ea + eb + cfg.prod_width
    top_c = ec + cfg.c_width
    anchor = np.where(prod == 0, top_c, np.where(sig_c == 0, top_p, np.maximum(top_p, top_c)))
    if not cfg.internal:
        # Results stop at the subnormal boundary: never shift the top below emin.
        anchor = np.maximum(anchor, acc_f.emin)
    pa = _align(prod, cfg.prod_width, top_p, anchor, W)
    ca = _align(sig_c, cfg.c_width, top_c, anchor, W)
    total = np.where(sp == 1, -pa, pa) + np.where(sc == 1, -ca, ca)
    neg = (total < 0).astype(np.int64)
    mag = np.abs(total)
    zero_sum = mag == 0

    # Normalization: exact or approximate left shift (register bit W has exponent `anchor`).
    lz = W + 1 - _bit_length(mag)
    G = cfg.step
    limit = lz if cfg.internal else np.minimum(lz, anchor - acc_f.emin)
    if cfg.window is None and G == 1:
        shift = limit
    else:
        shift = G * np.minimum(np.minimum(lz, cfg.lzd_window) // G, limit // G)
    norm = mag << shift
    top_exp = anchor - shift

    # Round the top p bits.
    p = cfg.c_width
    sig = norm >> (W + 1 - p)
    if cfg.rounding == "rne":
        round_bit = (norm >> (W - p)) & 1
        sticky = (norm & ((np.int64(1) << (W - p)) - 1)) != 0
        sig = sig + (round_bit & (sticky | (sig & 1)))

    zero_sign = sp & sc   # exact zero: -0 only when both terms are -0
    if cfg.internal:
        out = _pack_internal(cfg.int_f, neg, sig, top_exp, zero_sum, zero_sign)
        word = cfg.int_f
    else:
        if shift is not limit:
            if cfg.policy == "flush":
                sig = np.where(limit > shift, 0, sig)
            else:
                # "round": the value sig * 2**(top_exp-p+1) has <= p significant bits; bring its
                # leading one to the top (or to the subnormal boundary) to write it as IEEE.
                up = np.clip(np.minimum(p - _bit_length(sig), top_exp - acc_f.emin), 0, None)
                sig = sig << up
                top_exp = top_exp - up
        out = _pack_ieee(acc_f, neg, sig, top_exp, cfg.rounding)
        out = np.where(zero_sum, zero_sign << (acc_f.width - 1), out)
        if daz:
            out = np.where((out >> acc_f.man_bits) & ((1 << acc_f.exp_bits) - 1) == 0,
                           out & acc_f.sign_bit, out)
        word = acc_f

    special = (cls_a | cls_b | cls_c) != 0
    if special.any():
        out = _apply_specials(out, word, sp, sc, sig_a, sig_b, cls_a, cls_b, cls_c)
    return out


_FINITE, _INF, _NAN = 0, 1, 2


def _apply_specials(out, word, sp, sc, sig_a, sig_b, cls_a, cls_b, cls_c):
    """Overwrite results of NaN/infinity cases (IEEE 754 rules, canonical NaN)."""
    inf_a, inf_b, inf_c = cls_a == _INF, cls_b == _INF, cls_c == _INF
    zero_a = (sig_a == 0) & (cls_a == _FINITE)
    zero_b = (sig_b == 0) & (cls_b == _FINITE)
    prod_inf = inf_a | inf_b
    nan = ((cls_a == _NAN) | (cls_b == _NAN) | (cls_c == _NAN) | (inf_a & zero_b)
           | (zero_a & inf_b) | (prod_inf & inf_c & (sp != sc)))
    inf_sign = np.where(prod_inf, sp, sc)
    out = np.where(prod_inf | inf_c, word.inf_bits | (inf_sign << (word.width - 1)), out)
    return np.where(nan, word.canonical_nan, out)


def _pack_ieee(fmt, neg, sig, top_exp, rounding):
    """Pack a rounded significand whose leading one is at bit p-1 (or p after a rounding carry,
    or lower only at the subnormal boundary top_exp == emin).

    The exponent field is added rather than ORed, so a carry out of the significand (or a
    subnormal rounding up to the smallest normal) increments the exponent by itself.
    """
    packed = np.where(sig == 0, 0, ((top_exp + fmt.bias - 1) << fmt.man_bits) + sig)
    big = fmt.inf_bits if rounding == "rne" else fmt.max_finite_bits
    packed = np.where(packed > fmt.max_finite_bits, big, packed)
    return packed | (neg << (fmt.width - 1))


def _pack_internal(ifmt, neg, sig, top_exp, zero_sum, zero_sign):
    """Pack a rounded significand (sig_bits wide, may have carried out) into internal words."""
    carry = sig >> ifmt.sig_bits
    sig = np.where(carry == 1, sig >> 1, sig)
    exp = top_exp + carry + ifmt.bias
    sign_shift = ifmt.width - 1
    out = (neg << sign_shift) | (exp << ifmt.sig_bits) | sig
    out = np.where(exp >= ifmt.exp_all_ones, (neg << sign_shift) | ifmt.inf_bits, out)
    underflow = (exp <= 0) | (sig == 0)
    out = np.where(underflow, neg << sign_shift, out)
    return np.where(zero_sum, zero_sign << sign_shift, out)


class _WordWidth:
    """Duck-typed stand-in for a format in `check_bits` (only width and name are read)."""

    def __init__(self, width, name):
        self.width = width
        self.name = name


# --- internal <-> IEEE accumulator words -------------------------------------------------------

def acc_decode(bits, cfg: FMAConfig):
    """Accumulator words (IEEE or internal, per cfg) -> float64 values (exact)."""
    if not cfg.internal:
        return decode(bits, cfg.acc_f)
    ifmt = cfg.int_f
    sign, sig, lsb_exp, cls = _unpack_internal(bits, ifmt)
    val = np.ldexp(sig.astype(np.float64), lsb_exp.astype(np.int32))
    val = np.where(cls == _INF, np.inf, np.where(cls == _NAN, np.nan, val))
    return np.where(sign == 1, -val, val)


def to_internal(bits, cfg: FMAConfig):
    """IEEE accumulator patterns -> internal words (exact; subnormals keep leading zeros)."""
    acc_f, ifmt = cfg.acc_f, cfg.int_f
    bits = check_bits(bits, acc_f, "c")
    sign, sig, lsb_exp, cls = _unpack_ieee(bits, acc_f, cfg.subnormals == "flush")
    sig = sig << (ifmt.sig_bits - acc_f.precision)
    exp = lsb_exp + acc_f.man_bits + ifmt.bias
    out = (sign << (ifmt.width - 1)) | np.where(sig == 0, 0, (exp << ifmt.sig_bits) | sig)
    out = np.where(cls == _INF, (sign << (ifmt.width - 1)) | ifmt.inf_bits, out)
    return np.where(cls == _NAN, ifmt.canonical_nan, out)


def normalize(bits, cfg: FMAConfig):
    """Internal words -> IEEE accumulator patterns: the exact normalizer at the array edge
    (leading-zero count, full shift, one rounding with cfg.rounding, subnormals per cfg)."""
    val = acc_decode(check_bits(bits, _WordWidth(cfg.int_f.width, "internal"), "r"), cfg)
    out = encode(val, cfg.acc_f, rounding=cfg.rounding)
    acc_f = cfg.acc_f
    if cfg.subnormals == "flush":
        out = np.where(((out >> acc_f.man_bits) & ((1 << acc_f.exp_bits) - 1)) == 0,
                       out & acc_f.sign_bit, out)
    return out
