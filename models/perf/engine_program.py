"""A verification step's program as the engine's RTL sequencer (`hdl.sequencer`) runs it.

`step_ops` gives the step as operations with dependencies; the sequencer holds one in-order
queue per RTL unit and starts an operation once, for every other queue, enough of that
queue's operations have ended (its `need` counts). `compile_program` turns the operations into
those instructions: a dependency on the k-th operation of a queue becomes "that queue has
ended k + 1", and the host's zero-cycle work (the acceptance, unit `host`) folds away: an operation waiting on host work waits on what that host
work waited on (and on the host unit's earlier work, which it runs in order). `program_spans`
runs the instructions with the sequencer's rule in closed form; it equals `step_cycles` of
the operations it came from (tests/test_engine_program.py).

Plain Python; the RTL and the co-simulation take the instructions from here.
"""

from dataclasses import dataclass

__all__ = ["QUEUES", "Instruction", "compile_program", "program_spans", "queue_targets"]

QUEUES = ("mxu", "conv", "scan", "norm", "fu", "rd", "wr")


def queue_targets(mamba2):
    """Per queue, its targets: the output streams whose words end an operation (in the order of
    an instruction's word counts). The norm queue's second target is Mamba-2's gated norm."""
    norm = [("norm_o",), ("gnorm_o",)] if mamba2 else [("norm_o",)]
    return {"mxu": [("mxu_r_out",)], "conv": [("conv_o", "conv_s")], "scan": [("scan_o", "scan_s")],
            "norm": norm, "fu": [("fu_o",)], "rd": [("rd_buf",)], "wr": [("wr_mem",)]}


@dataclass(frozen=True)
class Instruction:
    """One operation of a queue: `need[q]` operations of queue q (in QUEUES order) must have ended
    before it starts; `target` and `words` (per output stream) as `Op.target` and `Op.outputs`."""

    op: str
    queue: str
    need: tuple
    target: int
    words: tuple


def compile_program(ops, depth=None, words_bits=None):
    """{queue: [Instruction, ...]} from operations in program order. Operations of other units
    must take zero cycles (the host's acceptance). `depth`, `words_bits`: the RTL's
    limits, checked with a one-line error naming the field."""
    program = {q: [] for q in QUEUES}
    ended_after = {}                     # op name -> {queue: count} that holds once it has ended
    host_before = {}                     # host unit -> what its last operation waited on
    for op in ops:
        need = {}
        for dep in op.deps:
            _merge(need, ended_after[dep])
        if op.unit in program:
            if not op.outputs or not any(op.outputs):
                raise ValueError(f"{op.name}: an RTL operation needs its output word counts (step_ops gives them)")
            queue = program[op.unit]
            need.pop(op.unit, None)                          # its own queue runs in order anyway
            queue.append(Instruction(op.name, op.unit, tuple(need.get(q, 0) for q in QUEUES), op.target, op.outputs))
            ended_after[op.name] = {op.unit: len(queue)}
        else:
            if op.cycles:
                raise ValueError(f"{op.name}: unit {op.unit!r} is not the sequencer's; allowed there: zero-cycle host work")
            _merge(need, host_before.get(op.unit, {}))
            host_before[op.unit] = ended_after[op.name] = need
    for q, queue in program.items():
        if depth is not None and len(queue) > depth:
            raise ValueError(f"engine.program_depth: the step needs {len(queue)} {q} instructions; "
                             f"the sequencer holds {depth} (allowed: a program_depth of at least {len(queue)})")
        if words_bits is not None:
            for ins in queue:
                if max(ins.words) >= 1 << words_bits:
                    raise ValueError(f"{ins.op}: {max(ins.words)} output words; the sequencer counts up to "
                                     f"{(1 << words_bits) - 1}")
    return program


def _merge(into, more):
    for q, n in more.items():
        into[q] = max(into.get(q, 0), n)


def program_spans(program, cycles):
    """{op name: (start, end)} of the program under the sequencer's rule: an instruction starts
    when its queue's previous one and, per queue q, the need[q]-th operation of q have ended;
    `cycles[op name]` is how long it runs. Walks the queues round-robin until all have run."""
    ends = {q: [] for q in program}
    head = dict.fromkeys(program, 0)
    span = {}
    while any(head[q] < len(program[q]) for q in program):
        moved = False
        for qi, q in enumerate(QUEUES):
            if q not in program or head[q] >= len(program[q]):
                continue
            ins = program[q][head[q]]
            if any(len(ends[p]) < ins.need[pi] for pi, p in enumerate(QUEUES)):
                continue
            start = max([ends[q][-1] if ends[q] else 0] +
                        [ends[p][ins.need[pi] - 1] for pi, p in enumerate(QUEUES) if ins.need[pi]])
            span[ins.op] = (start, start + cycles[ins.op])
            ends[q].append(start + cycles[ins.op])
            head[q] += 1
            moved = True
        if not moved:
            stuck = next(program[q][head[q]].op for q in program if head[q] < len(program[q]))
            raise ValueError(f"program: deadlock, {stuck} waits on operations that never start")
    return span
