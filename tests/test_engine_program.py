"""The RTL sequencer's program (`models.perf.engine_program`): compiled from a step's operations,
run under the sequencer's rule (per-queue end counts), it gives every operation the same start
and end as the closed form of the operations (`step_cycles`), for both families, several trees,
tile sizes and both phases. Negative control: a dependency count one short moves an operation.
Bad programs get one-line errors."""

from dataclasses import replace

import pytest

from specmx.models.perf.engine import Op, model_dims, step_cycles, step_ops, tree_parents
from specmx.models.perf.engine_program import QUEUES, compile_program, program_spans
from specmx.sim.engine_check import MICRO_ENGINE
from specmx.sim.tree_ssm_check import model_config


def _phases(family, tree, tile, backtrack):
    dims = model_dims(model_config(family))
    ops, _ = step_ops(replace(MICRO_ENGINE, tile=tile), dims, tree_parents(tree), backtrack)
    for phase in ("verify", "backtrack"):
        part = [op for op in ops if op.phase == phase]
        names = {op.name for op in part}
        if part:
            yield [replace(op, deps=tuple(d for d in op.deps if d in names)) for op in part]


@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
@pytest.mark.parametrize("tree", [(3, 2, 1), (1, 1, 1, 1), (4, 2), (1,)])
@pytest.mark.parametrize("tile", [8, 3])
def test_program_runs_on_the_closed_forms_cycles(family, tree, tile):
    for backtrack in ("store", "recompute"):
        for ops in _phases(family, tree, tile, backtrack):
            program = compile_program(ops, depth=MICRO_ENGINE.program_depth)
            assert sum(map(len, program.values())) == sum(op.unit in QUEUES for op in ops)
            span = program_spans(program, {op.name: op.cycles for op in ops})
            closed = step_cycles(ops)
            assert span == {name: closed[name] for name in span}


def test_a_dropped_dependency_moves_an_operation():
    ops = next(_phases("mamba1", (3, 2, 1), 8, "store"))
    program = compile_program(ops)
    cycles = {op.name: op.cycles for op in ops}
    moved = 0
    for q in QUEUES:
        for k, ins in enumerate(program[q]):
            for p, n in enumerate(ins.need):
                if n:
                    need = list(ins.need)
                    need[p] -= 1
                    bad = dict(program, **{q: program[q][:k] + [replace(ins, need=tuple(need))] + program[q][k + 1:]})
                    moved += program_spans(bad, cycles) != program_spans(program, cycles)
    assert moved > 0


def test_bad_programs_get_one_line_errors():
    ops = next(_phases("mamba1", (3, 2, 1), 2, "store"))
    with pytest.raises(ValueError, match=r"^engine.program_depth: the step needs \d+ mxu instructions; the sequencer holds 4"):
        compile_program(ops, depth=4)
    with pytest.raises(ValueError, match="not the sequencer's"):
        compile_program([Op("accept", "host", 5)])
    with pytest.raises(ValueError, match="output word counts"):
        compile_program([Op("norm[0,0]", "norm", 5)])
    with pytest.raises(ValueError, match="counts up to 15"):
        compile_program(ops, words_bits=4)
