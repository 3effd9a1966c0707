"""The fast routes to the golden's bits: the native floating-point route for exact
configurations (`native_fma`) and the compiled datapath (`fma_kernel`), each against the
vectorised golden `fma.fma` bit for bit (NaNs are canonical in both, so raw patterns compare)."""

import numpy as np
import pytest
from bitcheck import assert_bits_equal

from specmx.models.config import FMAConfig
from specmx.models.fma import fma
from specmx.models.fma_kernel import fma_fast
from specmx.models.formats import get_format
from specmx.models.gemm import gemm_chain
from specmx.models.native_fma import fma_native, gemm_native, has_native_route
from specmx.sim.vectors import corner_values, fma_vectors

EXACT = [("bf16", "fp32", "rne"), ("bf16", "fp32", "rtz"), ("fp16", "fp32", "rne"), ("bf16", "bf16", "rne"),
         ("fp16", "fp16", "rtz"), ("e4m3", "fp16", "rne"), ("e5m2", "bf16", "rtz"), ("e4m3", "fp32", "rne")]


@pytest.mark.parametrize("in_fmt,acc_fmt", [("e4m3", "fp32"), ("e5m2", "fp16"), ("e4m3", "bf16")])
def test_native_every_fp8_pair(in_fmt, acc_fmt):
    """Every (a, b) fp8 pair with the accumulator's corners and random addends."""
    cfg = FMAConfig(in_fmt, acc_fmt)
    a, b = (x.ravel() for x in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    rng = np.random.default_rng(4)
    fac = get_format(acc_fmt)
    for c in np.concatenate([corner_values(fac), rng.integers(0, 1 << fac.width, 8)]):
        cc = np.full_like(a, c)
        assert_bits_equal(fma_native(a, b, cc, cfg), fma(a, b, cc, cfg), f"{cfg.name} c={hex(c)}")


@pytest.mark.parametrize("in_fmt,acc_fmt,rounding", EXACT)
def test_native_random_and_corners(in_fmt, acc_fmt, rounding):
    """fma_vectors: every corner combination, then random patterns, cancellations and
    subnormal ranges; 1M triples for bf16 x bf16 + fp32, 100k for the others."""
    cfg = FMAConfig(in_fmt, acc_fmt, rounding=rounding)
    n = 1_000_000 if (in_fmt, acc_fmt, rounding) == ("bf16", "fp32", "rne") else 100_000
    a, b, c = fma_vectors(cfg, n, seed=5)
    assert_bits_equal(fma_native(a, b, c, cfg), fma(a, b, c, cfg), cfg.name)


def test_native_route_is_only_for_exact_single_rounding():
    assert has_native_route(FMAConfig())
    for cfg in (FMAConfig(window=8, step=2), FMAConfig(step=2, policy="internal"), FMAConfig(subnormals="flush"),
                FMAConfig(sum_bits=30)):
        assert not has_native_route(cfg)
        with pytest.raises(ValueError, match="norm: the native route needs an exact configuration"):
            fma_native(np.array([0]), np.array([0]), np.array([0]), cfg)


def test_naive_float32_route_fails_negative_control():
    """Without the product-exactness check, float32 a*b + c rounds products that underflow
    twice: the corner set catches it."""
    cfg = FMAConfig()
    a, b, c = fma_vectors(cfg, 100_000, seed=6)
    f32 = lambda x, w: (x.astype(np.uint32) << (32 - w)).view(np.float32)   # bf16 words -> float32
    with np.errstate(all="ignore"):
        naive = (f32(a, 16) * f32(b, 16) + c.astype(np.uint32).view(np.float32)).view(np.uint32).astype(np.int64)
    naive = np.where(np.isnan(naive.astype(np.uint32).view(np.float32)), cfg.acc_f.canonical_nan, naive)
    golden = fma(a, b, c, cfg)
    assert (naive != golden).sum() > 0
    assert (fma_native(a, b, c, cfg) == golden).all()


@pytest.mark.parametrize("in_fmt,acc_fmt,rounding", EXACT[:4])
def test_native_gemm_equals_the_fma_chain(in_fmt, acc_fmt, rounding):
    cfg = FMAConfig(in_fmt, acc_fmt, rounding=rounding)
    rng = np.random.default_rng(7)
    A = rng.integers(0, 1 << cfg.in_f.width, (2, 5, 19))
    B = rng.integers(0, 1 << cfg.in_f.width, (2, 19, 6))
    C = rng.integers(0, 1 << cfg.acc_f.width, (2, 5, 6))
    expected = C
    for k in range(19):
        expected = fma(A[..., k:k + 1], B[..., k:k + 1, :], expected, cfg)
    assert_bits_equal(gemm_native(cfg, A, B, C), expected, cfg.name)


def _kernel_configs():
    out = []
    for in_fmt, acc_fmt in [("bf16", "fp32"), ("fp16", "fp32"), ("e4m3", "fp16"), ("e5m2", "bf16"), ("bf16", "bf16")]:
        for norm in [{}, dict(window=8, step=2), dict(window=4, step=4, policy="internal"),
                     dict(window=6, policy="flush"), dict(step=2, policy="internal"), dict(window=8, step=8),
                     dict(window=4, step=2, sum_bits=max(2 * get_format(in_fmt).precision, get_format(acc_fmt).precision) + 2),
                     dict(window=4, step=4, policy="internal",
                          sum_bits=max(2 * get_format(in_fmt).precision, get_format(acc_fmt).precision + 3) + 3)]:
            for rounding, sub in [("rne", "ieee"), ("rtz", "flush")]:
                out.append(FMAConfig(in_fmt, acc_fmt, rounding=rounding, subnormals=sub, **norm))
    return out


@pytest.mark.parametrize("cfg", _kernel_configs(), ids=lambda c: f"{c.name}:{c.subnormals}")
def test_compiled_datapath_equals_golden(cfg):
    a, b, c = fma_vectors(cfg, 20_000, seed=8)
    assert_bits_equal(fma_fast(a, b, c, cfg), fma(a, b, c, cfg), cfg.name)


@pytest.mark.parametrize("cfg", [FMAConfig(window=8, step=2), FMAConfig(window=4, step=4, policy="internal"),
                                 FMAConfig(window=4, step=4, policy="internal", sum_bits=30),
                                 FMAConfig("e4m3", "fp16", window=6, step=2, rounding="rtz")], ids=lambda c: c.name)
def test_compiled_gemm_equals_vectorised_chain(cfg):
    """The per-configuration kernel (`gemm_fast`, parameters compiled in) against the chain of
    vectorised golden FMAs, batched and broadcast operands, random words (NaNs, infinities
    and subnormals included)."""
    rng = np.random.default_rng(9)
    A = rng.integers(0, 1 << cfg.in_f.width, (3, 5, 17))
    B = rng.integers(0, 1 << cfg.in_f.width, (17, 7))
    C = rng.integers(0, 1 << cfg.acc_f.width, (3, 5, 7))
    assert_bits_equal(gemm_chain(cfg, A, B, C, compiled=True), gemm_chain(cfg, A, B, C), cfg.name)


def test_compiled_gemm_negative_control():
    """A kernel checked against another configuration's chain (round-toward-zero) differs:
    the comparison can fail."""
    kernel, other = FMAConfig(window=8, step=2), FMAConfig(window=8, step=2, rounding="rtz")
    rng = np.random.default_rng(11)
    A = rng.integers(0, 1 << 16, (40, 17))
    B, C = rng.integers(0, 1 << 16, (17, 30)), rng.integers(0, 1 << 32, (40, 30))
    assert (gemm_chain(kernel, A, B, C, compiled=True) != gemm_chain(other, A, B, C)).sum() > 100


def test_compiled_datapath_negative_control():
    """The same kernel told the wrong rounding gives other bits: the comparison can fail."""
    cfg = FMAConfig(window=8, step=2)
    a, b, c = fma_vectors(cfg, 20_000, seed=10)
    wrong = fma_fast(a, b, c, FMAConfig(window=8, step=2, rounding="rtz"))
    assert (wrong != fma(a, b, c, cfg)).sum() > 1000


@pytest.mark.parametrize("cfg", [FMAConfig(), FMAConfig(window=8, step=2)], ids=lambda c: c.name)
def test_matmul_values_is_the_fma_chain_for_batches_and_vectors(cfg):
    """`gemm.matmul_values` (what EngineLinearOps and HardwareOps run linear layers with): the
    operands rounded to bf16, the chain of golden FMAs over k from +0 or the bias, for a batch
    of rows and for a single vector (a decode step's 1-D input)."""
    from specmx.models.formats import decode, encode
    from specmx.models.gemm import matmul_values
    rng = np.random.default_rng(14)
    x, w, bias = rng.standard_normal((2, 3, 17)), rng.standard_normal((17, 5)), rng.standard_normal(5)
    a, b = encode(x, cfg.in_f), encode(w, cfg.in_f)
    for c0 in (None, bias):
        c = np.broadcast_to(encode(np.zeros(1) if c0 is None else c0, cfg.acc_f), (2, 3, 5))
        for k in range(17):
            c = fma(a[..., k:k + 1], b[k], c, cfg)
        expected = decode(c, cfg.acc_f).astype(np.float32)
        got = matmul_values(cfg, x, w, c0)
        assert got.shape == (2, 3, 5) and np.array_equal(got.view(np.uint32), expected.view(np.uint32))
        one = matmul_values(cfg, x[1, 2], w, c0)
        assert one.shape == (5,) and np.array_equal(one.view(np.uint32), expected[1, 2].view(np.uint32))
