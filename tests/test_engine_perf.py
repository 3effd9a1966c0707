"""The Mamba engine's cycle model: the closed form equals the list scheduler on the dataflow
graph for random trees, both families, every backtracking mode and several engines; the
schedule's critical path and overlap are consistent; live-state accounting equals the numpy
verification's; negative controls (a dropped dependency, a changed cost) break the equality."""

import random
from dataclasses import replace

import numpy as np
import pytest

from specmx.models.config import EngineConfig
from specmx.models.mamba import MambaLM, get_preset
from specmx.models.mamba2 import get_preset as get_preset2
from specmx.models.perf.engine import (Op, engine_perf, list_schedule, model_dims, step_cycles, step_graph,
                                       step_ops, tree_parents)
from specmx.models.specdec import check_parents, live_states, verify_tree

MODELS = {"micro": get_preset("micro"), "mamba2-micro": get_preset2("mamba2-micro"),
          "130m-2l": get_preset("130m-2l"), "mamba2-130m-2l": get_preset2("mamba2-130m-2l")}
ENGINES = [EngineConfig(), EngineConfig(rows=2, cols=3, pe_stages=2, lanes=2, tile=3, mem_latency=5, mem_words=1),
           EngineConfig(rows=8, cols=8, dataflow="os", pe_stages=4, lanes=8, tile=16, mem_latency=100,
                        mem_words=16, state_slots=64)]


def random_tree(rng, n):
    """A random tree in FIFO-compatible order: every parent before its children."""
    return [-1] + [rng.randrange(i) for i in range(1, n)]


def _length(span):
    return max(e for _, e in span.values())


@pytest.mark.parametrize("model", list(MODELS))
def test_closed_form_equals_list_schedule(model):
    dims = model_dims(MODELS[model])
    rng = random.Random(model)
    trees = [[-1], tree_parents((1, 1, 1)), tree_parents((3, 2, 1)), tree_parents((2, 2, 2))]
    trees += [random_tree(rng, rng.randrange(2, 40)) for _ in range(6)]
    checked = 0
    for engine in ENGINES:
        for parent in trees:
            if live_states(parent) > engine.state_slots:
                continue
            for backtrack in ("store", "recompute", "hybrid"):
                ops, info = step_ops(engine, dims, parent, backtrack)
                span = step_cycles(ops)
                sched = list_schedule(step_graph(ops))
                assert sched["length"] == _length(span)
                assert sched["span"] == span                      # every operation, not just the end
                checked += 1
    assert checked >= 60


def test_schedule_respects_units_and_dependencies():
    dims = model_dims(MODELS["mamba2-micro"])
    ops, _ = step_ops(ENGINES[1], dims, tree_parents((3, 2, 1)), "recompute")
    span = step_cycles(ops)
    by_unit = {}
    for op in ops:
        for dep in op.deps:
            assert span[dep][1] <= span[op.name][0], (dep, op.name)
        by_unit.setdefault(op.unit, []).append(span[op.name])
    for unit, spans in by_unit.items():                      # in program order, never two at once
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), unit


def test_critical_path_is_a_chain_from_zero_to_the_end():
    dims = model_dims(MODELS["micro"])
    for parent in ([-1], tree_parents((3, 2, 1)), tree_parents((2, 2, 2, 2))):
        ops, _ = step_ops(ENGINES[0], dims, parent, "store")
        sched = list_schedule(step_graph(ops))
        path, span = sched["critical_path"], sched["span"]
        assert span[path[0]][0] == 0 and span[path[-1]][1] == sched["length"]
        assert all(span[a][1] == span[b][0] for a, b in zip(path, path[1:]))


def test_overlap_only_with_several_tiles():
    dims = model_dims(MODELS["micro"])
    single = engine_perf(ENGINES[0], dims, tree_parents((1, 1, 1)))          # 4 nodes, one tile of 8
    tiled = engine_perf(ENGINES[0], dims, tree_parents((3, 2, 1)))           # 16 nodes, two tiles
    assert single["tiles"] == 1 and single["overlap"] == 0
    assert tiled["tiles"] == 2 and tiled["overlap"] > 0 and 0 < tiled["overlap_fraction"] < 1
    # plain decode is one node; per token, a fully accepted chain of 4 nodes in one tile is cheaper
    assert single["cycles_per_token"] < single["decode_cycles_per_token"]
    assert engine_perf(ENGINES[0], dims, [-1])["speedup_vs_decode"] == 1.0


def test_more_bandwidth_never_costs_cycles():
    dims = model_dims(MODELS["130m-2l"])
    parent = tree_parents((3, 2, 1))
    cycles = [engine_perf(replace(ENGINES[0], mem_words=w), dims, parent)["cycles_per_verification"]
              for w in (1, 2, 4, 8, 64)]
    assert cycles == sorted(cycles, reverse=True) and cycles[0] > cycles[-1]


def test_recompute_pays_for_the_accepted_path():
    dims = model_dims(MODELS["micro"])
    parent = tree_parents((2, 2, 2))
    costs = [engine_perf(ENGINES[0], dims, parent, "recompute", path=k)["backtrack_cycles"] for k in (1, 2, 3, 4)]
    assert costs == sorted(costs) and costs[0] < costs[-1]
    assert engine_perf(ENGINES[0], dims, parent, "store")["backtrack_cycles"] == 0
    small = replace(ENGINES[0], memory_budget=0)
    assert engine_perf(small, dims, parent, "hybrid")["strategy"] == "recompute"
    assert engine_perf(ENGINES[0], dims, parent, "hybrid")["strategy"] == "store"


def test_negative_controls_break_the_equality():
    dims = model_dims(MODELS["micro"])
    ops, _ = step_ops(ENGINES[1], dims, tree_parents((3, 2, 1)), "store")
    good = _length(step_cycles(ops))
    # the list scheduler on a graph that lost a dependency on the critical path finishes early
    g = step_graph(ops)
    path = list_schedule(g)["critical_path"]
    edges = [(a, b) for a, b in zip(path, path[1:]) if g.has_edge(a, b)]
    assert edges
    shorter = []
    for a, b in edges:
        g.remove_edge(a, b)
        shorter.append(list_schedule(g)["length"] < good)
        g.add_edge(a, b)
    assert any(shorter)
    # a closed form that under-counts one operation
    last = max(range(len(ops)), key=lambda i: step_cycles(ops)[ops[i].name][1])
    bad = ops[:last] + [replace(ops[last], cycles=ops[last].cycles - 1)] + ops[last + 1:]
    assert _length(step_cycles(bad)) == good - 1 != list_schedule(step_graph(ops))["length"]
    # a program that waits for an operation it never runs is refused, not scheduled
    with pytest.raises(KeyError):
        step_cycles(ops + [Op("late", "scan", 3, ("missing",))])


def test_live_states_equal_the_numpy_verification():
    model = MambaLM.random(get_preset("micro"), seed=1)
    rng = random.Random(3)
    for n in (1, 2, 5, 12, 20):
        for _ in range(3):
            parent = random_tree(rng, n)
            tokens = [rng.randrange(model.cfg.vocab_size) for _ in range(n)]
            v = verify_tree(model, model.initial_state(), tokens, parent, tile=4)
            assert v["peak_live_states"] == live_states(parent)
    assert live_states([-1]) == 1 and live_states(tree_parents((1, 1, 1, 1))) == 1   # a chain in place
    assert live_states(tree_parents((3,))) == 2 and live_states(tree_parents((2, 2))) == 3


def test_bad_trees_and_engines_are_refused():
    dims = model_dims(MODELS["micro"])
    with pytest.raises(ValueError, match="parent: node 2 has parent 3"):
        check_parents([-1, 0, 3, 1])
    with pytest.raises(ValueError, match="parent: node 0 is the root"):
        check_parents([0, 0])
    with pytest.raises(ValueError, match="tree: needs 4 live states per layer; engine.state_slots holds 2"):
        step_ops(replace(ENGINES[0], state_slots=2), dims, tree_parents((3, 3)))
    with pytest.raises(ValueError, match="backtrack: unknown"):
        step_ops(ENGINES[0], dims, [-1], "undo")
    with pytest.raises(ValueError, match="path: accepted nodes"):
        step_ops(ENGINES[0], dims, [-1, 0], "recompute", path=3)
    with pytest.raises(ValueError, match="tile: must be in 1..4096"):
        EngineConfig(tile=0)
    with pytest.raises(ValueError, match="fma.acc_fmt"):
        from specmx.models.config import FMAConfig
        EngineConfig(fma=FMAConfig("bf16", "bf16"))
    assert np.isfinite(engine_perf(ENGINES[2], model_dims(MODELS["mamba2-130m-2l"]), tree_parents((4, 4)),
                                   clock_mhz=100)["tokens_per_s"])
