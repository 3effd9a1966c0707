"""The selective-scan unit (scan, D skip, gate) against the hardware numerics model, both
families: every gated output bit for bit on random and corner streams (zeros, negative and
large dt, state driven past fp32 overflow, subnormals, NaN/inf, a clear mid-stream) with random
idle input and back-pressure; measured cycles equal the cycle model; negative controls."""

from dataclasses import replace

import pytest

from specmx.models.config import FMAConfig, SSMConfig
from specmx.models.perf.ssm import scan_cycles, scan_latency
from specmx.sim.ssm_check import check_scan

MAMBA1 = SSMConfig(family="mamba1", d_inner=4, d_state=4, lanes=2)
MAMBA2 = SSMConfig(family="mamba2", d_inner=4, d_state=4, heads=2, groups=2, lanes=1)


def _off_by_one(*args):
    cycles = scan_cycles(*args)
    return replace(cycles, total=cycles.total + 1)


@pytest.mark.parametrize("ssm", [MAMBA1, MAMBA2], ids=["mamba1-l2", "mamba2-l1-g2"])
def test_scan_matches_numerics_and_cycle_model(ssm):
    report = check_scan(ssm, tokens=12, idle=0.2, backpressure=0.2, seed=5)
    assert report["mismatches"] == 0, report["first_mismatches"]
    assert report["vectors"] == 12 * ssm.d_inner
    assert report["cycles_match"], (report["cycles"], report["predicted_cycles"])
    assert report["ok"] and report["starved"] > 0 and report["held"] > 0
    # negative controls on the same build: corrupted expectations, a cycle model one off
    bad = check_scan(ssm, tokens=8, corrupt=2, seed=6)
    assert bad["mismatches"] == 2 and not bad["ok"]
    off = check_scan(ssm, tokens=8, backpressure=0.3, seed=6, cycle_model=_off_by_one)
    assert off["mismatches"] == 0 and not off["cycles_match"] and not off["ok"]


@pytest.mark.regress
@pytest.mark.parametrize("ssm", [
    SSMConfig(family="mamba1", d_inner=8, d_state=8, lanes=4),
    SSMConfig(family="mamba1", d_inner=5, d_state=6, lanes=3, fma=FMAConfig(window=8, step=2, policy="round")),
    SSMConfig(family="mamba2", d_inner=8, d_state=16, heads=4, groups=2, lanes=4),
    SSMConfig(family="mamba2", d_inner=6, d_state=4, heads=3, groups=1, lanes=2,
              fma=FMAConfig(window=8, step=1, policy="flush")),
], ids=lambda s: f"{s.family}-d{s.d_inner}-n{s.d_state}-l{s.lanes}-{s.fma.norm_label}")
def test_scan_regression(ssm):
    report = check_scan(ssm, tokens=32, idle=0.15, backpressure=0.15, seed=7)
    assert report["ok"], (report["first_mismatches"], report["cycles"], report["predicted_cycles"])


def test_scan_latency_counts_the_adder_tree():
    assert [scan_latency(SSMConfig(d_state=8, lanes=l)) for l in (1, 2, 3, 4, 8)] == [11, 12, 13, 13, 14]


def test_scan_rejects_bad_configuration():
    from specmx.hdl.scan import ScanUnit
    with pytest.raises(ValueError, match="lanes: must divide d_state=8"):
        ScanUnit(SSMConfig(d_state=8, lanes=3))
    with pytest.raises(ValueError, match="d_inner: the scan unit needs"):
        ScanUnit(SSMConfig(d_inner=1, d_state=4, lanes=4))
    with pytest.raises(ValueError, match="fma.in_fmt"):
        ScanUnit(SSMConfig(fma=FMAConfig("fp16", "fp32")))
