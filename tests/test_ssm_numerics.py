"""Hardware numerics of the Mamba layer: the wide FMA against MPFR, the fast exact path against
the FMA golden bit for bit, and the whole model against float Mamba (argmax agreement)."""

import copy

import numpy as np
import pytest

from oracle import oracle_fma
from specmx.models.config import FMAConfig
from specmx.models.corpus import text_to_ids
from specmx.models.fma import fma, fma_wide
from specmx.models.formats import decode, encode
from specmx.models.mamba import MambaLM, pretrained_dir
from specmx.models.mamba2 import PRESETS as MAMBA2_PRESETS, Mamba2LM
from specmx.models.ssm_numerics import HardwareOps, exact_fma_values

CFG = FMAConfig("bf16", "fp32")


def _operands(n, seed, b_fmt):
    """Random words with wide exponent spread, plus zeros, subnormals, infinities and NaNs."""
    rng = np.random.default_rng(seed)
    a = encode(rng.standard_normal(n) * 2.0 ** rng.integers(-30, 30, n), "bf16")
    b = encode(rng.standard_normal(n) * 2.0 ** rng.integers(-60, 60, n), b_fmt)
    c = encode(rng.standard_normal(n) * 2.0 ** rng.integers(-90, 90, n), "fp32")
    specials = {"bf16": [0, 0x8000, 0x0001, 0x7F80, 0xFF80, 0x7FC0], "fp32": [0, 1 << 31, 1, 0x7F800000, 0xFF800000, 0x7FC00000]}
    for arr, fmt in ((a, "bf16"), (b, b_fmt), (c, "fp32")):
        idx = rng.choice(n, n // 20, replace=False)
        arr[idx] = rng.choice(specials[fmt], idx.size)
    # exact cancellations: c = -(a*b) where representable
    idx = rng.choice(n, n // 50, replace=False)
    with np.errstate(invalid="ignore"):
        c[idx] = encode(-(decode(a[idx], "bf16") * decode(b[idx], b_fmt)), "fp32")
    return a, b, c


def test_fma_wide_is_correctly_rounded():
    a, b, c = _operands(4000, 1, "fp32")
    got = fma_wide(a, b, c, CFG)
    want = oracle_fma(a, b, c, "bf16", "fp32", b_fmt="fp32")
    assert np.array_equal(got, want)


def test_fma_wide_oracle_negative_control():
    a, b, c = _operands(500, 2, "fp32")
    got = fma_wide(a, b, c, CFG)
    got[7] ^= 1
    assert not np.array_equal(got, oracle_fma(a, b, c, "bf16", "fp32", b_fmt="fp32"))


@pytest.mark.parametrize("b_fmt", ["bf16", "fp32"])
def test_fast_exact_path_equals_the_fma_golden(b_fmt):
    """The float64 emulation the model uses for exact configs is bit-identical to the golden
    (NaN: any NaN; compared as raw fp32 patterns with NaNs canonical)."""
    a, b, c = _operands(50_000, 3, b_fmt)
    golden = (fma if b_fmt == "bf16" else fma_wide)(a, b, c, CFG)
    fast = encode(exact_fma_values(decode(a, "bf16"), decode(b, b_fmt), decode(c, "fp32")), "fp32")
    assert np.array_equal(fast, golden)


def test_approximate_configs_run_the_golden():
    approx = FMAConfig("bf16", "fp32", window=8, step=2, policy="round")
    ops = HardwareOps(approx)
    assert not ops.fast
    a, b, c = _operands(2000, 4, "fp32")
    got = encode(ops.fma_wide(decode(a, "bf16"), decode(b, "fp32"), decode(c, "fp32")), "fp32")
    nan = np.isnan(decode(got, "fp32"))
    assert np.array_equal(got[~nan], fma_wide(a, b, c, approx)[~nan])


def _agreement(model, tokens, ops):
    ref = model.forward(tokens)
    hw = copy.copy(model)
    hw.ops = ops
    got = hw.forward(tokens)
    return float((got.argmax(-1) == ref.argmax(-1)).mean()), float(np.abs(got - ref).max() / np.abs(ref).max())


TEXT = text_to_ids(open(__file__).read())[:256]


def _mamba2_micro():
    """Mamba-2 micro (3 groups) with a byte vocabulary; random weights with the embedding at
    unit scale, so the logits have a clear winner as a trained model's do (with the default
    0.02 they are near-uniform and argmax agreement would measure ties, not numerics)."""
    cfg = MAMBA2_PRESETS["mamba2-tiny"]
    model = Mamba2LM.random(cfg, seed=3)
    model.w["backbone.embeddings.weight"] *= 50.0
    return Mamba2LM(cfg, model.w)


def test_trained_mamba1_agrees_with_float():
    """py-mamba1-draft (trained, 82k parameters) on 256 bytes of real text: >= 98% next-byte
    argmax agreement with bf16 operands and fp32 accumulation (measured: README)."""
    agree, rel = _agreement(MambaLM.from_pretrained(pretrained_dir("py-mamba1-draft")), TEXT, HardwareOps())
    assert agree >= 0.98 and rel < 0.05, (agree, rel)


def test_mamba2_agrees_with_float():
    agree, rel = _agreement(_mamba2_micro(), TEXT, HardwareOps())
    assert agree >= 0.98 and rel < 0.05, (agree, rel)


def test_agreement_check_negative_control():
    """E4M3 operands (3 mantissa bits) must fail the same check."""
    agree, rel = _agreement(MambaLM.from_pretrained(pretrained_dir("py-mamba1-draft")), TEXT,
                            HardwareOps(FMAConfig("e4m3", "fp32")))
    assert agree < 0.98 or rel >= 0.05


def test_scan_reduction_order_is_the_lanes_order():
    """y reduces in `lanes` partial sums then a tree: different lanes may give different bits,
    and lanes=1 is the plain sequential chain."""
    rng = np.random.default_rng(5)
    C = rng.standard_normal((1, 16)).astype(np.float32)
    h = (rng.standard_normal((3, 16)) * 100).astype(np.float32)
    one = HardwareOps(lanes=1)
    chain = np.zeros(3)
    for n in range(16):
        chain = one.fma_wide(one.operand(C[:, n]), h[:, n].astype(np.float64), chain)
    y1 = one._reduce(one.operand(C), h, np.zeros(3), np.zeros(3))
    assert np.array_equal(y1, one.fma(0.0, 0.0, chain))
    ys = {lanes: HardwareOps(lanes=lanes)._reduce(one.operand(C), h, np.zeros(3), np.zeros(3)) for lanes in (1, 2, 4, 16)}
    assert all(np.allclose(y, ys[1], rtol=1e-5) for y in ys.values())


def test_bad_configuration_is_one_line():
    with pytest.raises(ValueError, match="fp32 accumulator"):
        HardwareOps(FMAConfig("bf16", "bf16"))
    with pytest.raises(ValueError, match="lanes"):
        HardwareOps(lanes=0)
