"""The selective-scan unit (scan, D skip, gate) against the hardware numerics model, both
families: every gated output bit for bit on random and corner streams (zeros, negative and
large dt, state driven past fp32 overflow, subnormals, NaN/inf, a clear mid-stream) with random
idle input and back-pressure; measured cycles equal the cycle model; negative controls."""

from dataclasses import replace

import pytest

import numpy as np

from specmx.models.config import FMAConfig, SSMConfig
from specmx.models.formats import decode, encode
from specmx.models.perf.engine import tree_parents
from specmx.models.perf.ssm import scan_cycles, scan_latency
from specmx.models.ssm_numerics import HardwareOps, scan_slots_stream
from specmx.sim.ssm_check import check_scan, check_scan_tree, scan_tree_vectors

MAMBA1 = SSMConfig(family="mamba1", d_inner=4, d_state=4, lanes=2)
MAMBA2 = SSMConfig(family="mamba2", d_inner=4, d_state=4, heads=2, groups=2, lanes=1)


def _off_by_one(*args):
    cycles = scan_cycles(*args)
    return replace(cycles, total=cycles.total + 1)


# `make regress`: make test runs the scan unit in tree mode (below, and inside the engine in
# test_mamba_engine.py) and on Icarus.
@pytest.mark.parametrize("ssm", [pytest.param(MAMBA1, marks=pytest.mark.regress),
                                 pytest.param(MAMBA2, marks=pytest.mark.regress)],
                         ids=["mamba1-l2", "mamba2-l1-g2"])
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


# Tree mode: `make test` runs Mamba-2 (the plain stream above runs Mamba-1), `make regress` both.
@pytest.mark.parametrize("ssm", [MAMBA2, pytest.param(MAMBA1, marks=pytest.mark.regress)],
                         ids=["mamba2-l1-g2", "mamba1-l2"])
def test_scan_tree_mode_matches_numerics_and_cycle_model(ssm):
    """A (3, 2, 1) token tree (16 nodes, 6 slots) after a load of a random starting state: every
    node's gated outputs and new state bit for bit, cycles equal to the model, gaps and
    back-pressure on all three streams; negative controls on the same build."""
    parent = tree_parents((3, 2, 1))
    report = check_scan_tree(ssm, parent, idle=0.2, backpressure=0.2, seed=5)
    assert report["mismatches"] == 0 and report["state_mismatches"] == 0, \
        (report["first_mismatches"], report.get("first_state_mismatches"))
    assert report["vectors"] == 16 * ssm.d_inner and report["state_beats"] == 16 * ssm.d_inner * ssm.d_state // ssm.lanes
    assert report["cycles_match"] and report["ok"] and report["starved"] > 0 and report["held"] > 0
    assert check_scan_tree(ssm, parent, corrupt=1, seed=6)["mismatches"] == 1
    bad = check_scan_tree(ssm, parent, corrupt_state=2, seed=6)
    assert bad["state_mismatches"] == 2 and bad["mismatches"] == 0 and not bad["ok"]
    off = check_scan_tree(ssm, parent, backpressure=0.3, seed=6, cycle_model=_off_by_one)
    assert not off["cycles_match"] and not off["ok"]


@pytest.mark.regress
@pytest.mark.parametrize("ssm", [SSMConfig(family="mamba1", d_inner=4, d_state=8, lanes=4),
                                 SSMConfig(family="mamba2", d_inner=6, d_state=4, heads=3, groups=1, lanes=2)],
                         ids=["mamba1-l4", "mamba2-l2"])
def test_scan_tree_mode_regression(ssm):
    for k, parent in enumerate([[-1], tree_parents((1, 1, 1, 1)), tree_parents((2, 2, 2)),
                                [-1, 0, 0, 1, 1, 2, 5, 5, 3]]):
        report = check_scan_tree(ssm, parent, idle=0.15, backpressure=0.15, seed=20 + k)
        assert report["ok"], (parent, report["first_mismatches"], report["cycles"], report["predicted_cycles"])


@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
def test_slot_golden_equals_running_each_node_from_its_parent(family):
    """The tree-mode golden (a slot memory) gives every node the state and output of a step from
    its parent's state, as `specdec.verify_tree` runs them."""
    ssm = MAMBA1 if family == "mamba1" else MAMBA2
    ops = HardwareOps(ssm.fma, ssm.lanes)
    parent = [-1, 0, 0, 1, 1, 2, 5, 5, 3, 0]
    v, slots = scan_tree_vectors(ssm, parent, seed=4)
    y, states = scan_slots_stream(ops, family, v, slots)
    f32, b16 = (lambda k: decode(v[k], "fp32")), (lambda k: decode(v[k], "bf16"))
    A, D = b16("A"), b16("D")
    shape = (ssm.d_inner, ssm.d_state) if family == "mamba1" else (ssm.heads, ssm.head_dim, ssm.d_state)
    h0 = f32("h")[0].reshape(shape).astype(np.float32)
    node_state = {}
    for i, p in enumerate(parent):
        t = i + 1                                   # token 0 is the load
        h = h0 if p < 0 else node_state[p]
        if family == "mamba1":
            yi, node_state[i] = ops.ssm_step(A, h, f32("dt")[t], f32("u")[t], b16("B")[t], b16("C")[t], D)
        else:
            yi, node_state[i] = ops.ssm2_step(A, h, f32("dt")[t], f32("u")[t].reshape(ssm.heads, -1),
                                              b16("B")[t], b16("C")[t], D)
        out = encode(ops.gate(yi.reshape(-1), f32("z")[t]).astype(np.float64), "fp32")
        assert np.array_equal(out, y[i]), i
        assert np.array_equal(encode(node_state[i].astype(np.float64), "fp32"), states[i]), i


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
    with pytest.raises(ValueError, match="slots: must be an integer in 1..4096"):
        ScanUnit(SSMConfig(d_state=8, lanes=2), slots=0)
