"""Binary floating-point formats used by specmx, and bit-pattern <-> float64 conversions.

A format is described by its exponent and mantissa widths plus how it spends the top exponent
code (IEEE: infinities and NaNs; OCP FP8 E4M3: no infinity, only S.1111.111 is NaN). All
conversions work on numpy arrays of raw bit patterns (unsigned integers held in int64) so that
golden models stay bit-exact and vectorised.

NaN handling: decoding any NaN pattern gives float64 NaN; encoding NaN gives the format's
canonical quiet NaN (sign 0, top mantissa bit set; E4M3: 0x7F).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["FloatFormat", "FORMATS", "get_format", "decode", "encode"]

OVERFLOW_MODES = ("nan", "saturate")


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format.

    Parameters
    ----------
    name : str
    exp_bits, man_bits : int
        Widths of the exponent and (stored) mantissa fields.
    has_inf : bool
        IEEE-style infinities at the all-ones exponent. False for OCP E4M3, whose all-ones
        exponent holds normal numbers except the single NaN mantissa (all ones).
    """

    name: str
    exp_bits: int
    man_bits: int
    has_inf: bool = True

    @property
    def width(self):
        return 1 + self.exp_bits + self.man_bits

    @property
    def precision(self):
        """Significand bits including the hidden bit."""
        return self.man_bits + 1

    @property
    def bias(self):
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emin(self):
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def exp_max_field(self):
        """Largest exponent field of a finite number."""
        return (1 << self.exp_bits) - (2 if self.has_inf else 1)

    @property
    def max_finite_bits(self):
        """Bit pattern of the largest finite positive number."""
        man = (1 << self.man_bits) - (1 if self.has_inf else 2)
        return (self.exp_max_field << self.man_bits) | man

    @property
    def max_finite(self):
        return float(decode(np.array([self.max_finite_bits]), self)[0])

    @property
    def sign_bit(self):
        return 1 << (self.width - 1)

    @property
    def canonical_nan(self):
        if self.has_inf:
            return (((1 << self.exp_bits) - 1) << self.man_bits) | (1 << (self.man_bits - 1))
        return (1 << (self.width - 1)) - 1

    @property
    def inf_bits(self):
        """Bit pattern of +infinity (None for formats without one)."""
        if not self.has_inf:
            return None
        return ((1 << self.exp_bits) - 1) << self.man_bits


FORMATS = {
    "bf16": FloatFormat("bf16", 8, 7),
    "fp16": FloatFormat("fp16", 5, 10),
    "fp32": FloatFormat("fp32", 8, 23),
    "e4m3": FloatFormat("e4m3", 4, 3, has_inf=False),
    "e5m2": FloatFormat("e5m2", 5, 2),
}


def get_format(name, field="format"):
    """Look a format up by name; a clear ValueError names the field and the allowed values."""
    if isinstance(name, FloatFormat):
        return name
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"{field}: unknown format {name!r}; allowed: {', '.join(FORMATS)}") from None


def check_bits(bits, fmt, field="bits"):
    """Return `bits` as an int64 array, checking every pattern fits the format's width."""
    arr = np.asarray(bits)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{field}: expected an integer array of {fmt.name} bit patterns, "
                         f"got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >> fmt.width):
        raise ValueError(f"{field}: values must be {fmt.width}-bit {fmt.name} patterns "
                         f"(0..{(1 << fmt.width) - 1})")
    return arr


def fields(bits, fmt):
    """Split bit patterns into (sign, exponent field, mantissa field), all int64."""
    bits = np.asarray(bits, dtype=np.int64)
    sign = (bits >> (fmt.width - 1)) & 1
    exp = (bits >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    man = bits & ((1 << fmt.man_bits) - 1)
    return sign, exp, man


def is_nan(bits, fmt):
    _, exp, man = fields(bits, fmt)
    top = exp == (1 << fmt.exp_bits) - 1
    if fmt.has_inf:
        return top & (man != 0)
    return top & (man == (1 << fmt.man_bits) - 1)


def is_inf(bits, fmt):
    if not fmt.has_inf:
        return np.zeros(np.shape(bits), dtype=bool)
    _, exp, man = fields(bits, fmt)
    return (exp == (1 << fmt.exp_bits) - 1) & (man == 0)


def decode(bits, fmt):
    """Bit patterns -> float64 values (exact: every format here fits in float64)."""
    fmt = get_format(fmt)
    sign, exp, man = fields(bits, fmt)
    sig = np.where(exp == 0, man, man | (1 << fmt.man_bits)).astype(np.float64)
    e = np.maximum(exp, 1) - fmt.bias - fmt.man_bits
    val = np.ldexp(sig, e.astype(np.int32))
    val = np.where(is_inf(bits, fmt), np.inf, val)
    val = np.where(is_nan(bits, fmt), np.nan, val)
    return np.where(sign == 1, -val, val)


def encode(values, fmt, rounding="rne", overflow="nan"):
    """float64 values -> bit patterns, correctly rounded once (no double rounding).

    Parameters
    ----------
    rounding : "rne" or "rtz"
    overflow : "nan" or "saturate"
        Only for formats without infinity (E4M3): what a finite value beyond the largest
        finite number becomes (OCP/ml_dtypes behaviour is "nan"; many accelerators "saturate"
        to +-448). Formats with infinity follow IEEE (inf for rne, max finite for rtz).
    """
    fmt = get_format(fmt)
    if rounding not in ("rne", "rtz"):
        raise ValueError(f"rounding: unknown mode {rounding!r}; allowed: rne, rtz")
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow: unknown mode {overflow!r}; allowed: {', '.join(OVERFLOW_MODES)}")
    v = np.asarray(values, dtype=np.float64)
    sign = np.signbit(v).astype(np.int64)
    a = np.abs(v)
    finite = np.isfinite(a)
    safe = np.where(finite & (a > 0), a, 1.0)
    # Exponent of the leading one, clamped to the subnormal range.
    _, e = np.frexp(safe)
    e = np.maximum(e.astype(np.int64) - 1, fmt.emin)
    lsb = e - fmt.man_bits
    # Scaled significand: exact in float64 (power-of-two scaling), split into integer + fraction.
    scaled = np.ldexp(safe, (-lsb).astype(np.int32))
    sig = np.floor(scaled)
    frac = scaled - sig
    sig = sig.astype(np.int64)
    if rounding == "rne":
        up = (frac > 0.5) | ((frac == 0.5) & ((sig & 1) == 1))
        sig = sig + up
    # Pack with the carry trick: exponent field = e + bias - 1 + (hidden bit after rounding).
    packed = ((e + fmt.bias - 1) << fmt.man_bits) + sig
    packed = np.where(a == 0, 0, packed)
    too_big = packed > fmt.max_finite_bits
    if fmt.has_inf:
        big = fmt.inf_bits if rounding == "rne" else fmt.max_finite_bits
    else:
        big = fmt.canonical_nan if overflow == "nan" else fmt.max_finite_bits
    packed = np.where(too_big, big, packed)
    if fmt.has_inf:
        packed = np.where(np.isinf(a), fmt.inf_bits, packed)
    else:
        packed = np.where(np.isinf(a), fmt.canonical_nan if overflow == "nan"
                          else fmt.max_finite_bits, packed)
    packed = packed | (sign << (fmt.width - 1))
    return np.where(np.isnan(v), fmt.canonical_nan, packed).astype(np.int64)
