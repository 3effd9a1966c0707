"""FMA RTL vs the golden model in cocotb: every result compared bit for bit."""

import pytest

from specmx.models.fma import FMAConfig
from specmx.sim.fma_check import check_fma
from specmx.sim.runner import available_simulators

# (config, pipeline stages): the required formats, approximate policies, every depth.
CONFIGS = [
    (FMAConfig("bf16", "fp32"), 12),
    (FMAConfig("bf16", "bf16"), 1),
    (FMAConfig("e4m3", "fp32"), 3),
    (FMAConfig("e5m2", "bf16"), 0),
    (FMAConfig("bf16", "fp32", window=8, step=4, policy="internal"), 5),
    (FMAConfig("bf16", "bf16", window=4, step=2, policy="round"), 2),
    (FMAConfig("bf16", "fp32", window=8, step=1, policy="flush"), 4),
    (FMAConfig("fp16", "fp32", rounding="rtz", subnormals="flush"), 2),
    (FMAConfig("bf16", "bf16", window=4, step=2, policy="round", rounding="rtz"), 1),
    (FMAConfig("bf16", "fp32", window=4, step=4, policy="internal", rounding="rtz"), 2),
    (FMAConfig("bf16", "fp32", window=4, step=4, policy="internal"), 7),
    # the narrow sum register (sum_bits)
    (FMAConfig("bf16", "bf16", window=4, step=2, policy="round", rounding="rtz", sum_bits=20), 1),
    (FMAConfig("bf16", "fp32", window=4, step=4, policy="internal", sum_bits=30), 2),
]


# `make test` simulates these seven (every format, policy, rounding, subnormal mode, a narrow sum
# register, and pipeline depths 0..5 and 12 among them); `make regress` runs all thirteen with 1M
# vectors each (depth 7 too).
QUICK = [CONFIGS[i] for i in (0, 2, 3, 4, 6, 7, 11)]


def _ids(case):
    cfg, stages = case
    return f"{cfg.name}-s{stages}"


@pytest.mark.parametrize("case", QUICK, ids=_ids)
def test_rtl_matches_golden(case):
    cfg, stages = case
    report = check_fma(cfg, vectors=20000, stages=stages, stall=0.05, seed=1)
    assert report["vectors"] == 20000 and report["results"] == 20000
    assert report["mismatches"] == 0, report["first_mismatches"]
    assert report["passed"]


@pytest.mark.regress
@pytest.mark.parametrize("case", CONFIGS, ids=_ids)
def test_rtl_matches_golden_1m(case):
    cfg, stages = case
    report = check_fma(cfg, vectors=1_000_000, stages=stages, seed=2)
    assert report["mismatches"] == 0 and report["passed"], report["first_mismatches"]


WIDE = [(FMAConfig("bf16", "fp32"), 2), (FMAConfig("bf16", "fp32", window=8, step=4, policy="round"), 1)]


@pytest.mark.parametrize("case", [WIDE[0], pytest.param(WIDE[1], marks=pytest.mark.regress)], ids=_ids)
def test_wide_rtl_matches_golden(case):
    """The wide FMA (bf16 x fp32 + fp32, the SSM state products) against `fma_wide`."""
    cfg, stages = case
    report = check_fma(cfg, vectors=20000, stages=stages, stall=0.05, seed=3, wide=True)
    assert report["results"] == 20000 and report["mismatches"] == 0 and report["passed"], report["first_mismatches"]


def test_wide_rtl_check_fails_on_corrupted_expectation():
    report = check_fma(WIDE[0][0], vectors=3000, stages=2, corrupt=3, wide=True)
    assert report["mismatches"] == 3 and not report["passed"]


def test_rtl_check_fails_on_corrupted_expectation():
    """Negative control: three expected words with a flipped bit must be reported."""
    report = check_fma(CONFIGS[0][0], vectors=3000, stages=2, corrupt=3)
    assert report["mismatches"] == 3
    assert not report["passed"]


def test_pipeline_throughput_is_one_per_cycle():
    report = check_fma(CONFIGS[0][0], vectors=4000, stages=2)
    # 4000 operand sets issued back to back leave after 4000 + 2 pipeline cycles (+reset edge).
    assert report["cycles"] <= 4000 + 2 + 1


@pytest.mark.skipif("icarus" not in available_simulators(), reason="Icarus Verilog not installed")
def test_rtl_matches_golden_on_icarus():
    report = check_fma(FMAConfig("e5m2", "bf16"), vectors=3000, stages=2, simulator="icarus")
    assert report["mismatches"] == 0 and report["passed"]
