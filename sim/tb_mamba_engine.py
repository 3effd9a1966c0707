"""cocotb co-simulation of the Mamba engine (`hdl.mamba_engine`): speculative generation of a micro
Mamba model with every linear layer on the RTL matrix engine (weights from the external memory
model, `mem_latency` and `mem_words` of the spec), every conv and SSM step on the RTL conv and
scan units in tree mode, every RMSNorm (Mamba-2's gated norm too) on the RTL RMSNorm unit, every
dt softplus on the RTL function unit (its bias added by the RTL's fp32 adder before it), every
bias and residual add on the RTL's two fp32 adders on the matrix engine's result stream, and
every embedding, starting state, stored state, cache, logit and restored state through the
RTL's memory channels (reads served by the memory model with its latency and bandwidth, writes
taken a beat per cycle). The host only moves data.

The RTL sequencer runs each step: the host compiles the step's program (`perf.engine.step_ops`,
the system model's own, and `perf.engine_program.compile_program`), writes it over `seq_cmd` and
starts it; the sequencer starts each operation (a beat on `seq_issue_<unit>`) the cycle after
its unit and its inputs are done, and the host, as the data mover, then feeds that operation's
words and takes its results. So the matrix engine runs the linear layers of tile t+1 while the
scan unit runs tile t, on the RTL. Every verification pass (and every recompute) is compared
with the golden: per-node logits bit for bit with `verify_tree` on the same inputs, stored
states and the recomputed state bit for bit, every operation's (start, end) cycle with the list
schedule, and the sequencer against the program (nothing started before its inputs ended, its
end counters equal to the words seen). With random gaps and back-pressure ($SPECMX_IDLE,
$SPECMX_BACKPRESSURE) the timing check is left out (stalls move operations) and the bits,
tokens, sequencer and stream protocol are checked.

Parameters: $SPECMX_CASE (JSON: family, seed, draft, tree, backtrack, tokens, prompt, engine
(EngineConfig fields), memory_budget, negative controls corrupt_weight / wrong_parent /
corrupt_weight_word / corrupt_norm_weight / corrupt_state_word / wrong_dependency / model_error
("mxu+1", "norm+1"), or negative_controls: all seven, one pass each).
Writes $SPECMX_REPORT.
"""

import functools
import json
import os
from collections import deque
from dataclasses import replace
from types import SimpleNamespace

import cocotb
import numpy as np
from amaranth.hdl import Shape
from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, ReadOnly

from specmx.hdl.conv import conv_layout
from specmx.hdl.sequencer import WORDS_BITS, cmd_layout
from specmx.hdl.scan import scan_layout
from specmx.models.mamba import MambaState
from specmx.models.perf.engine import list_schedule, model_dims, step_graph, step_ops, unit_configs
from specmx.models.perf.engine_program import compile_program, queue_targets
from specmx.models.specdec import _recompute, assign_slots, speculative_generate, verify_tree
from specmx.sim.engine_jobs import (channel_job, conv_job, function_job, linear_job, norm_job, scan_job,
                                    state_mismatches)
from specmx.sim.streams import TB, memory_ready_cycle, write_report
from specmx.sim.tree_ssm_check import build_models

INPUTS = {"mxu": ("mxu_cmd", "mxu_a_in", "mxu_b_in", "mxu_add"), "conv": ("conv_i",), "scan": ("scan_i",), "norm": ("norm_i",),
          "fu": ("fu_i",), "rd": ("rd_mem",), "wr": ("wr_buf",), "seq": ("seq_cmd",)}
OUTPUTS = {"mxu": ("mxu_r_out",), "conv": ("conv_o", "conv_s"), "scan": ("scan_o", "scan_s"), "norm": ("norm_o",),
           "fu": ("fu_o",), "rd": ("rd_buf",), "wr": ("wr_mem",), "seq": ()}


def bus_units(mamba2):
    """(input streams, output streams) per unit of the engine: Mamba-2's has the gated norm's
    RMSNorm unit too."""
    if not mamba2:
        return INPUTS, OUTPUTS
    return {**INPUTS, "gnorm": ("gnorm_i",)}, {**OUTPUTS, "gnorm": ("gnorm_o",)}


class Job:
    """One operation on an RTL unit: words per input stream, expected words per output stream,
    and what to do with the outputs. `memory` = (stream, latency, words per cycle, words per
    beat): that stream's beats come from the memory model, requested with the job's first word
    on `request` (the matrix engine's command), or, with no `request`, with the operation's
    start (a memory-channel read: the sequencer's issue is the request). `unit`: the engine unit it runs on when that is
    not the program's unit of its operation (Mamba-2's gated norm runs on `gnorm`, the program's
    second RMSNorm datapath)."""

    def __init__(self, inputs, outputs, finish, memory=None, request=None, unit=None):
        self.inputs, self.outputs, self.finish = inputs, outputs, finish
        self.memory, self.request, self.unit = memory, request, unit
        self.got = {name: [] for name in outputs}
        self.base = None                                  # the cycle the memory request was made


class EngineBus:
    """Drives every stream of the engine from one coroutine, one cycle at a time: at the falling
    edge it lets the sequencer start operations (`on_cycle`), offers the next queued word of each
    input (memory beats once the memory model has them; random gaps with probability `idle`) and
    sets each output's ready (random back-pressure); in the read-only phase it records transfers,
    hands output words to the unit's running job and checks the outputs' valid/ready protocol
    (a refused word stays offered, unchanged) and that no unit sends a word nobody asked for."""

    def __init__(self, tb, idle, backpressure, units=(INPUTS, OUTPUTS)):
        self.tb, self.idle, self.backpressure = tb, idle, backpressure
        self.inputs, self.outputs = units
        self.streams = {name: tb.stream(name) for unit in self.inputs for name in self.inputs[unit] + self.outputs[unit]}
        self.queues = {name: deque() for unit in self.inputs for name in self.inputs[unit]}
        self.offering = dict.fromkeys(self.queues, False)
        self.jobs = dict.fromkeys(self.inputs)           # the running job of each unit
        self.on_cycle = None
        self.done = {}                                   # unit -> (job, last transfer cycle) this cycle
        self.started = self.load_began = None            # cycles the program's first word and start were taken
        self.errors = []
        for name, s in self.streams.items():
            (s.valid if name in self.queues else s.ready).value = 0

    def start(self, unit, job):
        assert self.jobs[unit] is None, unit
        self.jobs[unit] = job
        if job.memory is not None and job.request is None:
            job.base = self.tb.cycle
        for name, words in job.inputs.items():
            self.queues[name].extend((i, w) for i, w in enumerate(words))

    def load_program(self, words):
        """Queue a program's seq_cmd beats (the last one the start)."""
        self.started = self.load_began = None
        self.queues["seq_cmd"].extend([(i, w) for i, w in enumerate(words[:-1])] + [("start", words[-1])])

    def _available(self, unit, name, index):
        job = self.jobs[unit]
        if job is None or job.memory is None or job.memory[0] != name:
            return True
        if job.base is None:
            return False
        _, latency, rate, beat_words = job.memory
        return self.tb.cycle >= memory_ready_cycle(job.base, latency, rate, beat_words, index)

    async def run(self):
        rng, clk = self.tb.rng, self.tb.dut.clk
        owner = {name: unit for unit in self.inputs for name in self.inputs[unit] + self.outputs[unit]}
        outputs = [name for unit in self.outputs for name in self.outputs[unit]]
        ready = dict.fromkeys(outputs, True)
        pending = dict.fromkeys(outputs)                  # a word offered and refused last cycle
        valid_now = dict.fromkeys(self.queues, False)     # what each input's valid is driven to
        for name in outputs:
            self.streams[name].ready.value = 1
        while True:
            await FallingEdge(clk)
            if self.on_cycle:
                self.on_cycle(self.tb.cycle)
            for name, q in self.queues.items():
                if not self.offering[name] and q and self._available(owner[name], name, q[0][0]) and \
                        not (self.idle and rng.random() < self.idle):
                    self.streams[name].payload.value = q[0][1]
                    self.offering[name] = True
                if valid_now[name] != self.offering[name]:
                    self.streams[name].valid.value = valid_now[name] = self.offering[name]
            if self.backpressure:
                for name in outputs:
                    ready[name] = not rng.random() < self.backpressure
                    self.streams[name].ready.value = int(ready[name])
            await ReadOnly()
            cycle = self.tb.cycle
            for name, q in self.queues.items():
                if self.offering[name] and int(self.streams[name].ready.value):
                    index, _ = q.popleft()
                    self.offering[name] = False
                    if name == "seq_cmd":
                        self.load_began = cycle if self.load_began is None else self.load_began
                        self.started = cycle if index == "start" else self.started
                    job = self.jobs[owner[name]]
                    if job is not None and job.request == name and job.base is None:
                        job.base = cycle
            for unit, names in self.outputs.items():
                job = self.jobs[unit]
                for name in names:
                    s = self.streams[name]
                    if not int(s.valid.value):
                        if pending[name] is not None:
                            self.errors.append(f"{name}: valid dropped at cycle {cycle} before {pending[name]:#x} was taken")
                        pending[name] = None
                        continue
                    word = int(s.payload.value)
                    if pending[name] is not None and word != pending[name]:
                        self.errors.append(f"{name}: payload changed at cycle {cycle} while waiting for ready")
                    pending[name] = None if ready[name] else word
                    if not ready[name]:
                        continue
                    if job is None or len(job.got[name]) >= job.outputs[name]:
                        self.errors.append(f"{name}: unexpected word at cycle {cycle}")
                    else:
                        job.got[name].append(word)
                if job is not None and all(len(job.got[n]) == c for n, c in job.outputs.items()) and \
                        not any(self.queues[n] for n in self.inputs[unit]):
                    self.jobs[unit] = None
                    self.done[unit] = (job, cycle)


class Sequencer:
    """The host's side of the RTL sequencer (`hdl.sequencer`) for one program (a list of
    `perf.engine.Op`): writes the compiled instructions (`perf.engine_program`) and the start over
    `seq_cmd`, then, each cycle, starts on the bus the operation the RTL issues on each queue
    (the data mover's work: `handler(op)` returns its Job) and runs the host's zero-cycle work
    (handler returns None) once its inputs have ended, its unit's work in order. Records each
    operation's (start, end) relative to the program's start, in the model's convention (start =
    the cycle its inputs were done, end = its last output's cycle), and checks the RTL against
    the program: an operation issued before one of its inputs ended, an issue out of order, the
    RTL's per-queue end counters against the words seen, its error flag and its end of program."""

    WATCHDOG = 200_000                                    # cycles without an operation ending or starting

    def __init__(self, bus, ops, handler, program, layout, corrupt_need=False):
        self.bus, self.handler = bus, handler
        self.program = program
        self.host = {}
        self.op = {op.name: op for op in ops}
        for op in ops:
            if op.unit not in program:
                self.host.setdefault(op.unit, deque()).append(op)
        self.end, self.span, self.running = {}, {}, {}
        self.issued = dict.fromkeys(program, 0)           # operations the RTL started per queue
        self.ended = dict.fromkeys(program, 0)
        self.waiting = {}                                  # queue -> op issued before its inputs ended
        self.program_unit = {}                            # engine unit -> the program unit it runs for
        self.t0, self.last_event = None, 0
        self.errors = []
        self.finished = Event()
        self.total = len(ops)
        self.load_cycles = None
        tb = bus.tb
        self.issue = {q: tb.stream(f"seq_issue_{q}") for q in program}
        for s in self.issue.values():
            s.ready.value = 1
        self.rtl_ended, self.rtl_finished, self.rtl_error = (tb.port(n) for n in ("seq_ended", "seq_finished",
                                                                                 "seq_error"))
        instr = layout["instr"].shape                      # the RTL's own widths: end counts, word counts
        self.count_bits = Shape.cast(instr["need"].shape.elem_shape).width
        bus.load_program(self._words(program, layout, instr["words"].shape.length, corrupt_need))

    @staticmethod
    def _words(program, cmd, streams, corrupt_need):
        """The seq_cmd beats (`cmd` their layout, `streams` word counts each): each queue's
        instructions, then the start."""
        from specmx.hdl.compose import pack_struct
        from specmx.models.perf.engine_program import QUEUES
        words = []
        for qi, q in enumerate(QUEUES):
            for ins in program[q]:
                need = list(ins.need)
                if corrupt_need and any(need):               # negative control: one dependency dropped
                    need[next(i for i, n in enumerate(need) if n)] -= 1
                    corrupt_need = False
                words.append(pack_struct(cmd, {"kind": 0, "queue": qi, "instr": {
                    "need": need, "target": ins.target,
                    "words": list(ins.words) + [0] * (streams - len(ins.words))}}))
        words.append(pack_struct(cmd, {"kind": 1, "queue": 0, "instr": {"need": [0] * len(QUEUES), "target": 0,
                                                                         "words": [0] * streams}}))
        return words

    def _ready(self, op, now):
        return all(self.end.get(d, now + 1) <= now for d in op.deps)

    def _start(self, queue, op, now):
        job = self.handler(op)
        self.span[op.name] = (now, now)
        self.running[queue] = op
        self.program_unit[job.unit or queue] = queue
        self.bus.start(job.unit or queue, job)

    def on_cycle(self, cycle):
        if self.t0 is None:
            if self.bus.started is None:
                return
            self.t0, self.load_cycles = self.bus.started, self.bus.started - self.bus.load_began + 1
        now = cycle - 1 - self.t0
        for bus_unit, (job, last) in list(self.bus.done.items()):
            queue = self.program_unit.pop(bus_unit)
            op = self.running.pop(queue)
            job.finish(job.got)
            self.end[op.name] = last - self.t0
            self.span[op.name] = (self.span[op.name][0], last - self.t0)
            self.ended[queue] += 1
            self.last_event = now
        self.bus.done.clear()
        progress = True
        while progress:                                    # the host's zero-cycle work, in order per unit
            progress = False
            for unit, q in self.host.items():
                if q and self._ready(q[0], now):
                    op = q.popleft()
                    assert self.handler(op) is None, op.name
                    self.span[op.name] = (now, now)
                    self.end[op.name] = now
                    progress = True
        ended = int(self.rtl_ended.value)
        bits = self.count_bits
        for qi, q in enumerate(self.program):
            rtl = (ended >> (qi * bits)) & ((1 << bits) - 1)
            if rtl != self.ended[q]:
                self.errors.append(f"cycle {now}: the sequencer counts {rtl} {q} operations ended, the streams {self.ended[q]}")
            if q in self.waiting:                          # issued early: the data mover waits for the inputs
                if self._ready(self.waiting[q], now):
                    self._start(q, self.waiting.pop(q), now)
                continue
            s = self.issue[q]
            if self.bus.backpressure:                      # the data mover is not always free to take an issue
                take = not self.bus.tb.rng.random() < self.bus.backpressure
                s.ready.value = int(take)
                if not take:
                    continue
            if not int(s.valid.value):
                continue
            index = int(s.payload.value)
            if index != self.issued[q] or index >= len(self.program[q]):
                self.errors.append(f"cycle {now}: the sequencer issued {q} operation {index}, expected {self.issued[q]}")
                self.finished.set()
                return
            op = self.op[self.program[q][index].op]
            self.issued[q] += 1
            self.last_event = now
            if not self._ready(op, now):
                late = next(d for d in op.deps if self.end.get(d, now + 1) > now)
                self.errors.append(f"cycle {now}: the sequencer started {op.name} before its input {late} ended")
                self.waiting[q] = op
                continue
            self._start(q, op, now)
        if int(self.rtl_finished.value):
            if len(self.end) != self.total:
                self.errors.append(f"cycle {now}: the sequencer ended the program with {self.total - len(self.end)} "
                                   f"operations not done")
            self.finished.set()
        elif now - self.last_event > self.WATCHDOG:
            self.errors.append(f"cycle {now}: nothing started or ended for {self.WATCHDOG} cycles")
            self.finished.set()
        if int(self.rtl_error.value) and not any("error flag" in e for e in self.errors):
            self.errors.append(f"cycle {now}: the sequencer's error flag is set")


class EnginePass:
    """The numerics of one verification pass (or recompute) as the program's operations run:
    one handler per operation kind, reading what earlier operations left and leaving its own."""

    def __init__(self, eng, state, tokens, parent, cache, store):
        self.eng, self.model, self.ops = eng, eng.model, eng.model.ops
        self.state, self.tokens, self.parent = state, np.asarray(tokens), parent
        self.cache, self.store = cache, store
        n = len(tokens)
        self.src, self.dst, self.used = assign_slots(parent)
        if eng.case.get("wrong_parent") and n > 2:
            self.src = list(self.src)
            self.src[-1] = self.dst[0] if self.src[-1] != self.dst[0] else self.dst[1]
        T = eng.engine.tile
        self.idx = [slice(t0, min(n, t0 + T)) for t0 in range(0, n, T)]
        self.x = None
        self.v = {}                                       # per (kind, layer, tile) values
        self.states = [MambaState() for _ in range(n)] if store else None
        self.caches = [[] for _ in range(n)] if cache else None
        self.logits = np.zeros((n, self.model.cfg.vocab_size), np.float32)

    def handle(self, op):
        kind, _, rest = op.name.partition("[")
        key = tuple(int(k) for k in rest.rstrip("]").split(",")) if rest else ()
        return getattr(self, "op_" + kind)(*key)

    # --- memory channels: fp32 words between the external memory and the on-chip buffers ------
    def _read(self, arrays, done, state=False):
        """A read: `arrays` (what the external memory holds) as fp32 words through rd_mem ->
        rd_buf; `done` gets them back, decoded, in their shapes. `state`: a starting state (the
        corrupt_state_word control flips a bit of its first word)."""
        beats, decoded = channel_job(arrays, self.eng.engine.mem_words)
        if self.eng.case.get("corrupt_state_word") and self.eng.corrupt_pending and state:
            beats[0] ^= 1 << 30                             # an exponent bit of a starting-state word in memory
            self.eng.corrupt_pending = False
        e = self.eng.engine
        return Job({"rd_mem": beats}, {"rd_buf": len(beats)}, lambda got: done(decoded(got["rd_buf"])),
                   memory=("rd_mem", e.mem_latency, e.mem_words, e.mem_words))

    def _write(self, arrays, done):
        """A write: `arrays` (on-chip values) through wr_buf -> wr_mem; `done` gets what the memory
        received, decoded."""
        beats, decoded = channel_job(arrays, self.eng.engine.mem_words)
        return Job({"wr_buf": beats}, {"wr_mem": len(beats)}, lambda got: done(decoded(got["wr_mem"])))

    def op_embed(self, t):
        if self.x is None:
            self.x = np.zeros((len(self.tokens), self.model.cfg.hidden_size), np.float32)
        idx = self.idx[t]

        def done(values):
            self.x[idx] = values[0]
        return self._read([self.model.embed(self.model.check_tokens(self.tokens[idx]))], done)

    def op_load_conv(self, l):
        def done(values):
            self.v["start_conv", l] = values[0]
        return self._read([self.state.conv[l]], done, state=True)

    def op_load_ssm(self, l):
        def done(values):
            self.v["start_ssm", l] = values[0]
        return self._read([self.state.ssm[l]], done, state=True)

    def _nodes(self, t):
        return list(enumerate(range(len(self.tokens))[self.idx[t]]))

    def op_store(self, l, t):
        nodes = self._nodes(t)
        arrays = [a for k, _ in nodes for a in (self.v["win", l, t][k], self.v["hs", l, t][k])]

        def done(values):
            for k, i in nodes:
                self.states[i].conv.append(values[2 * k])
                self.states[i].ssm.append(values[2 * k + 1])
        return self._write(arrays, done)

    def op_cache(self, l, t):
        nodes = self._nodes(t)
        inputs = self.v["inputs", l, t]
        per = 1 + len(inputs)
        arrays = [a for k, _ in nodes for a in (self.v["pre", l, t][k], *(r[k] for r in inputs))]

        def done(values):
            for k, i in nodes:
                got = values[per * k:per * (k + 1)]
                self.caches[i].append((got[0], self.v["act", l, t][k].copy(), tuple(got[1:])))
        return self._write(arrays, done)

    def op_logits(self, t):
        idx = self.idx[t]

        def done(values):
            self.logits[idx] = values[0]
        return self._write([self.v["logits", t]], done)

    # --- RMSNorm and softplus units ---------------------------------------------------------
    def _norm(self, key, x, weight, unit="norm"):
        beats, n, decoded = norm_job(self.ops, x, weight)
        if self.eng.case.get("corrupt_norm_weight") and self.eng.corrupt_pending:
            beats[0] ^= 1 << (32 + 3)                       # one bit of the first norm weight word
            self.eng.corrupt_pending = False

        def finish(got):
            self.v[key] = decoded(got[unit + "_o"])
        return Job({unit + "_i": beats}, {unit + "_o": n}, finish, unit=unit)

    def op_norm(self, l, t):
        return self._norm(("h", l, t), self.x[self.idx[t]], self.model.layers[l]["norm"])

    def op_norm_f(self, t):
        return self._norm(("hf", t), self.x[self.idx[t]], self.model.w["backbone.norm_f.weight"])

    def op_gated_norm(self, l, t):
        """Mamba-2's norm after the gate: each node's d_inner words as `n_groups` vectors."""
        return self._norm(("g", l, t), self.v["y", l, t], self.model.layers[l]["gate_norm"], unit="gnorm")

    def op_softplus(self, l, t):
        L, v = self.model.layers[l], self.v
        beats, n, decoded = function_job(v["dt_raw", l, t], self.eng.engine.lanes, bias=L["dt_bias"])

        def finish(got):
            v["dt", l, t] = decoded(got["fu_o"])
            if not self.eng.mamba2:                       # the scan's inputs from x_proj and dt_proj
                r_, N = self.model.cfg.dt_rank, self.model.cfg.state_size
                proj = v["proj", l, t]
                v["u", l, t], v["B", l, t], v["C", l, t] = v["act", l, t], proj[:, r_:r_ + N], proj[:, r_ + N:]
                v["inputs", l, t] = (v["dt", l, t], v["B", l, t], v["C", l, t])
        return Job({"fu_i": beats}, {"fu_o": n}, finish)

    # --- matrix engine ------------------------------------------------------------------------
    def _linear(self, x, weight_t, done, adds=(None, None)):
        """A linear layer, its results through the engine's two result adders: (r + adds[0]) +
        adds[1] (None: -0, no add)."""
        eng = self.eng
        a, b, beat_words, add_beats, count, decoded = linear_job(eng.gemm, self.ops, x, weight_t, adds)
        if eng.case.get("corrupt_weight_word") and eng.corrupt_pending:
            b = list(b)
            b[0] ^= 1 << 3                                  # one bit of one weight word in memory
            eng.corrupt_pending = False
        M, K, N = x.shape[0], x.shape[1], weight_t.shape[1]
        cmd = M | (N << eng.cmd_widths[0]) | (K << (eng.cmd_widths[0] + eng.cmd_widths[1]))
        rate = max(1, eng.engine.mem_words * 32 // eng.gemm.fma.in_f.width)
        return Job({"mxu_cmd": [cmd], "mxu_a_in": a, "mxu_b_in": b, "mxu_add": add_beats}, {"mxu_r_out": count},
                   lambda got: done(decoded(got["mxu_r_out"])),
                   memory=("mxu_b_in", eng.engine.mem_latency, rate, beat_words), request="mxu_cmd")

    def op_in_proj(self, l, t):
        L, cfg = self.model.layers[l], self.model.cfg
        di = cfg.intermediate_size

        def done(r):
            if self.eng.mamba2:                           # r has in_proj's bias: the first result adder
                cd = cfg.conv_dim
                self.v["z", l, t], self.v["pre", l, t], self.v["dt_raw", l, t] = r[:, :di], r[:, di:di + cd], r[:, di + cd:]
            else:
                self.v["pre", l, t], self.v["z", l, t] = r[:, :di], r[:, di:]
        return self._linear(self.v["h", l, t], L["in_proj"], done, (L["in_bias"] if self.eng.mamba2 else None, None))

    def op_x_proj(self, l, t):
        L = self.model.layers[l]

        def done(r):
            self.v["proj", l, t] = r
        return self._linear(self.v["act", l, t], L["x_proj"], done)

    def op_dt_proj(self, l, t):
        L, r_ = self.model.layers[l], self.model.cfg.dt_rank

        def done(r):
            self.v["dt_raw", l, t] = r
        return self._linear(self.v["proj", l, t][:, :r_], L["dt_proj"], done)

    def op_out(self, l, t):
        L = self.model.layers[l]
        g = self.v["g" if self.eng.mamba2 else "y", l, t]

        def done(r):                                      # the new residual stream, from the result adders
            self.x[self.idx[t]] = r
        x = self.x[self.idx[t]].copy()
        return self._linear(g, L["out_proj"], done, (L["out_bias"], x) if self.eng.mamba2 else (x, None))

    def op_lm_head(self, t):
        w = self.model.lm_head if self.eng.mamba2 else self.model.w["backbone.embeddings.weight"].T

        def done(r):
            self.v["logits", t] = r
        return self._linear(self.v["hf", t], w, done)

    # --- conv and scan units ----------------------------------------------------------------
    def op_conv(self, l, t):
        eng, L, idx = self.eng, self.model.layers[l], self.idx[t]
        start = self.v["start_conv", l] if t == 0 else None
        beats, n_o, n_s, decoded = conv_job(eng.conv_cfg, eng.conv_layout, self.ops, L, start, self.v["pre", l, t],
                                            self.src[idx], self.dst[idx], eng.case.get("corrupt_weight"))

        def finish(got):
            self.v["act", l, t], self.v["win", l, t] = decoded(got["conv_o"], got["conv_s"])
            if not self.eng.mamba2:
                return
            cfg = self.model.cfg
            di, GN = cfg.intermediate_size, cfg.n_groups * cfg.state_size
            act = self.v["act", l, t]
            self.v["inputs", l, t] = (self.v["dt_raw", l, t],)
            self.v["u", l, t] = act[:, :di]
            self.v["B", l, t] = act[:, di:di + GN].reshape(-1, cfg.n_groups, cfg.state_size)
            self.v["C", l, t] = act[:, di + GN:].reshape(-1, cfg.n_groups, cfg.state_size)
        return Job({"conv_i": beats}, {"conv_o": n_o, "conv_s": n_s}, finish)

    def op_scan(self, l, t):
        eng, L, idx, v = self.eng, self.model.layers[l], self.idx[t], self.v
        start = self.v["start_ssm", l] if t == 0 else None
        beats, n_o, n_s, decoded = scan_job(eng.scan_cfg, eng.scan_layout, self.ops, L, start, v["u", l, t],
                                            v["dt", l, t], v["z", l, t], v["B", l, t], v["C", l, t],
                                            self.src[idx], self.dst[idx])

        def finish(got):
            v["y", l, t], v["hs", l, t] = decoded(got["scan_o"], got["scan_s"])
        return Job({"scan_i": beats}, {"scan_o": n_o, "scan_s": n_s}, finish)

    # --- recompute: the accepted path from the starting state ---------------------------------
    def op_accept(self):
        pass

    def op_reload(self, l):
        """The layer's starting state and the path's cached inputs, from memory."""
        per = [[c[l][0], *c[l][2]] for c in self.path]

        def done(values):
            self.v["re_conv", l], self.v["re_ssm", l] = values[:2]
            n = len(per[0])
            self.v["re_path", l] = [(values[2 + n * k], tuple(values[3 + n * k:2 + n * (k + 1)]))
                                    for k in range(len(per))]
        return self._read([self.state.conv[l], self.state.ssm[l]] + [a for p in per for a in p], done, state=True)

    def op_reconv(self, l):
        eng, L = self.eng, self.model.layers[l]
        path = self.v["re_path", l]
        k = len(path)
        pre = np.stack([c[0] for c in path])
        beats, n_o, n_s, decoded = conv_job(eng.conv_cfg, eng.conv_layout, self.ops, L, self.v["re_conv", l], pre,
                                            [0] * k, [0] * k, eng.case.get("corrupt_weight"))

        def finish(got):
            act, windows = decoded(got["conv_o"], got["conv_s"])
            self.v["act", l] = act
            self.v["new_conv", l] = windows[-1]
        return Job({"conv_i": beats}, {"conv_o": n_o, "conv_s": n_s}, finish)

    def op_resoftplus(self, l):
        """Mamba-2: the path's cached dt (before its softplus) through the softplus unit again."""
        dt_raw = np.stack([c[1][0] for c in self.v["re_path", l]])
        beats, n, decoded = function_job(dt_raw, self.eng.engine.lanes, bias=self.model.layers[l]["dt_bias"])

        def finish(got):
            self.v["dt", l] = decoded(got["fu_o"])
        return Job({"fu_i": beats}, {"fu_o": n}, finish)

    def op_rescan(self, l):
        eng, L, cfg = self.eng, self.model.layers[l], self.model.cfg
        path, act = self.v["re_path", l], self.v["act", l]
        k = len(path)
        inputs = tuple(np.stack([c[1][j] for c in path]) for j in range(len(path[0][1])))
        if eng.mamba2:
            di, GN = cfg.intermediate_size, cfg.n_groups * cfg.state_size
            u, dt = act[:, :di], self.v["dt", l]
            B = act[:, di:di + GN].reshape(-1, cfg.n_groups, cfg.state_size)
            C = act[:, di + GN:].reshape(-1, cfg.n_groups, cfg.state_size)
        else:
            u, (dt, B, C) = act, inputs
        beats, n_o, n_s, decoded = scan_job(eng.scan_cfg, eng.scan_layout, self.ops, L, self.v["re_ssm", l], u, dt,
                                            np.zeros_like(u), B, C, [0] * k, [0] * k)

        def finish(got):
            self.v["new_ssm", l] = decoded(got["scan_o"], got["scan_s"])[1][-1]
        return Job({"scan_i": beats}, {"scan_o": n_o, "scan_s": n_s}, finish)

    def op_restore(self, l):
        """The layer's new state, to memory: what the memory received is the state kept."""
        def done(values):
            self.new.conv[l], self.new.ssm[l] = values
        return self._write([self.v["new_conv", l], self.v["new_ssm", l]], done)


class RTLEngine:
    """Verification passes and recomputes on the RTL engine, each checked against the golden."""

    def __init__(self, tb, case, target):
        from specmx.hdl.mamba_engine import engine_gemm
        from specmx.models.config import EngineConfig, FMAConfig
        self.case, self.model = case, target
        self.engine = EngineConfig(**{k: v for k, v in case["engine"].items() if k != "fma"}, fma=FMAConfig())
        self.dims = model_dims(target.cfg)
        self.mamba2 = self.dims.family == "mamba2"
        self.gemm = engine_gemm(self.engine, self.dims)
        self.cmd_widths = [max(1, v.bit_length()) for v in self.gemm.buffers[:2]]
        self.conv_cfg, self.scan_cfg = unit_configs(self.engine, self.dims)
        self.conv_layout = conv_layout(self.conv_cfg, self.engine.state_slots)
        self.scan_layout = scan_layout(self.scan_cfg, self.engine.state_slots)
        self.bus = EngineBus(tb, case["idle"], case["backpressure"], bus_units(self.mamba2))
        self.timed = not case["idle"] and not case["backpressure"]
        self.seq_layout = cmd_layout(queue_targets(self.mamba2), self.engine.program_depth, WORDS_BITS)
        self.sequencer_errors = []
        self.corrupt_pending = True
        self.passes, self.timing_errors = [], []

    async def _run(self, ops, work):
        names = {op.name for op in ops}                   # a phase's inputs from before it are done
        ops = [replace(op, deps=tuple(d for d in op.deps if d in names)) for op in ops]
        program = compile_program(ops, depth=self.engine.program_depth, words_bits=WORDS_BITS)
        seq = Sequencer(self.bus, ops, work.handle, program, self.seq_layout, self.case.get("wrong_dependency"))
        self.bus.on_cycle = seq.on_cycle
        await seq.finished.wait()
        self.bus.on_cycle = None
        self.sequencer_errors += seq.errors
        if self.case.get("model_error"):                  # negative control: a cycle model one off ("unit+1")
            off = self.case["model_error"].removesuffix("+1")
            ops = [replace(op, cycles=op.cycles + 1) if op.unit == off else op for op in ops]
        sched = list_schedule(step_graph(ops))
        model = sched["span"]
        bad = [(name, seq.span[name], model[name]) for name in seq.span if seq.span[name] != tuple(model[name])]
        cycles = max(e for _, e in seq.span.values())
        predicted = max(e for _, e in model.values())
        if self.timed and bad:
            self.timing_errors.append(bad[:3])
        measured_overlap = _overlap(seq.span, {op.name: op.unit for op in ops}, "mxu", "scan")
        return {"cycles": cycles, "predicted": predicted, "timing_mismatches": len(bad) if self.timed else 0,
                "overlap": measured_overlap, "predicted_overlap": sched["overlap"],
                "sequencer_errors": len(seq.errors), "program_words": sum(map(len, program.values())),
                "load_cycles": seq.load_cycles}

    async def verify(self, state, tokens, parent, tile, cache, store):
        assert tile == self.engine.tile, (tile, self.engine.tile)
        work = EnginePass(self, state, tokens, parent, cache, store)
        ops, info = step_ops(self.engine, self.dims, parent, "store" if store else "recompute")
        verify_ops = [op for op in ops if op.phase == "verify"]
        timing = await self._run(verify_ops, work)
        result = {"logits": work.logits, "states": work.states, "cache": work.caches, "peak_live_states": work.used}
        gold = verify_tree(self.model, state, tokens, parent, tile, cache=cache, store=store)
        bad = int(np.sum(gold["logits"].view(np.int32) != work.logits.view(np.int32)))
        state_bad = state_mismatches(self.model.ops, gold["states"], work.states) if store else 0
        self.passes.append({"nodes": len(tokens), "logit_mismatches": bad, "state_mismatches": state_bad, **timing})
        return result

    async def recompute(self, state, path_caches):
        parent = [-1] + list(range(len(path_caches) - 1))
        work = EnginePass(self, state, [0] * len(path_caches), parent, False, False)
        work.path, work.new = path_caches, state.copy()
        ops, _ = step_ops(self.engine, self.dims, parent, "recompute", path=len(path_caches))
        phase = [op for op in ops if op.phase == "backtrack"]
        timing = await self._run(phase, work)
        gold = _recompute(self.model, state, path_caches)
        bad = state_mismatches(self.model.ops, [gold], [work.new])
        self.passes.append({"recompute_path": len(path_caches), "state_mismatches": bad, **timing})
        return work.new


def _overlap(span, unit, a, b):
    """Cycles in which an operation of unit a and one of unit b both run."""
    busy = lambda u: {c for n, (s, e) in span.items() if unit[n] == u for c in range(s, e)}
    return len(busy(a) & busy(b))


def greedy_decode(model, prompt, n_tokens, tile, verify):
    """Plain decode through the engine: the prompt's prefix through the golden model (as
    `speculative_generate` does), then each token a one-node verification (its logits and stored
    state) with `verify`."""
    prompt = model.check_tokens(np.asarray(prompt))
    state = model.forward(prompt[:-1], model.initial_state(), return_state=True)[1] if prompt.size > 1 \
        else model.initial_state()
    token, tokens = int(prompt[-1]), []
    for _ in range(n_tokens):
        result = verify(state, [token], [-1], tile, False, True)
        token = int(np.argmax(result["logits"][0]))
        state = result["states"][0]
        tokens.append(token)
    return tokens, SimpleNamespace(target_passes=n_tokens, strategy_used={"store": n_tokens}, accepted_draft_tokens=0)


async def negative_controls(rtl, case, target):
    """One (3, 2, 1) verification pass per control, in one simulation: a cycle model one cycle
    off per linear layer, and one off per norm; one flipped bit in one weight word in memory,
    and in the first norm weight word; the last node reading a wrong slot. Each pass is checked
    as any other; the report gives what each one caught."""
    from specmx.models.perf.engine import tree_parents
    parent = tree_parents((3, 2, 1))
    tokens = [int(t) for t in np.random.default_rng(case["seed"]).integers(0, target.cfg.vocab_size, len(parent))]
    prompt = target.check_tokens(np.asarray(case["prompt"]))
    state = target.forward(prompt[:-1], target.initial_state(), return_state=True)[1]
    controls = {}
    controls_run = (("model_error", "model_error", "mxu+1"), ("norm_model_error", "model_error", "norm+1"),
                    ("corrupt_weight_word", "corrupt_weight_word", True),
                    ("corrupt_norm_weight", "corrupt_norm_weight", True), ("wrong_parent", "wrong_parent", True),
                    ("corrupt_state_word", "corrupt_state_word", True), ("wrong_dependency", "wrong_dependency", True))
    for label, name, value in controls_run:
        rtl.case = dict(case, **{name: value})
        rtl.corrupt_pending = True
        await rtl.verify(state, tokens, parent, rtl.engine.tile, False, True)
        p = rtl.passes[-1]
        controls[label] = {k: p[k] for k in ("logit_mismatches", "state_mismatches", "timing_mismatches",
                                             "sequencer_errors")}
    write_report({"controls": controls, "protocol_errors": rtl.bus.errors[:10]})


@cocotb.test()
async def engine_generation_matches_golden(dut):
    case = json.loads(os.environ["SPECMX_CASE"])
    target, draft = build_models(case)
    tb = TB(dut)
    rtl = RTLEngine(tb, case, target)
    await tb.start()
    cocotb.start_soon(rtl.bus.run())
    if case.get("negative_controls"):
        await negative_controls(rtl, case, target)
        return
    verify_rtl, recompute_rtl = resume(rtl.verify), resume(rtl.recompute)
    kwargs = dict(tree=case["tree"], backtrack=case["backtrack"], memory_budget=case.get("memory_budget", 1 << 20),
                  tile=rtl.engine.tile)
    if case["tree"] == "single":                          # plain decode: one node per verification
        kwargs["backtrack"] = "store"
        generate = functools.partial(greedy_decode, target, case["prompt"], case["tokens"], rtl.engine.tile)
        run = bridge(lambda: generate(verify=lambda s, t, p, tile, cache, store: verify_rtl(s, t, p, tile, cache, store)))
        tokens, stats = await run()
        golden, _ = generate(verify=lambda s, t, p, tile, cache, store: verify_tree(target, s, t, p, tile, cache, store))
    else:
        run = bridge(lambda: speculative_generate(
            target, draft, case["prompt"], case["tokens"], **kwargs,
            verify=lambda m, s, t, p, tile, cache, store: verify_rtl(s, t, p, tile, cache, store),
            recompute=lambda m, s, path: recompute_rtl(s, path)))
        tokens, stats = await run()
        golden, _ = speculative_generate(target, draft, case["prompt"], case["tokens"], **kwargs)
    passes = rtl.passes
    verifications = [p for p in passes if "nodes" in p]
    report = {"tokens": len(tokens), "token_mismatches": int(sum(a != b for a, b in zip(tokens, golden)))
              + abs(len(tokens) - len(golden)),
              "verifications": stats.target_passes, "strategies": stats.strategy_used,
              "nodes": sum(p["nodes"] for p in verifications),
              "logit_mismatches": sum(p.get("logit_mismatches", 0) for p in passes),
              "state_mismatches": sum(p.get("state_mismatches", 0) for p in passes),
              "timed": rtl.timed, "timing_mismatches": sum(p["timing_mismatches"] for p in passes),
              "first_timing_mismatches": rtl.timing_errors[:2],
              "measured_cycles": sum(p["cycles"] for p in passes),
              "predicted_cycles": sum(p["predicted"] for p in passes),
              "verify_cycles": [p["cycles"] for p in verifications],
              "overlap": sum(p["overlap"] for p in verifications),
              "predicted_overlap": sum(p["predicted_overlap"] for p in verifications),
              "recompute_cycles": [p["cycles"] for p in passes if "recompute_path" in p],
              "accepted_draft_tokens": stats.accepted_draft_tokens,
              "sequencer_errors": len(rtl.sequencer_errors), "first_sequencer_errors": rtl.sequencer_errors[:3],
              "program_words": [p["program_words"] for p in verifications],
              "load_cycles": [p["load_cycles"] for p in verifications],
              "protocol_errors": rtl.bus.errors[:10]}
    write_report(report)
