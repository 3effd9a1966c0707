"""The operations of a Mamba layer, each written once (float32 numpy, HuggingFace numerics).

`MambaLM` (prefill and decode) and speculative verification (`specdec.verify_tree`) call only
these, through an ops object (`FloatOps` by default), so a different arithmetic, such as the
hardware numerics model built on the FMA golden, plugs into every path by supplying an object
with the same methods.
"""

import numpy as np

__all__ = ["silu", "softplus", "rmsnorm", "linear", "conv_step", "ssm_step", "ssm2_step", "gated_rmsnorm", "gate", "EngineLinearOps",
           "FloatOps", "FLOAT_OPS"]


def silu(x):
    return x / (1.0 + np.exp(-x))


def softplus(x):
    """torch.nn.functional.softplus with threshold 20 (what HF's MambaMixer applies to dt)."""
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0)))).astype(np.float32)


def rmsnorm(x, weight, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return (x / np.sqrt(var + eps)) * weight


def linear(x, weight_t):
    """x @ W^T with the weight stored transposed ([in, out])."""
    return x @ weight_t


def conv_step(state, u, weight, bias):
    """One token of the causal depthwise conv1d + SiLU.

    state [d, K-1] holds the previous K-1 inputs (oldest first), u [d] the new input,
    weight [d, K], bias [d]. Returns (silu(conv) [d], new state [d, K-1])."""
    window = np.concatenate([state, u[:, None]], axis=1)
    return silu((window * weight).sum(axis=1) + bias), window[:, 1:]


def ssm_step(A, h, dt, u, B, C, D):
    """One token of the selective scan: h' = exp(dt*A) h + (dt*u) B; y = h' C + D u.

    Mamba-1 shapes: A, h [d, n]; dt, u, D [d]; B, C [n]. Returns (y [d], h' [d, n])."""
    h_new = np.exp(dt[:, None] * A) * h + (dt * u)[:, None] * B[None, :]
    return h_new @ C + u * D, h_new


def ssm2_step(A, h, dt, x, B, C, D):
    """One token of the Mamba-2 scan (scalar A per head, B and C shared by a group of heads):
    h' = exp(dt*A) h + dt x B; y = h' C + D x.

    A, dt, D [H]; h [H, P, N]; x [H, P]; B, C [G, N] with H a multiple of G (head i reads group
    i // (H/G)). Returns (y [H, P], h' [H, P, N])."""
    rep = A.shape[0] // B.shape[0]
    Bh, Ch = np.repeat(B, rep, axis=0), np.repeat(C, rep, axis=0)            # [H, N]
    h_new = np.exp(dt * A)[:, None, None] * h + (dt[:, None] * x)[:, :, None] * Bh[:, None, :]
    return np.einsum("hpn,hn->hp", h_new, Ch) + D[:, None] * x, h_new


def gate(y, z):
    """Mamba-1's output gate y * silu(z)."""
    return y * silu(z)


def gated_rmsnorm(y, z, weight, groups, eps):
    """Mamba-2's gated RMSNorm (HF MambaRMSNormGated, norm after the gate): y * silu(z), then
    RMS-normalized within each of `groups` equal slices of the last axis, times weight."""
    g = y * silu(z)
    parts = g.reshape(*g.shape[:-1], groups, -1)
    parts = parts / np.sqrt(np.mean(parts * parts, axis=-1, keepdims=True) + eps)
    return parts.reshape(g.shape) * weight


class FloatOps:
    """The reference arithmetic: float32 numpy (the functions above)."""

    silu = staticmethod(silu)
    softplus = staticmethod(softplus)
    rmsnorm = staticmethod(rmsnorm)
    linear = staticmethod(linear)
    conv_step = staticmethod(conv_step)
    ssm_step = staticmethod(ssm_step)
    ssm2_step = staticmethod(ssm2_step)
    gated_rmsnorm = staticmethod(gated_rmsnorm)
    gate = staticmethod(gate)


FLOAT_OPS = FloatOps()


class EngineLinearOps(FloatOps):
    """Float32 arithmetic except the linear layers, which run on the matrix engine's arithmetic
    (`gemm.matmul_values` with FMA config `cfg`: bf16 operands, the configuration's
    normalization, exact or approximate). For measuring what approximate normalization in the
    matrix engine alone does to a model (`HardwareOps` models the whole layer in hardware)."""

    def __init__(self, cfg):
        self.cfg = cfg

    def linear(self, x, weight_t):
        from specmx.models.gemm import matmul_values
        return matmul_values(self.cfg, x, weight_t)
