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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specmx.models.mamba_ops import FLOAT_OPS

__all__ = ["MambaConfig", "MambaLM", "RecurrentLM", "MambaState", "PRESETS", "PRETRAINED", "get_preset", "pretrained_dir",
           "load_pretrained",
           "read_config_json", "read_safetensors"]


def check_positive_ints(cfg, names):
    """Each named field of a model config must be a positive integer (ValueError naming it)."""
    for name in names:
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: must be a positive integer, got {v!r}")


def check_hf_mapping(cfg):
    """A config.json must be a JSON object with the keys every model family needs."""
    if not isinstance(cfg, dict):
        raise ValueError(f"config.json: expected a JSON object, got {type(cfg).__name__}")
    missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers") if k not in cfg]
    if missing:
        raise ValueError(f"config.json: missing key {missing[0]!r}")


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
        check_positive_ints(self, ("vocab_size", "hidden_size", "state_size", "num_hidden_layers", "expand",
                                   "conv_kernel"))

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
        """From a transformers config.json mapping. Raises ValueError naming the key."""
        check_hf_mapping(cfg)
        rank = cfg.get("time_step_rank", 0)
        kwargs = dict(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                      state_size=cfg.get("state_size", 16), num_hidden_layers=cfg["num_hidden_layers"],
                      expand=cfg.get("expand", 2), conv_kernel=cfg.get("conv_kernel", 4),
                      time_step_rank=0 if rank == "auto" else rank,
                      layer_norm_epsilon=cfg.get("layer_norm_epsilon", 1e-5),
                      use_conv_bias=cfg.get("use_conv_bias", True), use_bias=cfg.get("use_bias", False))
        if isinstance(kwargs["time_step_rank"], bool) or not isinstance(kwargs["time_step_rank"], int) \
                or kwargs["time_step_rank"] < 0:
            raise ValueError(f"config.json: time_step_rank: must be 'auto' or an integer >= 0, got {rank!r}")
        if isinstance(kwargs["layer_norm_epsilon"], bool) or not isinstance(kwargs["layer_norm_epsilon"], (int, float)):
            raise ValueError(f"config.json: layer_norm_epsilon: must be a number, "
                             f"got {kwargs['layer_norm_epsilon']!r}")
        for key in ("use_conv_bias", "use_bias"):
            if not isinstance(kwargs[key], bool):
                raise ValueError(f"config.json: {key}: must be true or false, got {kwargs[key]!r}")
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ValueError(f"config.json: {exc}") from None


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


# Trained byte-level models shipped with specmx (models/pretrained/<name>: config.json,
# model.safetensors, README.md model card); `pretrained_dir` finds them in the installed package.
PRETRAINED = ("py-mamba1", "py-mamba1-draft", "py-mamba2", "py-mamba2-draft")


def pretrained_dir(name):
    from importlib import resources
    if name not in PRETRAINED:
        raise ValueError(f"model: unknown pretrained model {name!r}; allowed: {', '.join(PRETRAINED)}")
    return Path(str(resources.files("specmx.models") / "pretrained" / name))


def load_pretrained(path):
    """A saved model directory (or a shipped model's name) as `MambaLM` or `Mamba2LM`, by the
    `model_type` of its config.json."""
    if path in PRETRAINED:
        path = pretrained_dir(path)
    if read_config_json(path).get("model_type", "mamba") == "mamba2":
        from specmx.models.mamba2 import Mamba2LM
        return Mamba2LM.from_pretrained(path)
    return MambaLM.from_pretrained(path)


def get_preset(name):
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"model: unknown preset {name!r}; allowed: {', '.join(PRESETS)}") from None


def read_config_json(directory):
    """The parsed config.json of a model directory; ValueError for anything unreadable."""
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"{str(d)!r} is not a directory")
    path = d / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{str(d)!r} has no config.json (needs config.json and model.safetensors)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"config.json: cannot read it ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"config.json: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def read_safetensors(directory):
    """All tensors of model.safetensors as float32-or-native numpy arrays; ValueError when the
    file is missing, truncated or not safetensors."""
    from safetensors.numpy import load_file
    path = Path(directory) / "model.safetensors"
    if not path.is_file():
        raise ValueError(f"{str(directory)!r} has no model.safetensors (needs config.json and model.safetensors)")
    try:
        return load_file(str(path))
    except Exception as exc:   # safetensors raises its own error types for bad headers/sizes
        detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ValueError(f"model.safetensors: cannot load it ({detail})") from None


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


class RecurrentLM:
    """What every numpy language model of specmx shares, whatever its mixer: weights checked
    against `_expected_shapes(cfg)` and held as float32, token checks, the embedding, files and
    greedy decoding. A family supplies `config_class`, `_expected_shapes`, `_layer`, `forward`,
    `step` and `initial_state`."""

    def __init__(self, cfg, weights: dict, ops=FLOAT_OPS):
        self.cfg, self.ops = cfg, ops
        shapes = self._expected_shapes(cfg)
        for name, shape in shapes.items():
            if name not in weights:
                raise ValueError(f"weights: missing tensor {name!r} (expected shape {shape})")
            if tuple(weights[name].shape) != shape:
                raise ValueError(f"weights: tensor {name!r} has shape {tuple(weights[name].shape)}, "
                                 f"expected {shape}")
        self.w = {k: np.ascontiguousarray(weights[k], dtype=np.float32) for k in shapes}
        self.layers = [self._layer(i) for i in range(cfg.num_hidden_layers)]

    @classmethod
    def from_pretrained(cls, directory):
        """Read a directory written by transformers' save_pretrained (config.json +
        model.safetensors). Raises ValueError (one line naming the file and what is wrong)."""
        cfg = cls.config_class.from_hf(read_config_json(directory))
        weights = read_safetensors(directory)
        if getattr(cfg, "tie_word_embeddings", True):
            weights.pop("lm_head.weight", None)        # tied to the embedding
        return cls(cfg, weights)

    def save_pretrained(self, directory):
        from safetensors.numpy import save_file
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(self.cfg.hf_config(), indent=2))
        save_file(dict(self.w), str(d / "model.safetensors"), metadata={"format": "pt"})

    def check_tokens(self, tokens):
        """A 1-D int64 array of token ids in range; ValueError otherwise."""
        t = np.asarray(tokens)
        if t.ndim != 1 or t.dtype.kind not in "iu":
            raise ValueError("tokens: expected a 1-D sequence of integer token ids")
        if t.size and (t.min() < 0 or t.max() >= self.cfg.vocab_size):
            raise ValueError(f"tokens: ids must be in 0..{self.cfg.vocab_size - 1}, "
                             f"got {int(t.min())}..{int(t.max())}")
        return t.astype(np.int64)

    def embed(self, tokens):
        return self.w["backbone.embeddings.weight"][tokens]

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


class MambaLM(RecurrentLM):
    """Mamba language model with numpy float32 weights (a dict in HuggingFace naming)."""

    config_class = MambaConfig
    _expected_shapes = staticmethod(_expected_shapes)

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

    # --- numerics (every operation through self.ops, see mamba_ops) ----------------------------
    def logits(self, x):
        """Final norm and the tied LM head: [.., vocab] float32."""
        ops = self.ops
        h = ops.rmsnorm(x, self.w["backbone.norm_f.weight"], self.cfg.layer_norm_epsilon)
        return ops.linear(h, self.w["backbone.embeddings.weight"].T).astype(np.float32, copy=False)

    def in_proj(self, L, x):
        """RMSNorm and in_proj for rows of x: (u, z), each [.., d_inner]."""
        ops, di = self.ops, self.cfg.intermediate_size
        xz = ops.linear(ops.rmsnorm(x, L["norm"], self.cfg.layer_norm_epsilon), L["in_proj"])
        return xz[..., :di], xz[..., di:]

    def ssm_inputs(self, L, ua):
        """x_proj and dt_proj for rows of conv outputs: (dt, B, C)."""
        ops, r, n = self.ops, self.cfg.dt_rank, self.cfg.state_size
        proj = ops.linear(ua, L["x_proj"])
        dt = ops.softplus(ops.linear(proj[..., :r], L["dt_proj"]) + L["dt_bias"])
        return dt, proj[..., r:r + n], proj[..., r + n:]

    def out_proj(self, L, y, z):
        """Gate and out_proj: the layer's residual update for rows of y."""
        return self.ops.linear(self.ops.gate(y, z), L["out_proj"])

    # --- the mixer in four parts, the same for both families (speculative verification) ------
    def mixer_in(self, L, x):
        """Rows of x -> (conv inputs, extras for later parts): (u, (z,))."""
        u, z = self.in_proj(L, x)
        return u, (z,)

    def ssm_inputs_rows(self, L, act, extras):
        """Rows of conv outputs -> per-row SSM inputs (dt, B, C), batched."""
        return self.ssm_inputs(L, act)

    def ssm_row(self, L, h, act, inputs):
        """One row's SSM step from its state h: (y, h')."""
        dt, B, C = inputs
        return self.ops.ssm_step(L["A"], h, dt, act, B, C, L["D"])

    def mixer_out(self, L, y, extras):
        return self.out_proj(L, y, extras[0])

    def layer_flops(self):
        cfg = self.cfg
        d, di, n, r, k = cfg.hidden_size, cfg.intermediate_size, cfg.state_size, cfg.dt_rank, cfg.conv_kernel
        return 2 * d * 2 * di + 2 * k * di + 2 * di * (r + 2 * n) + 2 * r * di + 6 * di * n + 2 * di * d

    def forward(self, tokens, state=None, return_state=False):
        """Prefill: logits [T, vocab] (float32) for a token sequence, optionally continuing
        from `state` and returning the state after the last token. Linear layers run over the
        whole sequence; conv and scan steps run token by token with the same `conv_step` and
        `ssm_step` as decoding (the two differ only in how batched and single-row matrix
        products round)."""
        tokens = self.check_tokens(tokens)
        ops = self.ops
        state = state if state is not None else self.initial_state()
        x = self.embed(tokens)
        new_state = MambaState()
        for li, L in enumerate(self.layers):
            u, z = self.in_proj(L, x)
            conv, ua = state.conv[li], np.empty_like(u)
            for t in range(len(tokens)):
                ua[t], conv = ops.conv_step(conv, u[t], L["conv_w"], L["conv_b"])
            dt, B, C = self.ssm_inputs(L, ua)
            h, y = state.ssm[li], np.empty_like(u)
            for t in range(len(tokens)):
                y[t], h = ops.ssm_step(L["A"], h, dt[t], ua[t], B[t], C[t], L["D"])
            x = x + self.out_proj(L, y, z)
            new_state.conv.append(conv.copy())
            new_state.ssm.append(h)
        logits = self.logits(x)
        return (logits, new_state) if return_state else logits

    def initial_state(self):
        cfg = self.cfg
        return MambaState([np.zeros((cfg.intermediate_size, cfg.conv_kernel - 1), np.float32)
                           for _ in range(cfg.num_hidden_layers)],
                          [np.zeros((cfg.intermediate_size, cfg.state_size), np.float32)
                           for _ in range(cfg.num_hidden_layers)])

    def step(self, token, state: MambaState):
        """Decode one token: returns (logits [vocab], new state). `state` is not modified."""
        ops = self.ops
        tok = self.check_tokens(np.array([token]))[0]
        x = self.embed(tok)
        new = MambaState()
        for li, L in enumerate(self.layers):
            u, z = self.in_proj(L, x)
            ua, conv = ops.conv_step(state.conv[li], u, L["conv_w"], L["conv_b"])
            dt, B, C = self.ssm_inputs(L, ua)
            y, h = ops.ssm_step(L["A"], state.ssm[li], dt, ua, B, C, L["D"])
            x = x + self.out_proj(L, y, z)
            new.conv.append(conv)
            new.ssm.append(h)
        return self.logits(x), new
