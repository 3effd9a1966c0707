"""Bit-exact golden model of the systolic-array GEMM C = A x B + C0.

Accumulation order. Both dataflows of `hdl.gemm` accumulate every output element in one chain
over k = 0..K-1, starting from C0:
  c <- C0[m, n];  for k in 0..K-1:  c <- fma(A[m, k], B[k, n], c)
- output stationary: PE (i, j) holds c and applies one k per step;
- weight stationary: the partial sum runs down a column through k = k0..k0+R-1; between
  k-folds it is kept (unnormalized when the policy is "internal") and fed back in at the top.
Padded edge tiles never touch a real chain: padded k rows pass the partial sum through
unchanged (adding 0*0 would turn -0 into +0, or renormalize an internal word).
With policy "internal", C0 enters via `to_internal` and results leave through one exact
`normalize` at the array edge.

Because the order is the same, the dataflow and the array size do not change the bits; the
golden model takes the whole `GemmConfig` so that callers state the configuration they model.
"""

import numpy as np

from specmx.models.config import DATAFLOWS, FMAConfig, GemmConfig
from specmx.models.fma import fma, normalize, to_internal
from specmx.models.formats import check_bits, decode, encode
from specmx.models.native_fma import gemm_native, has_native_route

__all__ = ["gemm", "gemm_chain", "matmul_values", "DATAFLOWS", "gemm_reference_error"]


def _check_matrix(name, x, fmt, shape=None):
    arr = check_bits(x, fmt, name)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of bit patterns, got {arr.ndim}-D")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    return arr


def gemm(engine: GemmConfig, A_bits, B_bits, C0_bits):
    """C = A x B + C0 on raw bit patterns, exactly as the RTL engine `engine` computes it.

    A_bits (M, K) and B_bits (K, N) are `engine.fma.in_fmt` patterns; C0_bits (M, N) and the
    result are IEEE `engine.fma.acc_fmt` patterns. The loop runs over K only; each step is one
    vectorised FMA over the whole M x N tile.
    """
    if not isinstance(engine, GemmConfig):
        raise TypeError(f"engine must be a GemmConfig, not {engine!r}")
    cfg = engine.fma
    A = _check_matrix("A", A_bits, cfg.in_f)
    M, K = A.shape
    B = _check_matrix("B", B_bits, cfg.in_f)
    if B.shape[0] != K:
        raise ValueError(f"B: expected {K} rows to match A's {K} columns, got {B.shape[0]}")
    N = B.shape[1]
    C = _check_matrix("C0", C0_bits, cfg.acc_f, (M, N))
    return gemm_chain(cfg, A, B, C)


def gemm_chain(cfg: FMAConfig, A, B, C0, compiled=False):
    """The accumulation chain of `gemm` on checked bit patterns, with leading batch dimensions:
    A (..., M, K), B (..., K, N), C0 broadcastable to (..., M, N) IEEE accumulator words. Exact
    configurations take the native floating-point route (`native_fma`, the same bits); with
    `compiled` the others run the compiled datapath (`fma_kernel`, the same bits) instead of
    the vectorised golden."""
    if has_native_route(cfg):
        return gemm_native(cfg, A, B, C0)
    shape = np.broadcast_shapes(A.shape[:-1] + (1,), B.shape[:-2] + (1, B.shape[-1]))
    C = np.broadcast_to(C0, shape)
    if cfg.internal:
        C = to_internal(C, cfg)
    if compiled:
        from specmx.models.fma_kernel import gemm_fast
        C = gemm_fast(cfg, A, B, C)
    else:
        for k in range(A.shape[-1]):
            C = fma(A[..., :, k:k + 1], B[..., k:k + 1, :], C, cfg)
    return normalize(C, cfg) if cfg.internal else C


def matmul_values(cfg: FMAConfig, A, B, bias=None):
    """A @ B + bias on float values as the matrix engine computes it: A and B rounded to the
    input format (RNE; an integer B is taken as input-format words already), bias rounded to
    the accumulator format as C0 (+0 without one), the `gemm` chain, the result decoded to
    float32. Leading dimensions batch; a 1-D A is one row (a vector times B gives a vector)."""
    if np.ndim(A) == 1:
        return matmul_values(cfg, np.asarray(A)[None], B, bias)[0]
    A_bits = encode(np.asarray(A, np.float64), cfg.in_f)
    B_bits = B if np.asarray(B).dtype.kind in "iu" else encode(np.asarray(B, np.float64), cfg.in_f)
    C0 = encode(np.zeros(1) if bias is None else np.asarray(bias, np.float64), cfg.acc_f)
    return decode(gemm_chain(cfg, A_bits, B_bits, C0, compiled=True), cfg.acc_f).astype(np.float32)


def gemm_reference_error(engine: GemmConfig, A_bits, B_bits, C0_bits, C_bits):
    """How far a bit-exact result is from exact math: max and median relative error against a
    float64 evaluation of the same (already quantized) inputs, ignoring non-finite entries."""
    cfg = engine.fma
    A = decode(A_bits, cfg.in_f)
    B = decode(B_bits, cfg.in_f)
    ref = A @ B + decode(C0_bits, cfg.acc_f)
    got = decode(C_bits, cfg.acc_f)
    ok = np.isfinite(ref) & np.isfinite(got)
    scale = np.abs(A) @ np.abs(B) + np.abs(decode(C0_bits, cfg.acc_f))   # error relative to the
    rel = np.abs(got - ref)[ok] / np.maximum(scale[ok], 1e-300)          # sum of |terms|
    return {"max_rel_err": float(rel.max(initial=0.0)), "median_rel_err": float(np.median(rel)) if rel.size else 0.0}
