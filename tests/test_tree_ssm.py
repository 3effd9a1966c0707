"""Speculative decoding with the SSM in series on the RTL (conv and scan units in tree mode, the
linear layers on the host in the hardware numerics): every verification pass's per-node logits
and states bit for bit against the golden `verify_tree`, the generated tokens equal to the
golden run's, every unit run's cycles equal to its cycle model, with random gaps and
back-pressure; negative controls: a corrupted weight word and a wrong parent state."""

import pytest

from specmx.sim.tree_ssm_check import check_tree_ssm


def _assert_ok(report):
    assert report["passed"], report["log_dir"]
    assert report["token_mismatches"] == 0 and report["logit_mismatches"] == 0, report
    assert report["state_mismatches"] == 0, report
    assert report["cycle_mismatches"] == 0, report["first_cycle_mismatches"]
    assert not report["protocol_errors"] and report["ok"]


# `make regress`: the engine co-simulation (tests/test_mamba_engine.py) runs these units inside
# the composed engine in `make test`.
@pytest.mark.regress
def test_mamba1_tree_store_matches_golden():
    report = check_tree_ssm("mamba1", tree=(3, 2, 1), backtrack="store", tokens=8, idle=0.1, backpressure=0.1)
    _assert_ok(report)
    assert report["tokens"] == 8 and report["nodes"] >= 32 and report["unit_runs"] == 4 * report["verifications"]
    assert report["accepted_draft_tokens"] > 0


@pytest.mark.regress
def test_negative_controls_are_caught():
    weight = check_tree_ssm("mamba1", tree=(3, 2, 1), backtrack="store", tokens=2, corrupt_weight=True)
    assert weight["logit_mismatches"] > 0 and not weight["ok"]
    parent = check_tree_ssm("mamba1", tree=(3, 2, 1), backtrack="store", tokens=2, wrong_parent=True)
    assert parent["logit_mismatches"] > 0 and not parent["ok"]


@pytest.mark.regress
@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
@pytest.mark.parametrize("backtrack", ["store", "recompute", "hybrid"])
def test_32_token_generation_each_backtracking_mode(family, backtrack):
    """At least 32 tokens of speculative generation, the RTL as the target's SSM (hybrid with a
    budget below 16 nodes' states, so it recomputes)."""
    report = check_tree_ssm(family, tree=(3, 2, 1), backtrack=backtrack, tokens=32, idle=0.1, backpressure=0.1,
                            memory_budget=40_000, seed=1)
    _assert_ok(report)
    assert report["tokens"] == 32
    expected = {"store": "store", "recompute": "recompute", "hybrid": "recompute"}[backtrack]
    assert set(report["strategies"]) == {expected}, report["strategies"]


@pytest.mark.regress
@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
@pytest.mark.parametrize("tree", [(1, 1, 1, 1), "budget=8", (1,), (4, 2)], ids=["chain", "budget8", "one", "4-2"])
def test_tree_shapes(family, tree):
    report = check_tree_ssm(family, tree=tree, backtrack="store", tokens=8, tile=4, idle=0.2, backpressure=0.2, seed=2)
    _assert_ok(report)
