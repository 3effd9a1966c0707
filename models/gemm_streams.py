"""Stream formats of the streaming GEMM engines: what a host (or DMA) sends and receives.

Plain numpy. Results leave in blocks of `block_rows(engine)` rows x C columns, N inner, M outer
(`tiles`), each block's rows in order. The output-stationary streaming engine
(`hdl.stream_gemm`) takes operands as vectors in tile order (tiles of R*s rows x C columns):
  a   per row of tiles (its first tile only; the engine keeps it), for k, for q in 0..s-1:
      R words, lane l = A[m0 + l*s + q, k]
  b   per tile, for k: C words, lane j = B[k, n0 + j]
  c0  per tile, each row < M of the tile in order: C words, lane j = C0[row, n0 + j]
  r   the results, in the order of c0
The weight-stationary one (blocks of 2R rows; folds in the order block, k fold, n fold):
  b   per fold: R beats of C words, beat i = B[k0 + i, n0 ..]
  a   per (block, k fold): one beat of R words per row, A[m, k0 .. k0+R-1]
  c0  per (block, n fold): the block's rows of C0[., n0 ..]
Rows past M and columns past N (and k past K) are zero padding on input; result lanes past N
are padding (`result_beats` marks the real ones).
"""

from math import ceil

import numpy as np

__all__ = ["block_rows", "tiles", "stream_beats", "result_beats"]


def block_rows(engine):
    """Rows of a result block: R*s (output stationary) or 2R (weight stationary)."""
    return engine.rows * engine.pe_stages if engine.dataflow == "os" else 2 * engine.rows


def tiles(engine, M, N):
    """(m0, n0) of every result block in stream order."""
    MB, C = block_rows(engine), engine.cols
    return [(mt * MB, nt * C) for mt in range(ceil(M / MB)) for nt in range(ceil(N / C))]


def stream_beats(engine, A, B, C0):
    """The a, b and c0 beats (2-D arrays, one row per beat, lane 0 first) of C = A x B + C0."""
    return (os_stream_beats if engine.dataflow == "os" else ws_stream_beats)(engine, A, B, C0)


def _padded(A, B, C0, rows, k_mult, cols):
    (M, K), N = A.shape, B.shape[1]
    Kp = ceil(K / k_mult) * k_mult
    Ap = np.zeros((ceil(M / rows) * rows, Kp), dtype=A.dtype)
    Ap[:M, :K] = A
    Bp = np.zeros((Kp, ceil(N / cols) * cols), dtype=B.dtype)
    Bp[:K, :N] = B
    C0p = np.zeros((M, Bp.shape[1]), dtype=C0.dtype)
    C0p[:, :N] = C0
    return Ap, Bp, C0p


def ws_stream_beats(engine, A, B, C0):
    R, C, MB = engine.rows, engine.cols, block_rows(engine)
    (M, K), N = A.shape, B.shape[1]
    Ap, Bp, C0p = _padded(A, B, C0, MB, R, C)
    a, b, c0 = [], [], []
    for m0 in range(0, M, MB):
        top = min(m0 + MB, M)
        for k0 in range(0, Bp.shape[0], R):
            a.append(Ap[m0:top, k0:k0 + R])
            b += [Bp[k0:k0 + R, n0:n0 + C] for n0 in range(0, Bp.shape[1], C)]
        c0 += [C0p[m0:top, n0:n0 + C] for n0 in range(0, Bp.shape[1], C)]
    return np.concatenate(a), np.concatenate(b), np.concatenate(c0)


def os_stream_beats(engine, A, B, C0):
    R, C, s = engine.rows, engine.cols, engine.pe_stages
    (M, K), N = A.shape, B.shape[1]
    RS = R * s
    Ap, Bp, C0p = _padded(A, B, C0, RS, 1, C)
    a, b, c0 = [], [], []
    for m0, n0 in tiles(engine, M, N):
        if n0 == 0:
            block = Ap[m0:m0 + RS].reshape(R, s, K)              # [l, q, k] = A[m0 + l*s + q, k]
            a.append(block.transpose(2, 1, 0).reshape(K * s, R))  # beat (k, q), lane l
        b.append(Bp[:, n0:n0 + C])
        c0.append(C0p[m0:min(m0 + RS, M), n0:n0 + C])
    return np.concatenate(a), np.concatenate(b), np.concatenate(c0)


def result_beats(engine, C_mat):
    """The r beats of the M x N result `C_mat` (in c0 order, padding lanes zero) and, per beat,
    which lanes hold a real column."""
    M, N = C_mat.shape
    C = engine.cols
    padded = np.zeros((M, ceil(N / C) * C), dtype=C_mat.dtype)
    padded[:, :N] = C_mat
    beats, valid = [], []
    for m0, n0 in tiles(engine, M, N):
        top = min(m0 + block_rows(engine), M)
        beats.append(padded[m0:top, n0:n0 + C])
        valid.append(np.broadcast_to(np.arange(n0, n0 + C) < N, (top - m0, C)))
    return np.concatenate(beats), np.concatenate(valid)
