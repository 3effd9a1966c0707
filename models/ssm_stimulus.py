"""Stimulus for the selective-scan unit, plain numpy: token streams shaped like a Mamba
layer's, with the corner tokens the RTL must get right. The cocotb regressions
(`sim.ssm_check`) and the SSM self-test's golden signature (`models.selftest`) both use it."""

import numpy as np

from specmx.models.config import SSMConfig
from specmx.models.formats import encode

__all__ = ["scan_vectors"]


def scan_vectors(ssm: SSMConfig, tokens, seed=0, corners=True):
    """Inputs of a scan-unit run (the arrays `scan_stream` takes). Random values shaped like a
    Mamba layer's (dt > 0 small, A < 0, unit-scale B, C, u, z); with `corners`: a token of
    zeros, one with negative and large dt (growing and vanishing decays), one that drives the
    state near and past fp32 overflow, one of subnormals, one with NaN and inf, then a clear in
    the middle of the stream (the second half runs from a fresh state)."""
    rng = np.random.default_rng(seed)
    D, N = ssm.d_inner, ssm.d_state
    mamba1 = ssm.family == "mamba1"
    H, G = (D, 1) if mamba1 else (ssm.heads, ssm.groups)
    dt = np.exp(rng.normal(-3.0, 1.0, (tokens, H)))
    u = rng.standard_normal((tokens, D))
    z = rng.standard_normal((tokens, D)) * 2.0
    bc_shape = (tokens, N) if mamba1 else (tokens, G, N)
    B, C = rng.standard_normal(bc_shape), rng.standard_normal(bc_shape)
    A = -np.exp(rng.normal(0.0, 1.0, (D, N) if mamba1 else H))
    Dw = rng.standard_normal(H)
    clear = np.zeros(tokens, dtype=np.int64)
    clear[0] = 1
    if corners and tokens >= 8:
        dt[1], u[1], z[1], B[1], C[1] = 0.0, 0.0, 0.0, 0.0, 0.0
        dt[2] = rng.choice([-8.0, 60.0], H)
        u[3], B[3] = 3e18, 3e19
        u[4], B[4] = rng.standard_normal(D) * 1e-20, rng.standard_normal(bc_shape[1:]) * 1e-19
        u[5, 0], z[5, -1], dt[5, -1] = np.nan, np.inf, -np.inf
        clear[tokens // 2] = 1
    f32, b16 = (lambda x: encode(x, "fp32")), (lambda x: encode(x, "bf16"))
    return {"dt": f32(dt), "u": f32(u), "z": f32(z), "A": b16(A), "B": b16(B), "C": b16(C), "D": b16(Dw),
            "clear": clear}
