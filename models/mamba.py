"""Mamba (v1) language model in plain numpy: the golden model for specmx's SSM hardware.

Structure (Gu & Dao, "Mamba"; HuggingFace `MambaForCausalLM` naming and numerics):
embedding -> N x [x + mixer(RMSNorm(x))] -> RMSNorm -> tied lm_head, where the mixer is
in_proj -> (x, z); x -> causal depthwise conv1d (kernel 4) -> SiLU -> x_proj -> (dt, B, C);
dt -> dt_proj -> softplus; selective scan h_t = exp(dt*A) h_{t-1} + dt*B_t x_t with
A = -exp(A_log), y_t = C_t h_t + D x_t; y * SiLU(z) -> out_proj.

Two modes: `forward` (prefill, a whole sequence) and `step` (decode, one token) with an explicit
`MambaState` (conv state + SSM state per layer) that can be copied and restored. Everything
is float32.
"""

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = ["MambaConfig", "MambaLM", "MambaState", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class MambaConfig:
    """Model dimensions (HuggingFace MambaConfig field names where they exist)."""

    vocab_size: int = 50280
    hidden_size: int = 768
    state_size: int = 16
    num_hidden_layers: int = 24
    expand: int = 2
    conv_kernel: int = 4
    time_step_rank: int = 0          # 0: ceil(hidden_size / 16), as in the reference
    layer_norm_epsilon: float = 1e-5
    use_conv_bias: bool = True
    use_bias: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "state_size", "num_hidden_layers", "expand", "conv_kernel"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")

    @property
    def intermediate_size(self):
        return self.expand * self.hidden_size

    @property
    def dt_rank(self):
        return self.time_step_rank or math.ceil(self.hidden_size / 16)

    def hf_config(self):
        """config.json contents in transformers' MambaConfig format."""
        return {"model_type": "mamba", "architectures": ["MambaForCausalLM"],
                "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "state_size": self.state_size, "num_hidden_layers": self.num_hidden_layers,
                "expand": self.expand, "conv_kernel": self.conv_kernel,
                "time_step_rank": self.dt_rank, "layer_norm_epsilon": self.layer_norm_epsilon,
                "use_conv_bias": self.use_conv_bias, "use_bias": self.use_bias,
                "intermediate_size": self.intermediate_size, "tie_word_embeddings": True,
                "residual_in_fp32": True, "hidden_act": "silu", "pad_token_id": 0,
                "bos_token_id": 0, "eos_token_id": 0}

    @classmethod
    def from_hf(cls, cfg):
        return cls(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                   state_size=cfg.get("state_size", 16), num_hidden_layers=cfg["num_hidden_layers"],
                   expand=cfg.get("expand", 2), conv_kernel=cfg.get("conv_kernel", 4),
                   time_step_rank=cfg.get("time_step_rank", 0) if cfg.get("time_step_rank") != "auto" else 0,
                   layer_norm_epsilon=cfg.get("layer_norm_epsilon", 1e-5),
                   use_conv_bias=cfg.get("use_conv_bias", True), use_bias=cfg.get("use_bias", False))


# Published dimensions (state-spaces/mamba-*: d_model, n_layer; vocab padded to 50280).
PRESETS = {
    "130m": MambaConfig(hidden_size=768, num_hidden_layers=24),
    "370m": MambaConfig(hidden_size=1024, num_hidden_layers=48),
    "790m": MambaConfig(hidden_size=1536, num_hidden_layers=48),
    "1.4b": MambaConfig(hidden_size=2048, num_hidden_layers=48),
    "2.8b": MambaConfig(hidden_size=2560, num_hidden_layers=64),
    "micro": MambaConfig(vocab_size=16, hidden_size=32, state_size=4, num_hidden_layers=2),
    "tiny": MambaConfig(vocab_size=512, hidden_size=64, state_size=8, num_hidden_layers=2),
    "small": MambaConfig(vocab_size=1024, hidden_size=128, state_size=16, num_hidden_layers=4),
    "130m-2l": MambaConfig(hidden_size=768, num_hidden_layers=2),
}


def get_preset(name):
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"model: unknown preset {name!r}; allowed: {', '.join(PRESETS)}") from None


def _expected_shapes(cfg: MambaConfig):
    d, di, n, r, k = cfg.hidden_size, cfg.intermediate_size, cfg.state_size, cfg.dt_rank, cfg.conv_kernel
    shapes = {"backbone.embeddings.weight": (cfg.vocab_size, d), "backbone.norm_f.weight": (d,)}
    for i in range(cfg.num_hidden_layers):
        p = f"backbone.layers.{i}."
        shapes.update({
            p + "norm.weight": (d,),
            p + "mixer.in_proj.weight": (2 * di, d),
            p + "mixer.conv1d.weight": (di, 1, k),
            p + "mixer.x_proj.weight": (r + 2 * n, di),
            p + "mixer.dt_proj.weight": (di, r),
            p + "mixer.dt_proj.bias": (di,),
            p + "mixer.A_log": (di, n),
            p + "mixer.D": (di,),
            p + "mixer.out_proj.weight": (d, di),
        })
        if cfg.use_conv_bias:
            shapes[p + "mixer.conv1d.bias"] = (di,)
        if cfg.use_bias:
            shapes[p + "mixer.in_proj.bias"] = (2 * di,)
            shapes[p + "mixer.out_proj.bias"] = (d,)
    return shapes


@dataclass
class MambaState:
    """Decode state: per layer, the last conv_kernel-1 conv inputs and the SSM state."""

    conv: list = field(default_factory=list)   # [layer] -> (d_inner, conv_kernel - 1)
    ssm: list = field(default_factory=list)    # [layer] -> (d_inner, state_size)

    def copy(self):
        return MambaState([c.copy() for c in self.conv], [s.copy() for s in self.ssm])

    @property
    def nbytes(self):
        return sum(c.nbytes for c in self.conv) + sum(s.nbytes for s in self.ssm)


def _silu(x):
    return x / (1.0 + np.exp(-x))


def ssm_update(A, h, dt, ua, B):
    """One selective-scan step h' = exp(dt*A) h + (dt*u) B for one token. Shared by `step` and
    speculative verification/recompute so that their states agree bit for bit."""
    return np.exp(dt[:, None] * A) * h + (dt * ua)[:, None] * B[None, :]


def _softplus(x):
    # torch.nn.functional.softplus with threshold 20
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0)))).astype(np.float32)


class MambaLM:
    """Mamba language model with numpy float32 weights (a dict in HuggingFace naming)."""

    def __init__(self, cfg: MambaConfig, weights: dict):
        self.cfg = cfg
        shapes = _expected_shapes(cfg)
        for name, shape in shapes.items():
            if name not in weights:
                raise ValueError(f"weights: missing tensor {name!r} (expected shape {shape})")
            if tuple(weights[name].shape) != shape:
                raise ValueError(f"weights: tensor {name!r} has shape {tuple(weights[name].shape)}, "
                                 f"expected {shape}")
        self.w = {k: np.ascontiguousarray(weights[k], dtype=np.float32) for k in shapes}
        self._layers = [self._layer(i) for i in range(cfg.num_hidden_layers)]

    def _layer(self, i):
        p = f"backbone.layers.{i}."
        w = self.w
        return {
            "norm": w[p + "norm.weight"],
            "in_proj": w[p + "mixer.in_proj.weight"].T.copy(),
            "conv_w": w[p + "mixer.conv1d.weight"][:, 0, :],
            "conv_b": w.get(p + "mixer.conv1d.bias", np.zeros(self.cfg.intermediate_size, np.float32)),
            "x_proj": w[p + "mixer.x_proj.weight"].T.copy(),
            "dt_proj": w[p + "mixer.dt_proj.weight"].T.copy(),
            "dt_bias": w[p + "mixer.dt_proj.bias"],
            "A": -np.exp(w[p + "mixer.A_log"]),
            "D": w[p + "mixer.D"],
            "out_proj": w[p + "mixer.out_proj.weight"].T.copy(),
        }

    # --- construction and files -------------------------------------------------------------
    @classmethod
    def random(cls, cfg: MambaConfig, seed=0):
        """Deterministic random weights with the reference's initialisation shapes/scales."""
        rng = np.random.default_rng(seed)
        d, di, n, r = cfg.hidden_size, cfg.intermediate_size, cfg.state_size, cfg.dt_rank
        w = {}
        for name, shape in _expected_shapes(cfg).items():
            if name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                w[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
            elif name.endswith("A_log"):
                w[name] = np.log(np.tile(np.arange(1, n + 1, dtype=np.float32), (di, 1)))
            elif name.endswith("mixer.D"):
                w[name] = np.ones(shape, np.float32)
            elif name.endswith("dt_proj.bias"):
                dt = np.exp(rng.uniform(math.log(1e-3), math.log(1e-1), shape))
                w[name] = (dt + np.log(-np.expm1(-dt))).astype(np.float32)   # inverse softplus
            elif name.endswith("embeddings.weight"):
                w[name] = (0.02 * rng.standard_normal(shape)).astype(np.float32)
            else:
                fan_in = int(np.prod(shape[1:]))
                w[name] = (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(np.float32)
        return cls(cfg, w)

    @classmethod
    def from_pretrained(cls, directory):
        """Read a directory written by transformers' save_pretrained (config.json +
        model.safetensors)."""
        from safetensors.numpy import load_file
        d = Path(directory)
        if not (d / "config.json").exists() or not (d / "model.safetensors").exists():
            raise ValueError(f"model: {str(d)!r} needs config.json and model.safetensors")
        cfg = MambaConfig.from_hf(json.loads((d / "config.json").read_text()))
        weights = load_file(str(d / "model.safetensors"))
        weights.pop("lm_head.weight", None)        # tied to the embedding
        return cls(cfg, weights)

    def save_pretrained(self, directory):
        from safetensors.numpy import save_file
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(self.cfg.hf_config(), indent=2))
        save_file(dict(self.w), str(d / "model.safetensors"), metadata={"format": "pt"})

    # --- numerics -------------------------------------------------------------------------------
    def _rmsnorm(self, x, weight):
        var = np.mean(x * x, axis=-1, keepdims=True)
        return (x / np.sqrt(var + self.cfg.layer_norm_epsilon)) * weight

    def _check_tokens(self, tokens):
        t = np.asarray(tokens)
        if t.ndim != 1 or t.dtype.kind not in "iu":
            raise ValueError("tokens: expected a 1-D sequence of integer token ids")
        if t.size and (t.min() < 0 or t.max() >= self.cfg.vocab_size):
            raise ValueError(f"tokens: ids must be in 0..{self.cfg.vocab_size - 1}, "
                             f"got {int(t.min())}..{int(t.max())}")
        return t.astype(np.int64)

    def forward(self, tokens, state=None, return_state=False):
        """Prefill: logits [T, vocab] (float32) for a token sequence, optionally continuing
        from `state` and returning the state after the last token."""
        tokens = self._check_tokens(tokens)
        cfg = self.cfg
        x = self.w["backbone.embeddings.weight"][tokens]
        new_state = MambaState()
        for li, L in enumerate(self._layers):
            h = self._rmsnorm(x, L["norm"])
            xz = h @ L["in_proj"]
            u, z = xz[:, :cfg.intermediate_size], xz[:, cfg.intermediate_size:]
            prev = state.conv[li] if state is not None else np.zeros((cfg.intermediate_size, cfg.conv_kernel - 1), np.float32)
            padded = np.concatenate([prev.T, u], axis=0)              # [K-1+T, d_inner]
            k = cfg.conv_kernel
            conv = sum(padded[j:j + len(u)] * L["conv_w"][:, j] for j in range(k)) + L["conv_b"]
            u_act = _silu(conv)
            y, ssm = self._scan(L, u_act, state.ssm[li] if state is not None else None)
            y = y * _silu(z)
            x = x + y @ L["out_proj"]
            new_state.conv.append(padded[-(k - 1):].T.copy())
            new_state.ssm.append(ssm)
        logits = self._rmsnorm(x, self.w["backbone.norm_f.weight"]) @ self.w["backbone.embeddings.weight"].T
        logits = logits.astype(np.float32)
        return (logits, new_state) if return_state else logits

    def _scan(self, L, u, h0):
        """Selective scan over T steps; returns (y [T, d_inner], final state)."""
        cfg = self.cfg
        n, r = cfg.state_size, cfg.dt_rank
        proj = u @ L["x_proj"]
        dt = _softplus(proj[:, :r] @ L["dt_proj"] + L["dt_bias"])    # [T, d_inner]
        B, C = proj[:, r:r + n], proj[:, r + n:]
        dA = np.exp(dt[:, :, None] * L["A"][None])                     # [T, d_inner, n]
        dBu = (dt * u)[:, :, None] * B[:, None, :]
        h = np.zeros((cfg.intermediate_size, n), np.float32) if h0 is None else h0.copy()
        y = np.empty_like(u)
        for t in range(u.shape[0]):
            h = dA[t] * h + dBu[t]
            y[t] = h @ C[t]
        return y + u * L["D"], h

    def initial_state(self):
        cfg = self.cfg
        return MambaState([np.zeros((cfg.intermediate_size, cfg.conv_kernel - 1), np.float32)
                           for _ in range(cfg.num_hidden_layers)],
                          [np.zeros((cfg.intermediate_size, cfg.state_size), np.float32)
                           for _ in range(cfg.num_hidden_layers)])

    def step(self, token, state: MambaState):
        """Decode one token: returns (logits [vocab], new state). `state` is not modified.

        Same arithmetic as `forward` on one token, without the sequence machinery."""
        cfg = self.cfg
        tok = self._check_tokens(np.array([token]))[0]
        x = self.w["backbone.embeddings.weight"][tok]
        new = MambaState()
        r, n, di = cfg.dt_rank, cfg.state_size, cfg.intermediate_size
        for li, L in enumerate(self._layers):
            xz = self._rmsnorm(x, L["norm"]) @ L["in_proj"]
            u, z = xz[:di], xz[di:]
            window = np.concatenate([state.conv[li], u[:, None]], axis=1)
            ua = _silu((window * L["conv_w"]).sum(axis=1) + L["conv_b"])
            proj = ua @ L["x_proj"]
            dt = _softplus(proj[:r] @ L["dt_proj"] + L["dt_bias"])
            h = ssm_update(L["A"], state.ssm[li], dt, ua, proj[r:r + n])
            y = (h @ proj[r + n:] + ua * L["D"]) * _silu(z)
            x = x + y @ L["out_proj"]
            new.conv.append(window[:, 1:])
            new.ssm.append(h)
        logits = self._rmsnorm(x, self.w["backbone.norm_f.weight"]) @ self.w["backbone.embeddings.weight"].T
        return logits.astype(np.float32, copy=False), new

    def greedy(self, prompt, n_tokens):
        """Plain greedy decoding: prefill the prompt, then n_tokens steps."""
        logits, state = self.forward(np.asarray(prompt), self.initial_state(), return_state=True)
        out = []
        tok = int(np.argmax(logits[-1]))
        for _ in range(n_tokens):
            out.append(tok)
            logits1, state = self.step(tok, state)
            tok = int(np.argmax(logits1))
        return out
