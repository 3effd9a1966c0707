"""Stream formats of the streaming GEMM engines: what a host (or DMA) sends and receives.

Plain numpy. The output-stationary streaming engine (`hdl.stream_gemm`) takes operands and
results as vectors in tile order (tiles of R*s rows x C columns, N inner, M outer):
  a   per row of tiles (its first tile only; the engine keeps it), for k, for q in 0..s-1:
      R words, lane l = A[m0 + l*s + q, k]
  b   per tile, for k: C words, lane j = B[k, n0 + j]
  c0  per tile, each row < M of the tile in order: C words, lane j = C0[row, n0 + j]
  r   the results, in the order of c0
Rows past M and columns past N are zero padding on input; result lanes past N are padding
(`result_matrix` drops them).
"""

from math import ceil

import numpy as np

__all__ = ["tiles", "os_stream_beats", "result_matrix"]


def tiles(engine, M, N):
    """(m0, n0) of every tile in stream order."""
    RS, C = engine.rows * engine.pe_stages, engine.cols
    return [(mt * RS, nt * C) for mt in range(ceil(M / RS)) for nt in range(ceil(N / C))]


def os_stream_beats(engine, A, B, C0):
    """The a, b and c0 beats (2-D arrays, one row per beat, lane 0 first) of C = A x B + C0."""
    R, C, s = engine.rows, engine.cols, engine.pe_stages
    (M, K), N = A.shape, B.shape[1]
    RS = R * s
    Ap = np.zeros((ceil(M / RS) * RS, K), dtype=A.dtype)
    Ap[:M] = A
    Bp = np.zeros((K, ceil(N / C) * C), dtype=B.dtype)
    Bp[:, :N] = B
    C0p = np.zeros((M, Bp.shape[1]), dtype=C0.dtype)
    C0p[:, :N] = C0
    a, b, c0 = [], [], []
    for m0, n0 in tiles(engine, M, N):
        if n0 == 0:
            block = Ap[m0:m0 + RS].reshape(R, s, K)              # [l, q, k] = A[m0 + l*s + q, k]
            a.append(block.transpose(2, 1, 0).reshape(K * s, R))  # beat (k, q), lane l
        b.append(Bp[:, n0:n0 + C])
        c0.append(C0p[m0:min(m0 + RS, M), n0:n0 + C])
    return np.concatenate(a), np.concatenate(b), np.concatenate(c0)


def result_matrix(engine, beats, M, N):
    """The M x N result from the r beats (in c0 order), padding lanes dropped."""
    C = engine.cols
    out = np.zeros((M, ceil(N / C) * C), dtype=np.asarray(beats).dtype)
    pos = 0
    for m0, n0 in tiles(engine, M, N):
        rows = min(m0 + engine.rows * engine.pe_stages, M) - m0
        out[m0:m0 + rows, n0:n0 + C] = beats[pos:pos + rows]
        pos += rows
    return out[:, :N]
