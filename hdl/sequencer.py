"""The Mamba engine's sequencer: walks a verification step's program on the engine's units.

The program (`models.perf.engine_program.compile_program`) is one instruction queue per unit
(matrix engine, conv, scan, RMSNorm, softplus, the memory read and write channels), each run in order, as the cycle model's units
do. An instruction says which of the unit's targets it runs on (the norm queue drives the
layer norm or Mamba-2's gated norm), how many words each of that target's output streams will
send (the operation ends on its last word), and, per queue, how many of that queue's
operations must have ended before it may start (its inputs: a dependency on operation k of
queue q is "q has ended more than k"; zero-cycle host work folds into these counts). So the
issue test is one comparison per queue against an end counter, the scoreboard of a decoupled
access/execute machine.

An operation is issued (on the queue's `issue` stream, payload its index in the queue: the
data mover then feeds the unit's inputs) on the cycle after its unit's previous operation and
its inputs ended; a unit's input streams pass words only while its queue has an operation
issued or issuing, so nothing reaches a unit that the sequencer has not started.

Members
-------
cmd : In(stream of cmd_layout)        append an instruction to a queue (kind 0), or start the
                                      loaded program (kind 1); taken only while not running
issue_<queue> : Out(stream of index)  one beat per operation started
taps : In(n)                          a handshake (valid & ready) on each target's output streams
gate : Out(n)                         per target: its inputs may pass words this cycle
ended : Out(array of counts)          operations ended per queue in this run
running, finished : Out(1)            a program runs; the cycle it ends (one cycle)
error : Out(1)                        sticky: a word no operation expected, or a queue overflow
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["StepSequencer", "instruction_layout", "cmd_layout", "WORDS_BITS"]

APPEND, START = 0, 1
WORDS_BITS = 20                 # an operation's words per output stream: up to 2^20 - 1


def _bits(n):
    return max(1, (n - 1).bit_length())


def instruction_layout(queues, depth, words_bits):
    """need (an end count per queue), target (index into the queue's targets), words (per output
    stream of the target)."""
    ports = max(len(t) for targets in queues.values() for t in targets)
    targets = max(len(t) for t in queues.values())
    return data.StructLayout({"need": data.ArrayLayout(depth.bit_length(), len(queues)),
                              "target": _bits(targets),
                              "words": data.ArrayLayout(words_bits, ports)})


def cmd_layout(queues, depth, words_bits):
    return data.StructLayout({"kind": 1, "queue": _bits(len(queues)),
                              "instr": instruction_layout(queues, depth, words_bits)})


class StepSequencer(wiring.Component):
    """Parameters: `queues` ({queue: [target, ...]}, a target a tuple of output stream names, in
    the order of the instruction's word counts), `depth` (instructions per queue), `words_bits`
    (width of a word count). `tap_index[(queue, target, k)]` and `gate_index[(queue, target)]`
    give the bits of `taps` and `gate`."""

    def __init__(self, queues, depth, words_bits=WORDS_BITS):
        self.queues, self.depth, self.words_bits = {q: list(t) for q, t in queues.items()}, depth, words_bits
        self.layout = instruction_layout(self.queues, depth, words_bits)
        self.tap_index, self.gate_index = {}, {}
        for q, targets in self.queues.items():
            for t, ports in enumerate(targets):
                self.gate_index[q, t] = len(self.gate_index)
                for k in range(len(ports)):
                    self.tap_index[q, t, k] = len(self.tap_index)
        members = {"cmd": In(stream.Signature(cmd_layout(self.queues, depth, words_bits))),
                   "taps": In(len(self.tap_index)), "gate": Out(len(self.gate_index)),
                   "ended": Out(data.ArrayLayout(depth.bit_length(), len(self.queues))),
                   "running": Out(1), "finished": Out(1), "error": Out(1)}
        for q in self.queues:
            members[f"issue_{q}"] = Out(stream.Signature(_bits(depth)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        count = self.depth.bit_length()
        names = list(self.queues)
        cmd = self.cmd.payload
        m.d.comb += self.cmd.ready.eq(~self.running)
        append = self.cmd.valid & self.cmd.ready & (cmd.kind == APPEND)
        start = self.cmd.valid & self.cmd.ready & (cmd.kind == START)

        idle, pointers = [], []
        for qi, q in enumerate(names):
            length, head = Signal(count, name=f"{q}_length"), Signal(count, name=f"{q}_head")
            pointers += [length, head]
            busy, target = Signal(name=f"{q}_busy"), Signal(self.layout["target"].shape, name=f"{q}_target")
            words = max(len(t) for t in self.queues[q])
            left = [Signal(self.words_bits, name=f"{q}_left{k}") for k in range(words)]

            mem = Memory(shape=self.layout, depth=self.depth, init=[])
            setattr(m.submodules, f"{q}_program", mem)
            wr, rd = mem.write_port(), mem.read_port(domain="comb")
            full = length == self.depth
            m.d.comb += [wr.addr.eq(length), wr.data.eq(cmd.instr), wr.en.eq(append & (cmd.queue == qi) & ~full),
                         rd.addr.eq(head)]
            with m.If(append & (cmd.queue == qi)):
                with m.If(full):
                    m.d.sync += self.error.eq(1)
                with m.Else():
                    m.d.sync += length.eq(length + 1)

            instr = rd.data
            inputs_ended = [self.ended[p] >= instr.need[p] for p in range(len(names)) if p != qi]
            issue = getattr(self, f"issue_{q}")
            m.d.comb += [issue.valid.eq(self.running & ~busy & (head != length) & Cat(*inputs_ended).all()),
                         issue.payload.eq(head)]
            issuing = issue.valid & issue.ready
            for t in range(len(self.queues[q])):
                on = (target == t) & busy | (instr.target == t) & issuing
                m.d.comb += self.gate[self.gate_index[q, t]].eq(on)

            # count down each output stream of the running target (from the issue cycle on: a
            # memory channel passes a word in it); the operation ends on its last word
            active = busy | issuing
            current = Signal.like(target, name=f"{q}_current")
            m.d.comb += current.eq(Mux(issuing, instr.target, target))
            remaining = []
            for k, reg in enumerate(left):
                tap = Signal(name=f"{q}_tap{k}")
                for t, ports in enumerate(self.queues[q]):
                    if k < len(ports):
                        bit = self.taps[self.tap_index[q, t, k]]
                        with m.If(bit & ~(active & (current == t))):    # a target not running
                            m.d.sync += self.error.eq(1)
                        with m.If(current == t):
                            m.d.comb += tap.eq(bit)
                expected = Mux(issuing, instr.words[k], reg)
                with m.If(tap & active & (expected == 0)):              # more words than expected
                    m.d.sync += self.error.eq(1)
                rest = Signal(self.words_bits, name=f"{q}_rest{k}")
                m.d.comb += rest.eq(expected - (tap & active))
                remaining.append(rest)
                m.d.sync += reg.eq(rest)
            ends = active & Cat(*(r == 0 for r in remaining)).all()
            with m.If(issuing):
                m.d.sync += [busy.eq(~ends), head.eq(head + 1), target.eq(instr.target)]
            with m.Elif(ends):
                m.d.sync += busy.eq(0)
            with m.If(ends):
                m.d.sync += self.ended[qi].eq(self.ended[qi] + 1)
            idle.append(~busy & (head == length))

        m.d.comb += self.finished.eq(self.running & Cat(*idle).all())
        with m.If(start):
            m.d.sync += self.running.eq(1)
        with m.If(self.finished):                          # ready for the next step's program
            m.d.sync += self.running.eq(0)
            m.d.sync += [self.ended[qi].eq(0) for qi in range(len(names))]
            m.d.sync += [p.eq(0) for p in pointers]
        return m

