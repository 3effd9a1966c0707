"""Test-vector sets for the FMA: directed corner cases plus random mixes (plain numpy).

Random bit patterns alone almost never exercise cancellation or rounding ties, so the random
part mixes four populations: uniform bit patterns, same-magnitude normals, near cancellation
(c close to -a*b) and far-apart exponents (sticky paths).
"""

import numpy as np

from specmx.models.fma import FMAConfig, fma, to_internal
from specmx.models.formats import decode, encode

__all__ = ["corner_values", "fma_vectors", "wide_vectors"]


def corner_values(fmt):
    """Bit patterns of a format's special and boundary values, both signs."""
    m = fmt.man_bits
    pos = {0, 1, 2, (1 << m) - 1, 1 << m, (1 << m) | 1, fmt.max_finite_bits,
           fmt.max_finite_bits - 1, fmt.bias << m, (fmt.bias << m) | 1, ((fmt.bias - 1) << m) | ((1 << m) - 1),
           fmt.canonical_nan}
    if fmt.inf_bits is not None:
        pos |= {fmt.inf_bits, fmt.inf_bits | 1}
    pos = np.array(sorted(pos), dtype=np.int64)
    return np.concatenate([pos, pos | fmt.sign_bit])


def fma_vectors(cfg: FMAConfig, n, seed=0):
    """(a, b, c) int64 arrays: every corner combination first (a x b x c corners, sampled if
    more than n/4), then a random mix up to n vectors. c is an accumulator word for cfg."""
    rng = np.random.default_rng(seed)
    fin, fac = cfg.in_f, cfg.acc_f
    ca, cc = corner_values(fin), corner_values(fac)
    grid = np.array(np.meshgrid(ca, ca, cc, indexing="ij")).reshape(3, -1)
    if grid.shape[1] > n // 4:
        grid = grid[:, rng.choice(grid.shape[1], n // 4, replace=False)]
    k = n - grid.shape[1]
    parts = [grid]
    q = k // 4
    # 1. uniform bit patterns
    parts.append(np.stack([rng.integers(0, 1 << fin.width, q), rng.integers(0, 1 << fin.width, q),
                           rng.integers(0, 1 << fac.width, q)]))
    # 2. same-magnitude normal values
    a = encode(rng.standard_normal(q), fin)
    b = encode(rng.standard_normal(q), fin)
    c = encode(rng.standard_normal(q) * 2.0 ** rng.integers(-3, 4, q), fac)
    parts.append(np.stack([a, b, c]))
    # 3. near cancellation: c = -(a*b) rounded, then nudged by a few ulps
    a = encode(rng.standard_normal(q), fin)
    b = encode(rng.standard_normal(q), fin)
    with np.errstate(invalid="ignore", over="ignore"):
        c = encode(-(decode(a, fin) * decode(b, fin)), fac, rounding="rtz")
    c = np.clip(c + rng.integers(-3, 4, q), 0, (1 << fac.width) - 1)
    parts.append(np.stack([a, b, c]))
    # 4. far-apart exponents (alignment sticky) and tiny values (subnormal results)
    r = k - 3 * q
    scale = 2.0 ** rng.integers(-40, 40, r)
    a = encode(rng.standard_normal(r), fin)
    b = encode(rng.standard_normal(r) * np.where(rng.random(r) < 0.5, 1.0, 2.0 ** fin.emin), fin)
    c = encode(rng.standard_normal(r) * scale * np.where(rng.random(r) < 0.2, 2.0 ** fac.emin, 1.0), fac)
    parts.append(np.stack([a, b, c]))
    a, b, c = np.concatenate(parts, axis=1)
    perm = rng.permutation(a.size)
    a, b, c = a[perm], b[perm], c[perm]
    if cfg.internal:
        c = to_internal(c, cfg)
        # Also feed unnormalized internal words, as a preceding PE in a chain produces them.
        chained = rng.random(a.size) < 0.25
        c = np.where(chained, fma(a[::-1], b, c, cfg), c)
    return a, b, c


def wide_vectors(cfg: FMAConfig, n, seed=0):
    """(a, b, c) for the wide FMA (b an accumulator word): a from `fma_vectors`; b and c mix
    corner words, uniform bit patterns, normal values over a wide exponent range and near
    cancellation (c close to -a*b, where the 58-bit sum of bf16 x fp32 matters)."""
    rng = np.random.default_rng(seed + 7919)
    a, _, _ = fma_vectors(cfg, n, seed)
    fac = cfg.acc_f
    kind = rng.integers(0, 4, size=(2, n))
    uniform = rng.integers(0, 1 << fac.width, size=(2, n))
    corners = rng.choice(corner_values(fac), size=(2, n))
    normal = encode(rng.standard_normal((2, n)) * 2.0 ** rng.integers(-60, 60, size=(2, n)), fac)
    b, c = np.where(kind == 0, corners, np.where(kind == 1, uniform, normal))
    near = rng.random(n) < 0.3
    with np.errstate(invalid="ignore", over="ignore"):
        cancel = encode(-(decode(a, cfg.in_f) * decode(b, fac)), fac, rounding="rtz")
    cancel = np.clip(cancel + rng.integers(-3, 4, n), 0, (1 << fac.width) - 1)
    return a, b, np.where(near, cancel, c)
