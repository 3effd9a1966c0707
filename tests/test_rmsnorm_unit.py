"""The RMSNorm unit against the hardware numerics model: every result bit for bit on random
vectors and corners (zeros, squares that overflow, subnormals, NaN/inf, one nonzero) with random
idle input and back-pressure; measured cycles equal the cycle model; negative controls."""

from dataclasses import replace

import pytest

from specmx.models.config import FMAConfig
from specmx.models.perf.ssm import rmsnorm_cycles
from specmx.sim.ssm_check import check_rmsnorm


def _off_by_one(*args):
    cycles = rmsnorm_cycles(*args)
    return replace(cycles, total=cycles.total + 1)


def test_rmsnorm_matches_numerics_and_cycle_model():
    report = check_rmsnorm(FMAConfig(), 7, vectors=8, idle=0.2, backpressure=0.2, seed=8)
    assert report["mismatches"] == 0, report["first_mismatches"]
    assert report["cycles_match"], (report["cycles"], report["predicted_cycles"])
    assert report["ok"] and report["starved"] > 0 and report["held"] > 0
    bad = check_rmsnorm(FMAConfig(), 7, vectors=6, corrupt=2, seed=9)
    assert bad["mismatches"] == 2 and not bad["ok"]
    off = check_rmsnorm(FMAConfig(), 7, vectors=6, backpressure=0.3, seed=9, cycle_model=_off_by_one)
    assert off["mismatches"] == 0 and not off["cycles_match"] and not off["ok"]


@pytest.mark.regress
@pytest.mark.parametrize("fma, length, eps", [
    (FMAConfig(), 64, 1e-5),
    (FMAConfig(), 1, 0.0),
    (FMAConfig(window=8, step=2, policy="round"), 24, 1e-6),
], ids=["exact-64", "exact-1-eps0", "approx-24"])
def test_rmsnorm_regression(fma, length, eps):
    report = check_rmsnorm(fma, length, vectors=12, eps=eps, idle=0.15, backpressure=0.15, seed=10)
    assert report["ok"], (report["first_mismatches"], report["cycles"], report["predicted_cycles"])


def test_rmsnorm_rejects_bad_configuration():
    from specmx.hdl.rmsnorm import RMSNormUnit
    with pytest.raises(ValueError, match="length: must be an integer in 1..8192"):
        RMSNormUnit(FMAConfig(), 0)
    with pytest.raises(ValueError, match="fma: the RMSNorm unit takes bf16"):
        RMSNormUnit(FMAConfig("fp16", "fp32"), 8)
    with pytest.raises(ValueError, match="eps"):
        RMSNormUnit(FMAConfig(), 8, eps=-1.0)
