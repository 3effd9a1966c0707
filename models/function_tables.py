"""The constants and coefficient tables of specmx's function units: shared by the golden model
(`models.function_units`) and the RTL (`hdl.function_unit`), which therefore never imports the
golden model itself. Each table is a piecewise cubic per segment, interpolating the function at
four fixed Chebyshev-like nodes, computed with 50-digit decimals and rounded to Q31 once, so
every machine builds the same tables."""

import functools
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from specmx.models.formats import FORMATS

__all__ = ["FUNCTIONS", "TABLES", "segment_table", "Q", "LOG2E_Q31", "SATURATE_EXP", "CANONICAL_NAN", "ONE"]

FP32 = FORMATS["fp32"]
FUNCTIONS = ("exp", "softplus", "sigmoid", "silu", "rsqrt")
Q = 31                               # fraction bits of coefficients and fixed-point values
SEG_BITS = 7                         # segment index bits (128 segments per octave)
LOG2E_Q31 = 3098164010               # round(log2(e) * 2**31), 32 bits
SATURATE_EXP = 127 + 7               # biased exponent field of 128.0: |x| >= 128 saturates
CANONICAL_NAN = FP32.canonical_nan
ONE = 0x3F800000

# Interpolation nodes in [0, 1): Chebyshev nodes of degree 4, rounded to four decimals.
_NODES = [Fraction(381, 10000), Fraction(3087, 10000), Fraction(6913, 10000), Fraction(9619, 10000)]


# --- coefficient tables ------------------------------------------------------------------------

def _ln2():
    return Decimal(2).ln()


# Each table: (number of segments, t bits, segment -> (x0, H), f(x) in Decimal).
def _exp2_segment(j):
    return Fraction(j, 128), Fraction(1, 128)


def _recip_segment(j):             # d in [1, 2] (segment 128 holds d = 2 exactly)
    return 1 + Fraction(j, 128), Fraction(1, 128)


def _log1p_ratio_segment(j):       # u in [0, 1]
    return Fraction(j, 128), Fraction(1, 128)


def _rsqrt_segment(j):             # segments 0..127: [1, 2); 128..255: [2, 4)
    scale = 2 if j >= 128 else 1
    return scale * (1 + Fraction(j % 128, 128)), Fraction(scale, 128)


def _log1p_ratio(x):
    return (1 + x).ln() / x if x != 0 else Decimal(1)


TABLES = {
    # name: (segments, t bits, segment, function on Decimal)
    "exp2": (128, 25, _exp2_segment, lambda x: (x * _ln2()).exp()),
    "recip": (129, 24, _recip_segment, lambda x: 1 / x),
    "log1p_ratio": (129, 24, _log1p_ratio_segment, _log1p_ratio),
    "rsqrt": (256, 16, _rsqrt_segment, lambda x: 1 / x.sqrt()),
}


def _dec(frac):
    return Decimal(frac.numerator) / Decimal(frac.denominator)


@functools.lru_cache(maxsize=None)
def _basis():
    """Coefficients (power basis in t) of the four Lagrange polynomials on _NODES, exact."""
    rows = []
    for i, ti in enumerate(_NODES):
        poly = [Fraction(1)]
        denom = Fraction(1)
        for k, tk in enumerate(_NODES):
            if k == i:
                continue
            poly = [a - tk * b for a, b in zip([Fraction(0)] + poly, poly + [Fraction(0)])]
            denom *= ti - tk
        rows.append([c / denom for c in poly])
    return rows     # rows[i][p]: coefficient of t**p in L_i(t)


@functools.lru_cache(maxsize=None)
def segment_table(name):
    """int64 array [segments, 4] of Q31 coefficients b0..b3 of each segment's cubic in t."""
    segments, _, segment, func = TABLES[name]
    table = np.zeros((segments, 4), dtype=np.int64)
    with localcontext() as ctx:
        ctx.prec = 50
        basis = [[_dec(c) for c in row] for row in _basis()]
        scale = Decimal(1 << Q)
        for j in range(segments):
            x0, h = segment(j)
            ys = [func(_dec(x0 + t * h)) for t in _NODES]
            for p in range(4):
                coef = sum(ys[i] * basis[i][p] for i in range(4))
                table[j, p] = int((coef * scale).to_integral_value())   # round half even
    return table
