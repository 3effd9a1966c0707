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


# The unit's own runs (single sequence with clear bits and corner tokens; tree mode with NaN, inf,
# 1e30 and subnormal inputs among the nodes, random stalls, negative controls) are in `make
# regress`; `make test` runs the conv unit in tree mode inside the engine (test_mamba_engine.py).
@pytest.mark.regress
def test_conv_matches_numerics_and_cycle_model():
    report = check_conv(SMALL, tokens=24, idle=0.2, backpressure=0.2, seed=2)
    assert report["mismatches"] == 0, report["first_mismatches"]
    assert report["cycles_match"], (report["cycles"], report["predicted_cycles"])
    assert report["ok"] and report["starved"] > 0 and report["held"] > 0


@pytest.mark.regress
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


# Tree mode (speculative tree verification): windows per slot, load tokens, the new window of
# every beat on the state stream.
TREE = SSMConfig(d_inner=4, lanes=2, kernel=3)


@pytest.mark.regress          # make test runs the conv in tree mode inside the engine (test_mamba_engine.py)
def test_conv_tree_mode_matches_numerics_and_cycle_model():
    from specmx.models.perf.engine import tree_parents
    from specmx.sim.ssm_check import check_conv_tree
    parent = tree_parents((3, 2, 1))
    report = check_conv_tree(TREE, parent, idle=0.2, backpressure=0.2, seed=4)
    assert report["mismatches"] == 0 and report["state_mismatches"] == 0, \
        (report["first_mismatches"], report["first_state_mismatches"])
    assert report["vectors"] == 16 * TREE.d_inner and report["state_beats"] == 16 * TREE.d_inner // TREE.lanes
    assert report["cycles_match"] and report["ok"] and report["starved"] > 0 and report["held"] > 0
    assert check_conv_tree(TREE, parent, corrupt=1, seed=5)["mismatches"] == 1
    bad = check_conv_tree(TREE, parent, corrupt_state=2, seed=5)
    assert bad["state_mismatches"] == 2 and bad["mismatches"] == 0 and not bad["ok"]
    off = check_conv_tree(TREE, parent, backpressure=0.3, seed=5, cycle_model=lambda *a: _off_by_one(conv_cycles(*a)))
    assert not off["cycles_match"] and not off["ok"]


@pytest.mark.regress
@pytest.mark.parametrize("ssm", [SSMConfig(d_inner=8, lanes=4, kernel=4), SSMConfig(d_inner=3, lanes=1, kernel=4)],
                         ids=["d8-l4-k4", "d3-l1-k4"])
def test_conv_tree_mode_regression(ssm):
    from specmx.models.perf.engine import tree_parents
    from specmx.sim.ssm_check import check_conv_tree
    for k, parent in enumerate([[-1], tree_parents((1, 1, 1, 1)), tree_parents((2, 2, 2)),
                                [-1, 0, 0, 1, 1, 2, 5, 5, 3]]):
        report = check_conv_tree(ssm, parent, idle=0.15, backpressure=0.15, seed=30 + k)
        assert report["ok"], (parent, report["first_mismatches"], report["cycles"], report["predicted_cycles"])


def test_conv_slot_golden_equals_running_each_node_from_its_parent():
    import numpy as np
    from specmx.models.formats import decode, encode
    from specmx.models.ssm_numerics import HardwareOps, conv_slots_stream
    from specmx.sim.ssm_check import conv_tree_vectors
    ops = HardwareOps(TREE.fma, TREE.lanes)
    parent = [-1, 0, 0, 1, 1, 2, 5, 5, 3, 0]
    x, w, bias, v, slots = conv_tree_vectors(TREE, parent, seed=4)
    y, windows = conv_slots_stream(ops, x, w, bias, v, slots)
    wv, bv = decode(w, "bf16"), decode(bias, "bf16")
    start = decode(v["win"][0], "bf16").astype(np.float32)
    node_window = {}
    for i, p in enumerate(parent):
        out, node_window[i] = ops.conv_step(start if p < 0 else node_window[p],
                                            decode(x[i + 1], "fp32").astype(np.float32), wv, bv)
        assert np.array_equal(encode(out.astype(np.float64), "fp32"), y[i]), i
        assert np.array_equal(encode(ops.operand(node_window[i]), "bf16"), windows[i]), i
