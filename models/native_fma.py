"""The native floating-point route for exact FMA configurations: the golden's bits, at numpy speed.

An exact configuration (`window=None, step=1`, policy round or flush, IEEE subnormals) is a
correctly rounded single-rounding a*b + c, so any computation that provably rounds once gives
its bits:

- every input format here has at most 11 significand bits, so the product of two of them has at
  most 22 and is exact in float64 (whose exponent range covers every product, subnormals too);
- float64 TwoSum gives s + e = p + c exactly; rounding s to odd (its last bit ORed with e != 0)
  keeps 53 >= p_acc + 2 bits and the sticky information, so one RNE or RTZ rounding of that to
  the accumulator format (`formats.encode`) is the correctly rounded result (round-to-odd,
  Boldo & Melquiond 2008);
- round to nearest takes a shorter route: the product in float32 is exact whenever it neither
  underflows past 2**-149 nor overflows (checked per element against the float64 product; the
  rare others take the float64 route). With an fp32 accumulator one float32 addition is then
  the single rounding; with bf16 or fp16 ones, float32 TwoSum rounded to odd (24 >= p + 2 bits)
  and one RNE conversion (ml_dtypes, numpy float16) are.

NaN handling matches the golden: any NaN or invalid operation gives the accumulator format's
canonical quiet NaN. Zero signs follow IEEE round-to-nearest (-0 only when both terms are -0),
as the golden's do; a test holds every route equal to `fma.fma` bit for bit (every fp8 pair, a
million random triples, the corner set). The approximate configurations have no such route.
"""

import functools

import ml_dtypes
import numpy as np

from specmx.models.config import FMAConfig
from specmx.models.formats import check_bits, decode, encode

__all__ = ["has_native_route", "fma_native", "gemm_native", "values_to_acc_bits"]


def has_native_route(cfg: FMAConfig):
    """True when `cfg` rounds exactly once (exact normalization, IEEE subnormals)."""
    return cfg.exact and cfg.subnormals == "ieee"


# numpy types whose float32 -> narrow conversion is one RNE rounding (subnormals, overflow to inf)
_NARROW_DTYPES = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16}


def _f32(cfg):
    """Round-to-nearest configurations keep values in float32 (every accumulator format here
    is a subset of it); round-toward-zero ones in float64."""
    return cfg.rounding == "rne"


def _odd(s, e, int_type):
    """Round-to-odd of the exact s + e (s = fl(x), e = x - s exactly) at s's precision."""
    bits = s.view(int_type)
    toward_zero = (e != 0) & (np.sign(e) != np.sign(s))
    bits = np.where(toward_zero & (s != 0), bits - 1, bits)        # one ulp toward zero
    bits = np.where(e != 0, bits | 1, bits)
    return bits.view(s.dtype)


def _two_sum_odd(p, c):
    """p + c rounded to odd at the precision of p's float type (infinities and NaN pass)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = p + c
        bp = s - c
        e = (p - bp) + (c - (s - bp))                                # TwoSum: s + e = p + c exactly
        finite = np.isfinite(s)
        int_type = np.int64 if s.dtype == np.float64 else np.int32
        zero = s.dtype.type(0)
        return np.where(finite, _odd(np.where(finite, s, zero), np.where(finite, e, zero), int_type), s)


def odd_sum(p, c):
    """p + c rounded to odd at float64 precision (p, c float64; infinities and NaN pass)."""
    return _two_sum_odd(np.asarray(p, np.float64), np.asarray(c, np.float64))


def _narrow32(x, acc):
    """float32 values (rounded to odd, or exact) -> the accumulator format's RNE rounding, as
    float32 values."""
    if acc.name == "fp32":
        return x
    with np.errstate(over="ignore"):
        return x.astype(_NARROW_DTYPES[acc.name]).astype(np.float32)


def values_to_acc_bits(r, cfg: FMAConfig):
    """Accumulator-format values (float32 when rounding to nearest, else float64) -> bit
    patterns, NaNs canonical."""
    acc = cfg.acc_f
    if acc.name == "fp32":
        bits = np.asarray(r, np.float32).view(np.uint32).astype(np.int64)
    elif _f32(cfg):
        bits = np.asarray(r).astype(_NARROW_DTYPES[acc.name]).view(np.uint16).astype(np.int64)
    else:
        bits = encode(np.asarray(r, np.float64), acc, cfg.rounding)
    return np.where(np.isnan(r), acc.canonical_nan, bits)


@functools.lru_cache(maxsize=None)
def _value_table(fmt):
    """The value of every pattern of a <= 16-bit format (decode by table look-up)."""
    return decode(np.arange(1 << fmt.width), fmt)


def _values(bits, fmt):
    """Bit patterns -> float64 values; fp32 words by reinterpretation, narrow ones by table."""
    if fmt.name == "fp32":
        with np.errstate(invalid="ignore"):                      # signalling NaNs stay NaN
            return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    return _value_table(fmt)[bits]


def _step(a64, b64, c, cfg):
    """One multiply-add on values: c holds accumulator values (float32 when rounding to
    nearest, else float64); returns the rounded result in the same dtype."""
    acc = cfg.acc_f
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        p64 = a64 * b64
        if not _f32(cfg):
            return _values(encode(odd_sum(p64, c), acc, cfg.rounding), acc)
        p32 = p64.astype(np.float32)
        out = p32 + c if acc.name == "fp32" else _narrow32(_two_sum_odd(p32, c), acc)
        bad = p32 != p64                                             # inexact product (or NaN)
        if bad.any():
            bad = np.broadcast_to(bad, out.shape)
            p_b = np.broadcast_to(p64, out.shape)[bad]
            c_b = np.broadcast_to(c, out.shape)[bad].astype(np.float64)
            out[bad] = _values(encode(odd_sum(p_b, c_b), acc, "rne"), acc)
        return out


def _acc_values(c_bits, cfg):
    if cfg.acc_f.name == "fp32" and _f32(cfg):
        return c_bits.astype(np.uint32).view(np.float32)
    v = _values(c_bits, cfg.acc_f)
    return v.astype(np.float32) if _f32(cfg) else v


def fma_native(a, b, c, cfg: FMAConfig):
    """`fma.fma(a, b, c, cfg)` for a configuration with a native route, on bit patterns."""
    if not has_native_route(cfg):
        raise ValueError("norm: the native route needs an exact configuration (window=None, step=1, "
                         "policy round or flush, subnormals ieee)")
    a = _values(check_bits(a, cfg.in_f, "a"), cfg.in_f)
    b = _values(check_bits(b, cfg.in_f, "b"), cfg.in_f)
    c = _acc_values(check_bits(c, cfg.acc_f, "c"), cfg)
    a, b, c = np.broadcast_arrays(a, b, c)
    return values_to_acc_bits(_step(a, b, c.copy(), cfg), cfg)


def gemm_native(cfg: FMAConfig, A_bits, B_bits, C0_bits):
    """C = A x B + C0 exactly as `gemm.gemm` computes it (each output element one chain over
    k = 0..K-1 from C0), for a configuration with a native route. A (..., M, K), B (..., K, N),
    C0 broadcastable to (..., M, N): leading dimensions batch independent GEMMs."""
    if not has_native_route(cfg):
        raise ValueError("norm: the native route needs an exact configuration")
    A = _values(check_bits(A_bits, cfg.in_f, "A"), cfg.in_f)
    B = _values(check_bits(B_bits, cfg.in_f, "B"), cfg.in_f)
    if A.shape[-1] != B.shape[-2]:
        raise ValueError(f"B: expected {A.shape[-1]} rows to match A's columns, got {B.shape[-2]}")
    shape = np.broadcast_shapes(A.shape[:-1] + (1,), B.shape[:-2] + (1, B.shape[-1]))
    C = np.array(np.broadcast_to(_acc_values(check_bits(C0_bits, cfg.acc_f, "C0"), cfg), shape))
    for k in range(A.shape[-1]):
        C = _step(A[..., :, k:k + 1], B[..., k:k + 1, :], C, cfg)
    return values_to_acc_bits(C, cfg)
