"""Independent single-rounding FMA oracle (gmpy2/MPFR), element by element.

Deliberately naive: one MPFR context per accumulator format with the format's precision,
exponent range and subnormalization; no shared code with the golden model except the
bit-pattern <-> float64 conversions of `specmx.models.formats` (themselves checked against
ml_dtypes in test_formats.py).
"""

import gmpy2
import numpy as np

from specmx.models.formats import decode, encode, get_format


def _context(fmt, rounding):
    ctx = gmpy2.ieee(64)
    ctx.precision = fmt.precision
    ctx.emax = fmt.bias + 1
    ctx.emin = fmt.emin - fmt.man_bits + 1
    ctx.subnormalize = True
    ctx.round = gmpy2.RoundToNearest if rounding == "rne" else gmpy2.RoundToZero
    return ctx


def oracle_fma(a_bits, b_bits, c_bits, in_fmt, acc_fmt, rounding="rne", subnormals="ieee", b_fmt=None):
    """Correctly rounded a*b+c as accumulator bit patterns (canonical NaN for any NaN); b is in
    `b_fmt` (default: in_fmt)."""
    fin, fac = get_format(in_fmt), get_format(acc_fmt)
    fb = get_format(b_fmt or in_fmt)
    av, bv, cv = decode(a_bits, fin), decode(b_bits, fb), decode(c_bits, fac)
    if subnormals == "flush":
        av = np.where(np.abs(av) < 2.0 ** fin.emin, np.copysign(0.0, av), av)
        bv = np.where(np.abs(bv) < 2.0 ** fb.emin, np.copysign(0.0, bv), bv)
        cv = np.where(np.abs(cv) < 2.0 ** fac.emin, np.copysign(0.0, cv), cv)
    ctx = _context(fac, rounding)
    out = np.empty(np.broadcast(av, bv, cv).shape, dtype=np.float64)
    with gmpy2.context(ctx):
        for i, (x, y, z) in enumerate(zip(*np.broadcast_arrays(av, bv, cv))):
            r = gmpy2.fma(gmpy2.mpfr(float(x)), gmpy2.mpfr(float(y)), gmpy2.mpfr(float(z)))
            out[i] = float(r)
    if subnormals == "flush":
        out = np.where(np.abs(out) < 2.0 ** fac.emin, np.copysign(0.0, out), out)
    # The result is representable, so encode() does no rounding (rtz keeps max finite on overflow).
    bits = encode(out, fac, rounding=rounding)
    if rounding == "rtz":
        # MPFR rounds an overflow to zero as the largest finite number; encode agrees, but an
        # inf produced from inf operands must stay inf.
        pass
    return bits
