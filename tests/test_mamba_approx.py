"""The reduced Mamba study of approximate normalization (`bench/mamba_approx.py` runs the full
one): the trained byte-level targets with every linear layer on the matrix engine's arithmetic
(`EngineLinearOps`: bf16 operands, fp32 accumulation) stay within 0.1% of the float32 model's
held-out bits per byte, exact and at the area design point; a model with perturbed weights
moves more than twice as far (10% noise on out_proj: 0.3-0.4%; the negative control)."""

import numpy as np
import pytest

from specmx.models.config import FMAConfig
from specmx.models.corpus import bits_per_byte, heldout_windows
from specmx.models.mamba import load_pretrained
from specmx.models.mamba_ops import FLOAT_OPS, EngineLinearOps


@pytest.mark.parametrize("name", ["py-mamba1", "py-mamba2"])
def test_engine_arithmetic_keeps_bits_per_byte(name):
    windows = heldout_windows(1, 65, skip=512)
    model = load_pretrained(name)
    model.ops = FLOAT_OPS
    ref = bits_per_byte(model, windows)
    assert 0.5 < ref < 4.0                                    # a trained model on held-out text
    for norm in ("exact", "window=4,step=4,policy=internal,sum=30"):
        model.ops = EngineLinearOps(FMAConfig("bf16", "fp32", **FMAConfig.parse_norm(norm)))
        bpb = bits_per_byte(model, windows)
        assert bpb != ref and abs(bpb / ref - 1) < 0.001, (norm, bpb, ref)
    model.ops = FLOAT_OPS
    rng = np.random.default_rng(0)
    for layer in model.layers:                                # 10% noise on every out_proj weight
        w = layer["out_proj"]
        layer["out_proj"] = w + (rng.standard_normal(w.shape) * 0.1 * np.abs(w).mean()).astype(w.dtype)
    assert abs(bits_per_byte(model, windows) / ref - 1) > 0.002
