"""The Mamba engine on the RTL (`hdl.mamba_engine`): speculative generation of a micro model with
the linear layers on the matrix engine (weights from the memory model), the conv and scan on the
tree-mode units, every operation started by the RTL sequencer from the compiled program. Every
verification pass's per-node logits and states, and every recomputed state, bit for bit against
the golden; the tokens equal to the golden run's; without random stalls, every operation's
start and end cycle equal to the list schedule of `perf.engine.step_ops` (so the step's cycles
and the overlap too). Negative controls: a corrupted weight word in memory, a wrong parent
slot, a cycle model one cycle off per linear layer, a program with a dependency dropped."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from specmx.sim.engine_check import MICRO_ENGINE, check_engine


def _assert_ok(report, timed=True):
    assert report["passed"], report["log_dir"]
    assert report["token_mismatches"] == 0 and report["logit_mismatches"] == 0, report
    assert report["state_mismatches"] == 0, report
    assert not report["protocol_errors"], report["protocol_errors"]
    assert report["sequencer_errors"] == 0, report["first_sequencer_errors"]
    assert all(n > 0 for n in report["program_words"])
    assert report["timed"] == timed
    if timed:
        assert report["timing_mismatches"] == 0, report["first_timing_mismatches"]
        assert report["measured_cycles"] == report["predicted_cycles"] > 0
        assert report["overlap"] == report["predicted_overlap"]
    assert report["ok"]


def test_mamba1_tree_on_rtl_engine_bit_and_cycle_exact(tmp_path):
    """`specmx engine check` (Mamba-1 micro, (3, 2, 1), 4 tokens): its summary line, and the report
    it saves: bit-exact, every operation on the list schedule's cycles, overlap measured."""
    proc = subprocess.run([sys.executable, "-m", "specmx.cli", "engine", "check", "--family", "mamba1", "--tree",
                           "3,2,1", "--tokens", "4", "--sim", "verilator", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("4 tokens, 0 mismatches, measured ") and "predicted" in line, line
    measured, predicted = line.split("measured ")[1].split(" cycles, predicted ")
    assert int(measured) == int(predicted.split()[0]) > 0, line
    report = json.loads((tmp_path / "engine_check_mamba1.json").read_text())
    _assert_ok(report)
    assert report["tokens"] == 4 and report["nodes"] >= 16 and report["accepted_draft_tokens"] > 0
    assert report["overlap"] > 0            # the matrix engine ran while the scan unit did
    # the system model's step (layers composed as for a full-size query) equals every measured pass
    from specmx.models.perf.engine import model_dims, tree_parents
    from specmx.models.perf.system import composed_step
    from specmx.sim.tree_ssm_check import model_config
    step = composed_step(MICRO_ENGINE, model_dims(model_config("mamba1")), tree_parents((3, 2, 1)), "store")
    assert report["verify_cycles"][0] == step["cycles"], (report["verify_cycles"], step["cycles"])


def test_negative_controls_are_caught():
    """One pass each (one simulation): a model one cycle off per linear layer, or per norm, fails
    timing only; a flipped weight bit in memory, a flipped bit in a norm weight word on its way
    to the RMSNorm unit, a flipped bit in a starting-state word read from memory and a wrong
    parent slot fail the logits; a program with one dependency
    count one short makes the RTL sequencer start an operation before its input ended."""
    report = check_engine("mamba1", negative_controls=True)
    c = report["controls"]
    for timing in ("model_error", "norm_model_error"):
        assert c[timing]["timing_mismatches"] > 0 and c[timing]["logit_mismatches"] == 0, c
    for corrupt in ("corrupt_weight_word", "corrupt_norm_weight", "corrupt_state_word"):
        assert c[corrupt]["logit_mismatches"] > 0 and c[corrupt]["timing_mismatches"] == 0, c
    assert c["wrong_parent"]["logit_mismatches"] > 0, c
    assert c["wrong_dependency"]["sequencer_errors"] > 0 and c["wrong_dependency"]["logit_mismatches"] == 0, c
    for label in ("model_error", "norm_model_error", "corrupt_weight_word", "corrupt_norm_weight", "wrong_parent",
                  "corrupt_state_word"):
        assert c[label]["sequencer_errors"] == 0, c
    assert not report["protocol_errors"]


@pytest.mark.regress
@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
@pytest.mark.parametrize("backtrack", ["store", "recompute", "hybrid"])
def test_32_token_generation_each_backtracking_mode(family, backtrack):
    """32 tokens of speculative generation on the RTL engine (hybrid with a budget below 16
    nodes' states, so it recomputes), cycle-exact."""
    report = check_engine(family, tree=(3, 2, 1), backtrack=backtrack, tokens=32, memory_budget=40_000, seed=1)
    _assert_ok(report)
    assert report["tokens"] == 32
    expected = {"store": "store", "recompute": "recompute", "hybrid": "recompute"}[backtrack]
    assert set(report["strategies"]) == {expected}, report["strategies"]


@pytest.mark.regress
@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
@pytest.mark.parametrize("tree", [(1, 1, 1, 1), "budget=8", (1,), (4, 2), "single"],
                         ids=["chain", "budget8", "one", "4-2", "decode"])
def test_tree_shapes_with_four_node_tiles(family, tree):
    """Trees of every kind on an engine with 4-node tiles (several tiles per layer: the matrix
    engine runs tile t+1 while the scan unit runs tile t), and plain decode."""
    report = check_engine(family, tree=tree, backtrack="store", tokens=8, engine=replace(MICRO_ENGINE, tile=4), seed=2)
    _assert_ok(report)


@pytest.mark.regress
@pytest.mark.parametrize("family, backtrack", [("mamba1", "store"), ("mamba2", "recompute")])
def test_larger_models(family, backtrack):
    """The tiny models (d_model 64 / 48, d_state 8 / 16, vocab 512, Mamba-2 with 3 groups) on an
    engine sized for them, 8 tokens of a (3, 2, 1) tree: bit- and cycle-exact."""
    report = check_engine(family, tree=(3, 2, 1), backtrack=backtrack, tokens=8, size="tiny", seed=4)
    _assert_ok(report)
    assert report["tokens"] == 8


@pytest.mark.regress
@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
def test_random_stalls_two_lanes(family):
    """Random gaps and back-pressure on every stream of a 2-lane engine: bits and tokens exact."""
    report = check_engine(family, tree=(3, 2, 1), backtrack="hybrid", tokens=8, idle=0.2, backpressure=0.2,
                          engine=replace(MICRO_ENGINE, lanes=2), memory_budget=40_000, seed=3)
    _assert_ok(report, timed=False)


@pytest.mark.regress
def test_engine_synth_reports_ecp5_figures(tmp_path):
    """`specmx engine synth` on the micro engine (about 5 min): ECP5 LUT, carry, DSP, FF and BRAM
    counts of the whole engine, and whether it fits an ECP5-85F."""
    proc = subprocess.run([sys.executable, "-m", "specmx.cli", "engine", "synth", "--json", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rows"] == MICRO_ENGINE.rows and result["ecp5_lut"] > 10_000 and result["ecp5_dsp"] > 0
    assert result["ecp5_bram"] >= 1 and result["fits_ecp5_85f"] in (True, False)
    assert (tmp_path / "synth_engine_micro_4x4_l1.json").exists()
