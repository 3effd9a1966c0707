"""The conv1d unit against the hardware numerics model: every output word bit for bit on
random and corner streams (zeros, 1e30, subnormals, NaN/inf, a clear mid-stream) with random
idle input and back-pressure; measured cycles equal the cycle model; negative controls."""

import pytest

from specmx.models.config import FMAConfig, SSMConfig
from specmx.models.perf.ssm import conv_cycles
from specmx.sim.ssm_check import check_conv

SMALL = SSMConfig(d_inner=4, lanes=1, kernel=2)


def _off_by_one(cycles):
    from dataclasses import replace
    return replace(cycles, total=cycles.total + 1)


def test_conv_matches_numerics_and_cycle_model():
    report = check_conv(SMALL, tokens=24, idle=0.2, backpressure=0.2, seed=2)
    assert report["mismatches"] == 0, report["first_mismatches"]
    assert report["cycles_match"], (report["cycles"], report["predicted_cycles"])
    assert report["ok"] and report["starved"] > 0 and report["held"] > 0


def test_conv_negative_controls():
    bad = check_conv(SMALL, tokens=10, corrupt=2, seed=3)
    assert bad["mismatches"] == 2 and not bad["ok"]
    off = check_conv(SMALL, tokens=10, backpressure=0.3, seed=3,
                     cycle_model=lambda *a: _off_by_one(conv_cycles(*a)))
    assert off["mismatches"] == 0 and not off["cycles_match"] and not off["ok"]


@pytest.mark.regress
@pytest.mark.parametrize("ssm", [
    SSMConfig(d_inner=8, lanes=2, kernel=4),
    SSMConfig(d_inner=12, lanes=4, kernel=4),
    SSMConfig(d_inner=6, lanes=3, kernel=3, fma=FMAConfig(window=8, step=2, policy="round")),
], ids=lambda s: f"d{s.d_inner}-l{s.lanes}-k{s.kernel}-{s.fma.norm_label}")
def test_conv_regression(ssm):
    report = check_conv(ssm, tokens=40, idle=0.15, backpressure=0.15, seed=4)
    assert report["ok"], (report["first_mismatches"], report["cycles"], report["predicted_cycles"])


def test_conv_rejects_bad_configuration():
    from specmx.hdl.conv import ConvUnit
    with pytest.raises(ValueError, match="lanes: must divide d_inner=6"):
        ConvUnit(SSMConfig(d_inner=6, lanes=4))
    with pytest.raises(ValueError, match="fma.in_fmt"):
        ConvUnit(SSMConfig(fma=FMAConfig("fp16", "fp32")))
