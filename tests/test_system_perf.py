"""The system model (`models.perf.system`, `specmx mamba perf|sweep`): expected tokens from the
acceptance probability, layers composed in closed form against the whole program, the graph
schedule against the closed form at full size, the memory-bandwidth bound, and bad input."""

import json
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from cli_run import run_cli

from specmx.boards.board import load_board
from specmx.cli.engine import model_config
from specmx.models.config import EngineConfig
from specmx.models.perf.engine import list_schedule, model_dims, step_cycles, step_graph, step_ops, tree_parents
from specmx.models.perf.system import composed_step, expected_tokens, system_perf


def _cli(*args):
    return run_cli(*args)


def _dims(name):
    return model_dims(model_config(name))


def test_expected_tokens_formula_against_simulated_acceptance():
    """E = 1 + sum_k prod_{j<=k} (1 - (1-p)^w_j) against a Monte Carlo run of the same process
    (each child accepted with probability p; a level is reached when some child at each level
    above it was); a chain gives 1 + p + p^2 + ..."""
    rng = np.random.default_rng(0)
    for widths in [(1, 1, 1), (3, 2, 1), (2, 2), (4, 2, 2, 1)]:
        for p in (0.0, 0.3, 0.7, 1.0):
            trials = 20000
            reached = np.ones(trials, dtype=bool)
            total = np.ones(trials)
            for w in widths:
                reached &= (rng.random((trials, w)) < p).any(axis=1)
                total += reached
            assert abs(expected_tokens(widths, p) - total.mean()) < 0.03, (widths, p)
    assert expected_tokens((1, 1, 1), 0.5) == 1 + 0.5 + 0.25 + 0.125
    assert abs(expected_tokens((3, 2, 1), 0.7) - 3.4782) < 1e-3
    with pytest.raises(ValueError, match="acceptance: must be a probability"):
        expected_tokens((1,), 1.5)


CASES = [("mamba2-2.7b", (3, 2, 1), "store", EngineConfig(rows=16, cols=64, lanes=32, tile=8, state_slots=8)),
         ("130m", (1, 1, 1, 1), "recompute", EngineConfig(rows=8, cols=32, lanes=8, tile=4, state_slots=4)),
         ("mamba2-130m", None, "store", EngineConfig(rows=4, cols=128, lanes=16, tile=16, state_slots=2)),
         ("small", (2, 2), "store", EngineConfig(rows=4, cols=4, lanes=2, tile=2, state_slots=4)),
         ("tiny", (4, 2), "recompute", EngineConfig(rows=2, cols=8, lanes=1, tile=3, state_slots=8))]


def _whole(engine, dims, parent, strategy, rate, bits):
    ops, _ = step_ops(engine, dims, parent, strategy, mem_rate=rate, weight_bits=bits)
    return max(e for _, e in step_cycles(ops).values()), ops


@pytest.mark.parametrize("name, widths, strategy, engine", CASES, ids=[c[0] for c in CASES])
def test_layers_composed_in_closed_form_equal_the_whole_program(name, widths, strategy, engine):
    """`composed_step` (1-, 2- and 3-layer programs, extrapolated) equals evaluating the program
    of every layer, for 4..9 layers, at board-like rational memory rates and weight formats."""
    dims = _dims(name)
    parent = tree_parents(widths) if widths else [-1]
    for layers, rate, bits in [(4, Fraction(17, 3), 16), (7, Fraction(5, 1), 4), (9, Fraction(1, 2), 8)]:
        d = replace(dims, layers=layers)
        step = composed_step(engine, d, parent, strategy, None, rate, bits)
        whole, ops = _whole(engine, d, parent, strategy, rate, bits)
        assert step["composed"] and step["cycles"] == whole, (name, layers, step["cycles"], whole)
        assert step["words"]["mxu"] == sum(o.words for o in ops if o.unit == "mxu")
        assert step["cycles"] + 1 != whole                          # negative control: off by one is caught


def test_graph_schedule_equals_closed_form_for_one_layer_at_full_size():
    """The networkx graph of one Mamba2-2.7B layer (a VCK190-like memory rate, int4 weights),
    scheduled by the list scheduler, is as long as the closed form."""
    engine = EngineConfig(rows=16, cols=128, lanes=32, tile=8, state_slots=8)
    dims = replace(_dims("mamba2-2.7b"), layers=1)
    for parent in (tree_parents((3, 2, 1)), [-1]):
        ops, _ = step_ops(engine, dims, parent, "store", mem_rate=Fraction(341, 64), weight_bits=4)
        sched = list_schedule(step_graph(ops))
        assert sched["length"] == max(e for _, e in step_cycles(ops).values())
        assert sched["critical_path"] and sched["busy"]["mxu"] > 0


def test_memory_bound_and_bottleneck():
    """A slow memory makes the query memory-bound with tokens/s at the bandwidth bound; the
    same engine with a fast one is not memory-bound. Speculation cuts bytes per token."""
    board = load_board("vck190")
    engine = EngineConfig(rows=16, cols=64, lanes=32, tile=8, state_slots=8)
    dims, draft = _dims("mamba2-2.7b"), _dims("mamba2-130m")
    plain = system_perf(board, engine, dims, "bf16")
    assert plain["bottleneck"] == "memory"
    assert plain["cycles_per_verification"] >= plain["memory_bound_cycles"]
    bound = board.memories[0].gbps * 1e9 / plain["bytes_per_token"]
    assert plain["tokens_per_s"] <= bound * 1.0001
    fast = system_perf(load_board("u280"), engine, dims, "bf16", clock_mhz=400)
    assert fast["bottleneck"] != "memory" and fast["tokens_per_s"] > plain["tokens_per_s"]
    spec = system_perf(board, engine, dims, "bf16", draft=draft, widths=(1, 1, 1), acceptance=0.9)
    assert spec["bytes_per_token"] < plain["bytes_per_token"] and spec["tokens_per_s"] > plain["tokens_per_s"]
    assert spec["state_memory_bytes"] > 0 and spec["draft_cycles"] > 0
    assert spec["joules_per_token"]["low"] < spec["joules_per_token"]["high"]


def test_batch_and_prefill():
    board = load_board("u280")
    engine = EngineConfig(rows=16, cols=64, lanes=32, tile=16, state_slots=2)
    dims = _dims("mamba2-130m")
    one = system_perf(board, engine, dims, "int8")
    four = system_perf(board, engine, dims, "int8", batch=4)
    assert four["tokens_per_s"] > 2 * one["tokens_per_s"]            # weights fetched once for four rows
    pre = system_perf(board, engine, dims, "int8", phase="prefill", prompt_len=64)
    assert pre["tokens_per_s"] > 4 * one["tokens_per_s"] and pre["nodes_per_verification"] == 64


def test_mamba_perf_cli_json_and_report(tmp_path):
    proc = _cli("mamba", "perf", "--board", "vhk158", "--model", "mamba2-2.7b", "--weights", "int8", "--draft",
                "mamba2-130m", "--tree", "3,2,1", "--acceptance", "0.7", "--tile", "16", "--state-slots", "6",
                "--rows", "16", "--cols", "128", "--lanes", "32", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    for key in ("tokens_per_s", "joules_per_token", "bottleneck", "verification_ms", "busy", "bytes_per_token",
                "state_memory_bytes", "assumptions"):
        assert key in r
    assert r["tokens_per_verification"] == pytest.approx(3.4782, abs=1e-3)
    assert len(r["assumptions"]) == 5 and r["fits"]
    proc = _cli("mamba", "perf", "--board", "vck190", "--weights", "int4", "--out", str(tmp_path))
    assert proc.returncode == 0 and "tokens/s:" in proc.stdout and "bottleneck:" in proc.stdout


def test_measured_acceptance_file(tmp_path):
    """A `mamba generate --json` output's tokens per target pass feeds the model as measured."""
    path = tmp_path / "gen.json"
    path.write_text(json.dumps({"tokens": [1, 2], "stats": {"tokens_per_target_pass": 2.5}}))
    proc = _cli("mamba", "perf", "--draft", "mamba2-130m", "--tree", "3,2,1", "--acceptance", str(path),
                "--state-slots", "6", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tokens_per_verification"] == 2.5


def test_acceptance_bench_file_picks_family_and_mode(tmp_path):
    """bench/acceptance.py's JSON: the row of the tree and mode, in the family whose target is
    the model (else the first); a mode or tree it lacks is a one-line error."""
    def rows(base):
        return [{"tree": "3,2,1", "acceptance": m, "tokens_per_target_pass": base + i}
                for i, m in enumerate(("greedy", "T=0.7", "T=1.0"))]
    path = tmp_path / "acceptance.json"
    path.write_text(json.dumps({"mamba1": {"target": "py-mamba1", "rows": rows(2.0)},
                                "mamba2": {"target": "py-mamba2", "rows": rows(3.0)}}))
    from specmx.models.perf.system import measured_tokens
    assert measured_tokens(path, "3,2,1") == 2.0
    assert measured_tokens(path, "3,2,1", "py-mamba2", "T=1.0") == 5.0
    assert measured_tokens(path, "3,2,1", "mamba2-2.7b", "T=0.7") == 3.0     # not listed: first family
    with pytest.raises(ValueError, match="acceptance-mode: unknown"):
        measured_tokens(path, "3,2,1", mode="T=0.5")
    with pytest.raises(ValueError, match=r"no tokens per verification for tree 2,2 \(greedy\)"):
        measured_tokens(path, "2,2")
    proc = _cli("mamba", "perf", "--model", "mamba2-130m", "--draft", "mamba2-130m", "--tree", "3,2,1",
                "--acceptance", str(path), "--acceptance-mode", "T=0.7", "--state-slots", "6", "--json",
                "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tokens_per_verification"] == 2.0 + 1      # first family, T=0.7
    proc = _cli("perf", "mamba", "--model", "mamba2-130m", "--draft", "mamba2-130m", "--tree", "3,2,1",
                "--acceptance", str(path), "--state-slots", "6", "--json", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0 and json.loads(proc.stdout)["tokens_per_verification"] == 2.0   # the old form
    assert "is now 'specmx mamba perf'" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--acceptance", "1.5", "--draft", "mamba2-130m"], "acceptance: a probability must be in 0..1"),
    (["--acceptance", "nofile.json", "--draft", "mamba2-130m"], "acceptance: no such file"),
    (["--tree", "budget=8", "--draft", "mamba2-130m"], "acceptance: a budget tree's expected tokens"),
    (["--board", "nope"], "board: unknown board 'nope'"),
    (["--model", "3b"], "model: unknown model '3b'"),
    (["--draft", "130m"], "draft: vocabulary"),
    (["--phase", "prefill", "--prompt-len", "0"], "prompt-len: must be 1..65536"),
    (["--board", "ulx3s-85f"], "board.memories: the weights need"),
    (["--fit", "--state-slots", "64"], "engine: does not fit vck190: memory_bits"),
    (["--draft", "mamba2-130m", "--tree", "4,2,2,1", "--state-slots", "8"], "tree: needs 16 live states"),
])
def test_bad_input_one_line_exit_2_no_output(tmp_path, args, message):
    proc = _cli("mamba", "perf", *args, "--out", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not list(tmp_path.iterdir())


def test_sweep_writes_json_table_and_plots(tmp_path):
    proc = _cli("mamba", "sweep", "--board", "vck190,u280", "--trees", "single;1,1;3,2,1", "--weights", "int8",
                "--arrays-list", "1", "--rows-list", "8", "--cols-list", "64,128", "--lanes-list", "16", "--tiles", "8",
                "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "mamba_sweep.json").read_text())
    assert len(data["rows"]) == 2 * 3 * 2 and data["skipped"] == 0
    assert (tmp_path / "mamba_roofline.png").stat().st_size > 0 and (tmp_path / "mamba_tokens_vs_tree.png").exists()
    assert "| vck190 | int8 |" in (tmp_path / "mamba_sweep.md").read_text()
