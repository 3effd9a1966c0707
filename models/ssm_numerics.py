"""Hardware numerics of a Mamba layer: exactly what specmx's datapath computes, in numpy.

`HardwareOps(fma_cfg, lanes)` is an ops object for `MambaLM` / `Mamba2LM` (see `mamba_ops`):
plug it in with `model.ops = HardwareOps(...)` and every matrix product, norm, conv, scan and
function runs as the hardware runs it. The rules:

- Operands of every multiplier are in the FMA's input format (bf16 by default): a value that
  feeds a multiplier is rounded to it (round to nearest even) right there. Weights are rounded
  the same way. Accumulators, state (conv window and SSM state) and function-unit words are
  fp32.
- Every multiply-add is specmx's FMA golden (`models.fma.fma`, operands in the input format)
  or its wide form `fma_wide` (one multiplicand an fp32 word: the SSM state, an accumulator, a
  function-unit result), with the configuration's normalization knobs, one rounding each.
- Linear layers: y[n] = fma(x[k], W[k, n], y) for k = 0..K-1 from +0 (the matrix engine's
  order, `models.gemm`). Bias adds and the residual add are one fp32 rounding each.
- RMSNorm over D values: ss = fma(x, x, ss) in order; v = fma_wide(1/D hi, ss, eps) then
  v = fma_wide(1/D lo, ss, v) (1/D as two bf16 words, 16 significant bits); r = rsqrt(v);
  out = fma_wide(w, fma_wide(x, r, +0), +0).
- conv1d (kernel K): acc = bias; acc = fma(w[k], window[k], acc) oldest first; out = silu(acc).
- Selective scan, per channel (Mamba-1) or head (Mamba-2): dA = exp(fma(dt, A, +0)), split
  into two operand words hi = bf16(dA), lo = bf16(dA - hi) (16 significant bits: a decay of
  0.999 rounded to one bf16 word would become 1.0 or 0.996); dtu = fma(dt, u, +0) rounded to
  bf16; h = fma_wide(lo, h, fma_wide(hi, h, fma(dtu, B, +0))).
  y: `lanes` partial sums, lane l taking n = l, l + lanes, ... in order via
  p_l = fma_wide(C[n], h[n], p_l); then a pairwise tree over the lanes (p0+p1, p2+p3, ...,
  each add fma_wide(1.0, b, a)); then y = fma(D, u, tree).
- Gate (Mamba-1): fma_wide(silu(z) rounded to bf16, y, +0). Gated norm (Mamba-2): the same
  product, then RMSNorm per group as above.
- Function units: `models.function_units` (fp32 in, fp32 out).

Exact-normalization configurations run every multiply-add through a float64 emulation that is
bit-identical to the FMA golden (correct rounding via round-to-odd; tested against the golden
and MPFR), which makes 130m-shaped layers fast enough to measure; approximate configurations
run the golden itself.
"""

import ml_dtypes
import numpy as np

from specmx.models import function_units as fu
from specmx.models.config import FMAConfig
from specmx.models.fma import fma, fma_wide
from specmx.models.formats import decode, encode
from specmx.models.gemm import matmul_values
from specmx.models.native_fma import odd_sum

__all__ = ["HardwareOps", "exact_fma_values", "conv_stream", "conv_slots_stream", "scan_stream", "scan_slots_stream", "rmsnorm_stream"]


def exact_fma_values(a, b, c):
    """Correctly rounded fp32 a*b + c (RNE, IEEE subnormals) on float64 values whose product is
    exact in float64 (a*b has at most 53 significant bits), as float64 values. NaN results are
    NaN; a zero sum is +0 unless both terms are -0. Equals `fma`/`fma_wide` of an exact config
    (the round-to-odd route of `native_fma`)."""
    a, b, c = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                  np.asarray(c, np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        return odd_sum(a * b, c).astype(np.float32).astype(np.float64)


class HardwareOps:
    """The hardware arithmetic of the SSM datapath and the matrix engine, as a `mamba_ops`
    ops object (methods take and return float32 arrays of fp32 values).

    Parameters
    ----------
    fma : FMAConfig
        Input format, normalization knobs, rounding (accumulator fp32).
    lanes : int
        Lanes of the scan unit: sets the order in which y is reduced over the state.
    """

    def __init__(self, fma_cfg: FMAConfig = FMAConfig(), lanes=4):
        if fma_cfg.acc_fmt != "fp32" or fma_cfg.internal:
            raise ValueError("fma: the hardware numerics model needs an fp32 accumulator and IEEE "
                             "words (policy round or flush)")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes: must be an integer >= 1, got {lanes!r}")
        self.cfg, self.lanes = fma_cfg, lanes
        self.fast = fma_cfg.exact and fma_cfg.rounding == "rne" and fma_cfg.subnormals == "ieee"
        self._bf16 = fma_cfg.in_fmt == "bf16"

    # --- the two multiply-adds and the operand rule ------------------------------------------
    def operand(self, x):
        """Round values to the input format (RNE): what a multiplier sees."""
        x = np.asarray(x, dtype=np.float64)
        if self._bf16:
            return x.astype(ml_dtypes.bfloat16).astype(np.float64)
        return decode(encode(x, self.cfg.in_f), self.cfg.in_f)

    def fma(self, a, b, c):
        """a, b operand values (already in the input format), c fp32 values -> fp32 values."""
        if self.fast:
            return exact_fma_values(a, b, c)
        cfg = self.cfg
        return decode(fma(encode(a, cfg.in_f), encode(b, cfg.in_f), encode(c, cfg.acc_f), cfg), cfg.acc_f)

    def fma_wide(self, a, b, c):
        """a an operand value, b and c fp32 values -> fp32 values."""
        if self.fast:
            return exact_fma_values(a, b, c)
        cfg = self.cfg
        return decode(fma_wide(encode(a, cfg.in_f), encode(b, cfg.acc_f), encode(c, cfg.acc_f), cfg), cfg.acc_f)

    def add(self, x, y):
        return self.fma_wide(1.0, y, x)

    @staticmethod
    def unit(name, x):
        """Function unit `name` on fp32 values."""
        return decode(fu.evaluate(name, encode(np.asarray(x, np.float64), "fp32")), "fp32")

    # --- mamba_ops interface ---------------------------------------------------------------
    def silu(self, x):
        return self.unit("silu", x).astype(np.float32)

    def softplus(self, x):
        return self.unit("softplus", x).astype(np.float32)

    def linear(self, x, weight_t):
        """The matrix engine's product: operands rounded to the input format, the FMA chain
        over k from +0 (`gemm.matmul_values`: native or compiled route, the golden's bits)."""
        return matmul_values(self.cfg, x, weight_t)

    def norm(self, x, weight, eps):
        """RMSNorm over the last axis (see the module docstring)."""
        D = x.shape[-1]
        xb = self.operand(x)
        ss = np.zeros(x.shape[:-1] + (1,), dtype=np.float64)
        for d in range(D):
            ss = self.fma(xb[..., d:d + 1], xb[..., d:d + 1], ss)
        hi = self.operand(1.0 / D)
        lo = self.operand(1.0 / D - hi)
        eps32 = float(np.float32(eps))
        v = self.fma_wide(lo, ss, self.fma_wide(hi, ss, eps32))
        r = self.unit("rsqrt", v)
        return self.fma_wide(self.operand(weight), self.fma_wide(xb, r, 0.0), 0.0)

    def rmsnorm(self, x, weight, eps):
        return self.norm(np.asarray(x, np.float64), weight, eps).astype(np.float32)

    def conv_step(self, state, u, weight, bias):
        window = np.concatenate([state, np.asarray(u)[:, None]], axis=1).astype(np.float32)
        wb, xb = self.operand(weight), self.operand(window)
        acc = self.operand(bias).astype(np.float64)
        for k in range(window.shape[1]):
            acc = self.fma(wb[:, k], xb[:, k], acc)
        return self.silu(acc), window[:, 1:]

    def _reduce(self, C, h, D, u):
        """y = sum_n C[.., n] h[.., n] (lanes, then a pairwise tree) + D u."""
        N, L = h.shape[-1], self.lanes
        parts = [np.zeros(h.shape[:-1], dtype=np.float64) for _ in range(min(L, N))]
        for n in range(N):
            parts[n % L] = self.fma_wide(C[..., n], h[..., n], parts[n % L])
        while len(parts) > 1:
            nxt = [self.add(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
            parts = nxt + ([parts[-1]] if len(parts) % 2 else [])
        return self.fma(self.operand(D), self.operand(u), parts[0])

    def split(self, x):
        """fp32 values -> two operand words hi + lo (hi = x rounded, lo = the rest rounded)."""
        hi = self.operand(x)
        return hi, self.operand(self.add(x, -hi))

    def decay(self, dA, h, dBu):
        """h' = dA * h + dBu with dA as hi + lo operand words."""
        hi, lo = self.split(dA)
        h = np.asarray(h, np.float64)
        return self.fma_wide(lo, h, self.fma_wide(hi, h, dBu))

    def ssm_step(self, A, h, dt, u, B, C, D):
        dtb, ub = self.operand(dt), self.operand(u)
        dA = self.unit("exp", self.fma(dtb[:, None], self.operand(A), 0.0))
        dtu = self.operand(self.fma(dtb, ub, 0.0))
        dBu = self.fma(dtu[:, None], self.operand(B)[None, :], 0.0)
        h_new = self.decay(dA, h, dBu)
        y = self._reduce(self.operand(C)[None, :], h_new, D, u)
        return y.astype(np.float32), h_new.astype(np.float32)

    def ssm2_step(self, A, h, dt, x, B, C, D):
        rep = A.shape[0] // B.shape[0]
        Bh, Ch = np.repeat(self.operand(B), rep, axis=0), np.repeat(self.operand(C), rep, axis=0)
        dtb, xb = self.operand(dt), self.operand(x)
        dA = self.unit("exp", self.fma(dtb, self.operand(A), 0.0))                      # [H]
        dtx = self.operand(self.fma(dtb[:, None], xb, 0.0))                              # [H, P]
        dBx = self.fma(dtx[:, :, None], Bh[:, None, :], 0.0)                              # [H, P, N]
        h_new = self.decay(dA[:, None, None], h, dBx)
        y = self._reduce(Ch[:, None, :], h_new, np.repeat(D[:, None], x.shape[1], axis=1), x)
        return y.astype(np.float32), h_new.astype(np.float32)

    def gate(self, y, z):
        return self.fma_wide(self.operand(self.unit("silu", z)), np.asarray(y, np.float64), 0.0).astype(np.float32)

    def gated_rmsnorm(self, y, z, weight, groups, eps):
        return self.group_norm(self.gate(y, z), weight, groups, eps)

    def group_norm(self, g, weight, groups, eps):
        """RMSNorm within each of `groups` equal slices of the last axis (Mamba-2's norm after
        the gate, which the scan unit applies)."""
        g = np.asarray(g, np.float64)
        parts = g.reshape(*g.shape[:-1], groups, -1)
        w = np.asarray(weight).reshape(groups, -1)
        return self.norm(parts, w, eps).reshape(g.shape).astype(np.float32)


def conv_stream(ops: HardwareOps, x_bits, w_bits, bias_bits, clear):
    """The conv unit on a token stream, in bits: x [T, D] fp32 words, w [D, K] and bias [D] bf16
    words, clear [T] (a new sequence starts at that token). Returns y [T, D] fp32 words."""
    w, b = decode(w_bits, "bf16"), decode(bias_bits, "bf16")
    T, D = x_bits.shape
    state = np.zeros((D, w.shape[1] - 1), np.float32)
    out = np.empty((T, D), dtype=np.int64)
    for t in range(T):
        if clear[t]:
            state = np.zeros_like(state)
        y, state = ops.conv_step(state, decode(x_bits[t], "fp32").astype(np.float32), w, b)
        out[t] = encode(y.astype(np.float64), "fp32")
    return out


def conv_slots_stream(ops: HardwareOps, x_bits, w_bits, bias_bits, v, slots):
    """The conv unit in tree mode (`slots` windows), in bits: x [T, D] fp32 words, w, bias as for
    `conv_stream`; `v` holds per token clear, src, dst, load and `win` [T, D, K-1] bf16 words (the
    window a load token writes into `dst`). The window holds operands (inputs rounded to bf16 on
    entry), which is all the datapath reads of it. Returns the outputs [computing tokens, D]
    fp32 words and their new windows [computing tokens, D, K-1] bf16 words."""
    w, b = decode(w_bits, "bf16"), decode(bias_bits, "bf16")
    T, D = x_bits.shape
    memory = {}
    outs, windows = [], []
    for t in range(T):
        if v["load"][t]:
            memory[v["dst"][t]] = decode(v["win"][t], "bf16").astype(np.float32)
            continue
        state = np.zeros((D, w.shape[1] - 1), np.float32) if v["clear"][t] else memory[v["src"][t]]
        y, new = ops.conv_step(state, decode(x_bits[t], "fp32").astype(np.float32), w, b)
        memory[v["dst"][t]] = ops.operand(new).astype(np.float32)
        outs.append(encode(y.astype(np.float64), "fp32"))
        windows.append(encode(memory[v["dst"][t]].astype(np.float64), "bf16"))
    return np.array(outs, dtype=np.int64), np.array(windows, dtype=np.int64)


def scan_stream(ops: HardwareOps, family, v):
    """The scan unit (scan, D skip, gate) on a token stream, in bits. `v` holds fp32 words dt,
    u, z and bf16 words A, B, C, D, plus clear [T] (a new sequence starts at that token):
    Mamba-1: dt, u, z [T, d_inner], A [d_inner, N], B, C [T, N], D [d_inner];
    Mamba-2: dt [T, H], u, z [T, d_inner], A [H], B, C [T, G, N], D [H].
    Returns the gated outputs [T, d_inner] as fp32 words."""
    f32 = lambda key: decode(v[key], "fp32")
    b16 = lambda key: decode(v[key], "bf16")
    dt, u, z, A, B, C, D = f32("dt"), f32("u"), f32("z"), b16("A"), b16("B"), b16("C"), b16("D")
    T, d_inner = u.shape
    N = B.shape[-1]
    heads = A.shape[0]
    state_shape = (d_inner, N) if family == "mamba1" else (heads, d_inner // heads, N)
    h = np.zeros(state_shape, np.float32)
    out = np.empty((T, d_inner), dtype=np.int64)
    for t in range(T):
        if v["clear"][t]:
            h = np.zeros_like(h)
        if family == "mamba1":
            y, h = ops.ssm_step(A, h, dt[t], u[t], B[t], C[t], D)
        else:
            y, h = ops.ssm2_step(A, h, dt[t], u[t].reshape(heads, -1), B[t], C[t], D)
        out[t] = encode(ops.gate(y.reshape(-1), z[t]).astype(np.float64), "fp32")
    return out


def scan_slots_stream(ops: HardwareOps, family, v, slots):
    """The scan unit in tree mode (`slots` states), in bits: `v` as for `scan_stream` plus per
    token `src` and `dst` slots and a `load` flag, and `h` [T, *state shape] fp32 words (the
    state a load token writes into `dst`; ignored otherwise). A computing token starts from
    slot `src` (zeros when `clear`) and writes its new state to `dst`. Returns the gated outputs
    [computing tokens, d_inner] and their new states [computing tokens, *state shape], fp32 words."""
    f32 = lambda key: decode(v[key], "fp32")
    b16 = lambda key: decode(v[key], "bf16")
    dt, u, z, A, B, C, D = f32("dt"), f32("u"), f32("z"), b16("A"), b16("B"), b16("C"), b16("D")
    T, d_inner = u.shape
    heads = A.shape[0]
    shape = (d_inner, B.shape[-1]) if family == "mamba1" else (heads, d_inner // heads, B.shape[-1])
    memory = {k: np.zeros(shape, np.float32) for k in range(slots)}     # never read before written
    outs, states = [], []
    for t in range(T):
        if v["load"][t]:
            memory[v["dst"][t]] = decode(v["h"][t], "fp32").astype(np.float32).reshape(shape)
            continue
        h = np.zeros(shape, np.float32) if v["clear"][t] else memory[v["src"][t]]
        if family == "mamba1":
            y, h = ops.ssm_step(A, h, dt[t], u[t], B[t], C[t], D)
        else:
            y, h = ops.ssm2_step(A, h, dt[t], u[t].reshape(heads, -1), B[t], C[t], D)
        memory[v["dst"][t]] = h
        outs.append(encode(ops.gate(y.reshape(-1), z[t]).astype(np.float64), "fp32"))
        states.append(encode(h.astype(np.float64), "fp32"))
    return np.array(outs, dtype=np.int64), np.array(states, dtype=np.int64)


def rmsnorm_stream(ops: HardwareOps, x_bits, w_bits, eps):
    """The RMSNorm unit on vectors, in bits: x [V, length] fp32 words, w [V, length] bf16 words.
    Returns [V, length] fp32 words."""
    x = decode(x_bits, "fp32")
    return encode(ops.norm(x, decode(w_bits, "bf16"), eps), "fp32")
