"""Mamba-2 language model in plain numpy (HuggingFace `Mamba2ForCausalLM` naming and numerics).

Per layer: RMSNorm -> in_proj -> (z [d_inner], xBC [d_inner + 2 G N], dt [H]); xBC -> causal
depthwise conv1d (kernel 4) + SiLU -> (x [H, P], B [G, N], C [G, N]); dt = softplus(dt + dt_bias)
(HF's one-token step: no clamp; its prefill clamps to `time_step_limit`, (0, inf) by default);
per head h' = exp(dt A) h + dt x B, y = C.h' + D x, with A = -exp(A_log) one scalar per head and
B, C shared by the H/G heads of a group; gated RMSNorm(y, z) in G groups; out_proj; residual.
Embedding, final RMSNorm and the LM head (tied to the embedding unless config says otherwise)
as in Mamba-1. Every operation goes through `ops` (models/mamba_ops.py); prefill runs the conv
and scan token by token with the decode functions (prefill and decode then differ only in how
batched and single-row matrix products round).
"""

import math
from dataclasses import dataclass

import numpy as np

from specmx.models.mamba import MambaState, RecurrentLM, check_hf_mapping, check_positive_ints
from specmx.models.mamba_ops import FLOAT_OPS

__all__ = ["Mamba2Config", "Mamba2LM", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class Mamba2Config:
    """Model dimensions (HuggingFace Mamba2Config field names)."""

    vocab_size: int = 50288
    hidden_size: int = 768
    state_size: int = 128
    num_hidden_layers: int = 24
    expand: int = 2
    head_dim: int = 64
    n_groups: int = 1
    conv_kernel: int = 4
    layer_norm_epsilon: float = 1e-5
    use_conv_bias: bool = True
    use_bias: bool = False
    tie_word_embeddings: bool = True

    def __post_init__(self):
        check_positive_ints(self, ("vocab_size", "hidden_size", "state_size", "num_hidden_layers", "expand",
                                   "head_dim", "n_groups", "conv_kernel"))
        if self.intermediate_size % self.head_dim:
            raise ValueError(f"head_dim: must divide expand * hidden_size = {self.intermediate_size}, "
                             f"got {self.head_dim}")
        if self.num_heads % self.n_groups:
            raise ValueError(f"n_groups: must divide the number of heads {self.num_heads}, got {self.n_groups}")

    @property
    def intermediate_size(self):
        return self.expand * self.hidden_size

    @property
    def num_heads(self):
        return self.intermediate_size // self.head_dim

    @property
    def conv_dim(self):
        return self.intermediate_size + 2 * self.n_groups * self.state_size

    def hf_config(self):
        """config.json contents in transformers' Mamba2Config format."""
        return {"model_type": "mamba2", "architectures": ["Mamba2ForCausalLM"],
                "vocab_size": self.vocab_size, "hidden_size": self.hidden_size, "state_size": self.state_size,
                "num_hidden_layers": self.num_hidden_layers, "expand": self.expand, "head_dim": self.head_dim,
                "num_heads": self.num_heads, "n_groups": self.n_groups, "conv_kernel": self.conv_kernel,
                "layer_norm_epsilon": self.layer_norm_epsilon, "use_conv_bias": self.use_conv_bias,
                "use_bias": self.use_bias, "tie_word_embeddings": self.tie_word_embeddings,
                "residual_in_fp32": True, "hidden_act": "silu", "time_step_limit": [0.0, float("inf")],
                "chunk_size": 256, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0}

    @classmethod
    def from_hf(cls, cfg):
        """From a transformers config.json mapping. Raises ValueError naming the key."""
        check_hf_mapping(cfg)
        limit = [_json_float(v) for v in cfg.get("time_step_limit", [0.0, float("inf")])]
        if limit != [0.0, float("inf")]:
            raise ValueError(f"config.json: time_step_limit: only (0, inf) is modelled, got {limit!r}")
        keys = ("vocab_size", "hidden_size", "state_size", "num_hidden_layers", "expand", "head_dim",
                "n_groups", "conv_kernel", "layer_norm_epsilon", "use_conv_bias", "use_bias", "tie_word_embeddings")
        try:
            cfg_obj = cls(**{k: cfg[k] for k in keys if k in cfg})
        except ValueError as exc:
            raise ValueError(f"config.json: {exc}") from None
        if "num_heads" in cfg and cfg["num_heads"] != cfg_obj.num_heads:
            raise ValueError(f"config.json: num_heads: must equal expand * hidden_size / head_dim = "
                             f"{cfg_obj.num_heads}, got {cfg['num_heads']!r}")
        return cfg_obj


def _json_float(value):
    """A float from config.json: a number, or transformers' encoding of one that JSON lacks
    ({"__float__": "Infinity"})."""
    if isinstance(value, dict) and set(value) == {"__float__"}:
        try:
            return float(value["__float__"])
        except (TypeError, ValueError):
            pass
    return value


# Published dimensions (state-spaces/mamba2-*: d_model, n_layer, d_state 128, head_dim 64,
# expand 2, one group) and micro sizes for tests (several groups).
PRESETS = {
    "mamba2-130m": Mamba2Config(hidden_size=768, num_hidden_layers=24),
    "mamba2-2.7b": Mamba2Config(hidden_size=2560, num_hidden_layers=64),
    "mamba2-130m-2l": Mamba2Config(hidden_size=768, num_hidden_layers=2),
    "mamba2-micro": Mamba2Config(vocab_size=16, hidden_size=32, state_size=8, num_hidden_layers=2, head_dim=8,
                                 n_groups=2),
    "mamba2-tiny": Mamba2Config(vocab_size=512, hidden_size=48, state_size=16, num_hidden_layers=2, head_dim=16,
                                n_groups=3),
}


def get_preset(name):
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"model: unknown preset {name!r}; allowed: {', '.join(PRESETS)}") from None


def _expected_shapes(cfg: Mamba2Config):
    d, di, H, k = cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, cfg.conv_kernel
    shapes = {"backbone.embeddings.weight": (cfg.vocab_size, d), "backbone.norm_f.weight": (d,)}
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (cfg.vocab_size, d)
    for i in range(cfg.num_hidden_layers):
        p = f"backbone.layers.{i}."
        shapes.update({
            p + "norm.weight": (d,),
            p + "mixer.in_proj.weight": (di + cfg.conv_dim + H, d),
            p + "mixer.conv1d.weight": (cfg.conv_dim, 1, k),
            p + "mixer.dt_bias": (H,),
            p + "mixer.A_log": (H,),
            p + "mixer.D": (H,),
            p + "mixer.norm.weight": (di,),
            p + "mixer.out_proj.weight": (d, di),
        })
        if cfg.use_conv_bias:
            shapes[p + "mixer.conv1d.bias"] = (cfg.conv_dim,)
        if cfg.use_bias:
            shapes[p + "mixer.in_proj.bias"] = (di + cfg.conv_dim + H,)
            shapes[p + "mixer.out_proj.bias"] = (d,)
    return shapes


class Mamba2LM(RecurrentLM):
    """Mamba-2 language model with numpy float32 weights (a dict in HuggingFace naming)."""

    config_class = Mamba2Config
    _expected_shapes = staticmethod(_expected_shapes)

    def __init__(self, cfg: Mamba2Config, weights: dict, ops=FLOAT_OPS):
        super().__init__(cfg, weights, ops)
        head = self.w["backbone.embeddings.weight"] if cfg.tie_word_embeddings else self.w["lm_head.weight"]
        self.lm_head = head.T.copy()

    def _layer(self, i):
        p, w, cfg = f"backbone.layers.{i}.", self.w, self.cfg
        zeros = lambda n: np.zeros(n, np.float32)
        return {
            "norm": w[p + "norm.weight"],
            "in_proj": w[p + "mixer.in_proj.weight"].T.copy(),
            "in_bias": w.get(p + "mixer.in_proj.bias", zeros(cfg.intermediate_size + cfg.conv_dim + cfg.num_heads)),
            "conv_w": w[p + "mixer.conv1d.weight"][:, 0, :],
            "conv_b": w.get(p + "mixer.conv1d.bias", zeros(cfg.conv_dim)),
            "dt_bias": w[p + "mixer.dt_bias"],
            "A": -np.exp(w[p + "mixer.A_log"]),
            "D": w[p + "mixer.D"],
            "gate_norm": w[p + "mixer.norm.weight"],
            "out_proj": w[p + "mixer.out_proj.weight"].T.copy(),
            "out_bias": w.get(p + "mixer.out_proj.bias", zeros(cfg.hidden_size)),
        }

    # --- construction and files -------------------------------------------------------------
    @classmethod
    def random(cls, cfg: Mamba2Config, seed=0):
        """Deterministic random weights with the reference's initialisation shapes and scales."""
        rng = np.random.default_rng(seed)
        w = {}
        for name, shape in _expected_shapes(cfg).items():
            if name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                w[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
            elif name.endswith("A_log"):
                w[name] = np.log(rng.uniform(1, 16, shape)).astype(np.float32)
            elif name.endswith("mixer.D"):
                w[name] = np.ones(shape, np.float32)
            elif name.endswith("dt_bias"):
                dt = np.exp(rng.uniform(math.log(1e-3), math.log(1e-1), shape))
                w[name] = (dt + np.log(-np.expm1(-dt))).astype(np.float32)   # inverse softplus
            elif name.endswith("embeddings.weight") or name == "lm_head.weight":
                w[name] = (0.02 * rng.standard_normal(shape)).astype(np.float32)
            elif name.endswith("bias"):
                w[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
            else:
                fan_in = int(np.prod(shape[1:]))
                w[name] = (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(np.float32)
        return cls(cfg, w)

    # --- numerics -----------------------------------------------------------------------------
    def logits(self, x):
        h = self.ops.rmsnorm(x, self.w["backbone.norm_f.weight"], self.cfg.layer_norm_epsilon)
        return self.ops.linear(h, self.lm_head).astype(np.float32, copy=False)

    def in_proj(self, L, x):
        """RMSNorm and in_proj for rows of x: (z [.., d_inner], xBC [.., conv_dim], dt [.., H])."""
        cfg, ops = self.cfg, self.ops
        zxbcdt = ops.linear(ops.rmsnorm(x, L["norm"], cfg.layer_norm_epsilon), L["in_proj"]) + L["in_bias"]
        di, cd = cfg.intermediate_size, cfg.conv_dim
        return zxbcdt[..., :di], zxbcdt[..., di:di + cd], zxbcdt[..., di + cd:]

    def scan_step(self, L, xbc, dt_raw, h):
        """The SSM step of one token from its conv output: (y [d_inner], h')."""
        cfg = self.cfg
        di, GN, H, P = cfg.intermediate_size, cfg.n_groups * cfg.state_size, cfg.num_heads, cfg.head_dim
        x = xbc[:di].reshape(H, P)
        B = xbc[di:di + GN].reshape(cfg.n_groups, cfg.state_size)
        C = xbc[di + GN:].reshape(cfg.n_groups, cfg.state_size)
        dt = self.ops.softplus(dt_raw + L["dt_bias"])
        y, h_new = self.ops.ssm2_step(L["A"], h, dt, x, B, C, L["D"])
        return y.reshape(di), h_new

    def out_proj(self, L, y, z):
        cfg = self.cfg
        g = self.ops.gated_rmsnorm(y, z, L["gate_norm"], cfg.n_groups, cfg.layer_norm_epsilon)
        return self.ops.linear(g, L["out_proj"]) + L["out_bias"]

    # --- the mixer in four parts (see MambaLM.mixer_in) ---------------------------------------
    def mixer_in(self, L, x):
        z, xbc, dt = self.in_proj(L, x)
        return xbc, (z, dt)

    def ssm_inputs_rows(self, L, act, extras):
        return (extras[1],)                        # dt before softplus: scan_step applies it

    def ssm_row(self, L, h, act, inputs):
        return self.scan_step(L, act, inputs[0], h)

    def mixer_out(self, L, y, extras):
        return self.out_proj(L, y, extras[0])

    def layer_flops(self):
        cfg = self.cfg
        d, di, cd, H, N = cfg.hidden_size, cfg.intermediate_size, cfg.conv_dim, cfg.num_heads, cfg.state_size
        proj = 2 * d * (di + cd + H) + 2 * di * d
        return proj + 2 * cfg.conv_kernel * cd + 6 * di * N + 4 * di

    def initial_state(self):
        cfg = self.cfg
        return MambaState([np.zeros((cfg.conv_dim, cfg.conv_kernel - 1), np.float32)
                           for _ in range(cfg.num_hidden_layers)],
                          [np.zeros((cfg.num_heads, cfg.head_dim, cfg.state_size), np.float32)
                           for _ in range(cfg.num_hidden_layers)])

    def forward(self, tokens, state=None, return_state=False):
        """Prefill: logits [T, vocab] (float32), optionally from `state` and returning the state
        after the last token. Linear layers over the sequence, conv and scan token by token."""
        tokens = self.check_tokens(tokens)
        ops = self.ops
        state = state if state is not None else self.initial_state()
        x = self.embed(tokens)
        new_state = MambaState()
        for li, L in enumerate(self.layers):
            z, xbc, dt = self.in_proj(L, x)
            conv, h, y = state.conv[li], state.ssm[li], np.empty_like(z)
            for t in range(len(tokens)):
                act, conv = ops.conv_step(conv, xbc[t], L["conv_w"], L["conv_b"])
                y[t], h = self.scan_step(L, act, dt[t], h)
            x = x + self.out_proj(L, y, z)
            new_state.conv.append(conv.copy())
            new_state.ssm.append(h)
        logits = self.logits(x)
        return (logits, new_state) if return_state else logits

    def step(self, token, state: MambaState):
        """Decode one token: returns (logits [vocab], new state). `state` is not modified."""
        tok = self.check_tokens(np.array([token]))[0]
        x = self.embed(tok)
        new = MambaState()
        for li, L in enumerate(self.layers):
            z, xbc, dt = self.in_proj(L, x)
            act, conv = self.ops.conv_step(state.conv[li], xbc, L["conv_w"], L["conv_b"])
            y, h = self.scan_step(L, act, dt, state.ssm[li])
            x = x + self.out_proj(L, y, z)
            new.conv.append(conv)
            new.ssm.append(h)
        return self.logits(x), new
