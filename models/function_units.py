"""Bit-exact model of specmx's nonlinear function units (exp, softplus, sigmoid, silu, rsqrt).

The units take and return fp32 words (the SSM datapath's accumulator format) and compute in
fixed point, the way an FPGA function unit does; `hdl.function_unit` builds the same integer
operations, and the cocotb tests check the two bit for bit. Every function is a few steps:

1. unpack the fp32 input into sign, 24-bit significand m and LSB exponent e (value m * 2**e);
2. range-reduce to fixed point: exp uses t = |x| * log2(e) in Q32 (a 32-bit constant, the
   product truncated), k = floor(t), f = t - k in [0, 1), so exp(x) = 2**k * 2**f;
3. evaluate a piecewise cubic: the top 7 bits of the reduced argument pick one of 128 (or 129,
   or 256) segments, the rest is t in [0, 1) within it, and Horner's rule runs on Q31
   coefficients with each product truncated (arithmetic shift). The coefficients interpolate the
   function at four fixed Chebyshev-like nodes per segment, computed with 50-digit decimals and
   rounded to Q31 once, so every machine builds the same tables;
4. combine in fixed point (products truncated) into a significand M and exponent E;
5. pack M * 2**E into fp32 with one round-to-nearest-even (subnormals kept, overflow to inf).

The algorithms:
  exp(x)      2**k * P2(f), P2 = 2**f on [0, 1) (128 segments).
  sigmoid(x)  u = exp(-|x|) as above; d = 1 + u in Q31; R = P1(d) = 1/d on [1, 2] (129
              segments); x >= 0: R; x < 0: u * R (keeps relative precision for tiny results).
  silu(x)     x * sigmoid(x) (the sigmoid significand truncated to 28 bits first).
  softplus(x) max(x, 0) + log1p(u), u = exp(-|x|), log1p(u) = u * G(u) with G(u) = log1p(u)/u
              on [0, 1] (129 segments), so tiny results keep their relative precision; the sum
              with x >= 0 is done in Q32.
  rsqrt(v)    v = m' * 4**q with m' in [1, 4): P(m') = m'**-0.5 (2 x 128 segments), * 2**-q;
              subnormal v are normalized first.

Special values (stated, tested): NaN in -> canonical NaN out. |x| >= 128 saturates before the
datapath: exp -> +inf / +0, sigmoid -> 1 / +0, silu -> x / -0, softplus -> x / +0 (the exact
results round to these). exp overflows to +inf from x > 88.72 and underflows through the
subnormals to +0. rsqrt: +0 -> +inf, -0 -> -inf, +inf -> +0, negative -> NaN.

Measured error against float64 (bench/function_error.py): see README "Function units".
"""

import numpy as np

from specmx.models.formats import FORMATS, decode, encode

__all__ = ["FUNCTIONS", "fadd_chain", "evaluate", "reference", "unpack", "pack", "horner", "segment_table", "exhaustive_error",
           "Q", "LOG2E_Q31", "SATURATE_EXP"]

from specmx.models.function_tables import (CANONICAL_NAN, FUNCTIONS, LOG2E_Q31, ONE, Q,  # noqa: F401
                                           SATURATE_EXP, TABLES, segment_table)

FP32 = FORMATS["fp32"]


def horner(name, j, t):
    """Piecewise cubic `name` at segment j, position t (t_bits-bit integer): Q31 result.
    q = b3; q = b_i + ((q * t) >> t_bits) for i = 2, 1, 0 (arithmetic shifts: floor)."""
    table = segment_table(name)
    bits = TABLES[name][1]
    q = table[j, 3]
    for i in (2, 1, 0):
        q = table[j, i] + ((q * t) >> bits)
    return q


# --- fp32 in, fp32 out --------------------------------------------------------------------------

def unpack(bits):
    """fp32 words -> (sign, significand m (hidden bit included), LSB exponent e, biased exponent
    field, mantissa field); finite value = (-1)**sign * m * 2**e."""
    bits = np.asarray(bits, dtype=np.int64)
    sign = (bits >> 31) & 1
    field = (bits >> 23) & 0xFF
    man = bits & 0x7FFFFF
    m = np.where(field == 0, man, man | (1 << 23))
    e = np.maximum(field, 1) - 150
    return sign, m, e, field, man


def pack(sign, M, E):
    """(-1)**sign * M * 2**E (M < 2**53 non-negative integer) -> fp32 word, one RNE rounding."""
    M = np.asarray(M, dtype=np.int64)
    if M.size and M.max() >= 1 << 53:
        raise ValueError("pack: significand wider than 53 bits")
    val = np.ldexp(M.astype(np.float64), np.asarray(E, dtype=np.int64).astype(np.int32))
    return encode(np.where(sign == 1, -val, val), FP32) | (np.asarray(sign, dtype=np.int64) << 31)


def _shift(x, s):
    """x * 2**s truncated (s may be negative; right shifts clipped at 63)."""
    return np.where(s >= 0, x << np.clip(s, 0, 63), x >> np.clip(-s, 0, 63))


def exp_core(m, e, negative):
    """exp(+-m * 2**e) for |x| < 128: (k, Mu) with value Mu * 2**(k - 31), Mu in Q31 [1, 2)."""
    T = (m * LOG2E_Q31) >> np.clip(-(e + 1), 0, 63)        # |x| * log2(e) in Q32 (e <= -17)
    t = np.where(negative, -T, T)
    k = t >> 32
    f = t & 0xFFFFFFFF
    return k, horner("exp2", f >> 25, f & ((1 << 25) - 1))


def _sigmoid_parts(sign, m, e):
    """sigmoid as (M, E) with value M * 2**E, plus u = exp(-|x|) as (k, Mu)."""
    k, Mu = exp_core(m, e, True)
    U = Mu >> np.clip(-k, 0, 63)                             # u in Q31, in [0, 2**31]
    R = horner("recip", U >> 24, U & ((1 << 24) - 1))        # 1 / (1 + u), Q31
    tiny = ((Mu >> 1) * R) >> 30                             # u * R, value tiny * 2**(k - 31)
    return np.where(sign == 1, tiny, R), np.where(sign == 1, k - 31, -31), k, Mu


def evaluate(name, bits):
    """Function unit `name` on fp32 words `bits` (array): fp32 result words (int64)."""
    if name not in FUNCTIONS:
        raise ValueError(f"unit: unknown function {name!r}; allowed: {', '.join(FUNCTIONS)}")
    bits = np.asarray(bits, dtype=np.int64)
    sign, m, e, field, man = unpack(bits)
    nan = (field == 255) & (man != 0)
    big = (field >= SATURATE_EXP) & (name != "rsqrt")        # |x| >= 128, or inf
    m = np.where(big, 0, m)                                  # the datapath runs on zero there
    pos_big = big & (sign == 0)
    neg_big = big & (sign == 1)
    if name == "exp":
        k, Mu = exp_core(m, e, sign == 1)
        out = pack(np.zeros_like(sign), Mu, k - 31)
        out = np.where(pos_big, FP32.inf_bits, np.where(neg_big, 0, out))
    elif name == "sigmoid":
        M, E, _, _ = _sigmoid_parts(sign, m, e)
        out = pack(np.zeros_like(sign), M, E)
        out = np.where(pos_big, ONE, np.where(neg_big, 0, out))
    elif name == "silu":
        M, E, _, _ = _sigmoid_parts(sign, m, e)
        out = pack(sign, m * (M >> 4), e + E + 4)
        out = np.where(pos_big, bits, np.where(neg_big, 1 << 31, out))
    elif name == "softplus":
        k, Mu = exp_core(m, e, True)
        U = Mu >> np.clip(-k, 0, 63)
        G = horner("log1p_ratio", U >> 24, U & ((1 << 24) - 1))
        L = ((Mu >> 1) * G) >> 30                              # log1p(u), value L * 2**(k - 31)
        S = _shift(m, e + 32) + ((L << 1) >> np.clip(-k, 0, 63))   # x + log1p(u) in Q32
        zero = np.zeros_like(sign)
        out = np.where(sign == 1, pack(zero, L, k - 31), pack(zero, S, np.full_like(k, -32)))
        out = np.where(pos_big, bits, np.where(neg_big, 0, out))
    else:   # rsqrt
        lz = np.where(m == 0, 0, 24 - _bit_length(m))
        mn = m << lz
        e2 = e - lz + 23                                     # exponent of the leading one
        odd = e2 & 1
        R = horner("rsqrt", (odd << 7) | ((mn >> 16) & 127), mn & 0xFFFF)
        out = pack(np.zeros_like(sign), R, -31 - ((e2 - odd) >> 1))
        zero = (field == 0) & (man == 0)
        inf = (field == 255) & (man == 0)
        out = np.where(zero, FP32.inf_bits | (sign << 31), out)
        out = np.where(inf & (sign == 0), 0, out)
        out = np.where((sign == 1) & ~zero, CANONICAL_NAN, out)
    return np.where(nan, CANONICAL_NAN, out).astype(np.int64)


def _bit_length(x):
    """Bit length of non-negative int64 values below 2**53."""
    _, exp = np.frexp(x.astype(np.float64))
    return exp.astype(np.int64)


# --- float64 references ---------------------------------------------------------------------------

def reference(name, x):
    """The exact function in float64 (for error measurement); x float64 array."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        u = np.exp(-np.abs(x))
        sig = np.where(x >= 0, 1 / (1 + u), u / (1 + u))
        if name == "exp":
            return np.exp(x)
        if name == "sigmoid":
            return sig
        if name == "silu":
            return np.where(np.isinf(x), np.where(x > 0, x, -0.0), x * sig)
        if name == "softplus":
            return np.where(np.isinf(x), np.where(x > 0, x, 0.0), np.maximum(x, 0) + np.log1p(u))
        if name == "rsqrt":
            return np.where(x == 0, np.copysign(np.inf, x), 1 / np.sqrt(x))
    raise ValueError(f"unit: unknown function {name!r}; allowed: {', '.join(FUNCTIONS)}")


def ulp_error(name, bits, fmt="fp32"):
    """|unit(x) - f(x)| in units in the last place of `fmt` at f(x), with the unit's result
    rounded (RNE) to `fmt` first; inputs whose exact result overflows `fmt` or is NaN are left
    out (their special results are checked separately). Returns a float64 array (NaN: left out)."""
    fmt = FORMATS[fmt]
    got = decode(evaluate(name, bits), FP32)
    if fmt is not FP32:
        got = decode(encode(got, fmt), fmt)
    ref = reference(name, decode(bits, FP32))
    finite = np.isfinite(ref) & (np.abs(ref) <= fmt.max_finite)
    safe = np.where(finite & (ref != 0), np.abs(ref), 1.0)
    _, ex = np.frexp(safe)
    ulp = np.ldexp(1.0, np.maximum(ex - 1, fmt.emin) - fmt.man_bits)
    with np.errstate(invalid="ignore"):
        err = np.abs(got - ref) / ulp
    return np.where(finite, err, np.nan)


def exhaustive_error(name, chunk=1 << 20, progress=None):
    """`ulp_error` over every fp32 pattern (2^32 inputs, in chunks): max and mean ulp and how
    many inputs were measured. `progress(done_fraction, max_so_far)` is called every 1/16."""
    worst, total, count = 0.0, 0.0, 0
    for start in range(0, 1 << 32, chunk):
        err = ulp_error(name, np.arange(start, start + chunk, dtype=np.int64))
        finite = err[~np.isnan(err)]
        if finite.size:
            worst, total, count = max(worst, float(finite.max())), total + float(finite.sum()), count + finite.size
        if progress and ((start + chunk) * 16) % (1 << 32) == 0:
            progress((start + chunk) / 2 ** 32, worst)
    return {"max_ulp": worst, "mean_ulp": total / count, "measured": count}


def fadd_chain(words):
    """The engine's fp32 add chain (`hdl.fadd.FAddChain`): words [..., k] fp32 bit patterns ->
    ((w0 + w1) + w2) + ... as numpy float32 additions (IEEE binary32, round to nearest even,
    subnormals kept), any NaN result as the canonical quiet NaN 0x7FC00000. Returns int64 words."""
    w = np.asarray(words, dtype=np.int64)
    f = w.astype(np.uint32).view(np.float32)
    acc = f[..., 0].copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, w.shape[-1]):
            acc = (acc + f[..., k]).astype(np.float32)
    out = acc.view(np.uint32).astype(np.int64)
    return np.where(np.isnan(acc), CANONICAL_NAN, out)
