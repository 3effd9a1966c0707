"""Reusable cocotb testbench parts: clock and reset, stream source and sink, protocol monitor,
scoreboard. Every testbench in `sim/` is built from these (cocotbext-axi's shape: small classes
that a test composes, each owning one job).

Ports come from the component's signature: the host passes `runner.port_map(component)` as
$SPECMX_PORTS, and `TB.port("a_in.valid")` / `TB.stream("a_in")` look the Verilog names up
there, so a renamed port fails with a KeyError naming it instead of driving nothing.

Timing convention (one cycle = one rising edge): drivers change inputs just after the falling
edge; handshakes are sampled in the read-only phase just before the rising edge, where a
transfer happens when valid and ready are both high.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

__all__ = ["pack_lanes", "TB", "Stream", "StreamSource", "MemorySource", "memory_ready_cycle", "StreamSink",
           "StreamMonitor", "StreamHarness", "Scoreboard", "write_report"]


def pack_lanes(rows, bits):
    """One integer per beat from rows of lane words, lane 0 in the low bits."""
    return [sum(int(w) << (bits * i) for i, w in enumerate(row)) for row in rows]


class TB:
    """Clock, reset, cycle counter and port lookup for one DUT.

    `cycle` counts rising edges since reset was released; samplers read it in the read-only
    phase, so a transfer sampled there happens at the edge that ends cycle `cycle`."""

    def __init__(self, dut, period_ns=10, seed=None):
        self.dut = dut
        self.ports = json.loads(os.environ["SPECMX_PORTS"])
        self.rng = np.random.default_rng(int(os.environ.get("SPECMX_SEED", "0")) if seed is None else seed)
        self.cycle = 0
        self.period_ns = period_ns

    def port(self, path):
        """The simulator handle of the signature member `path` ('a_in.valid', 'r')."""
        try:
            return getattr(self.dut, self.ports[path])
        except KeyError:
            raise KeyError(f"port {path!r} is not in the component's signature; "
                           f"it has: {', '.join(sorted(self.ports))}") from None

    def stream(self, name):
        return Stream(self.port(f"{name}.valid"), self.port(f"{name}.ready"), self.port(f"{name}.payload"))

    async def start(self, reset_cycles=1):
        """Start the clock, hold reset for `reset_cycles` edges, release it after a falling edge."""
        cocotb.start_soon(Clock(self.dut.clk, self.period_ns, unit="ns").start())
        self.dut.rst.value = 1
        for _ in range(reset_cycles):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        cocotb.start_soon(self._count())

    async def _count(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def cycles(self, n):
        for _ in range(n):
            await RisingEdge(self.dut.clk)


class Stream:
    """The three handles of one `amaranth.lib.stream` port."""

    def __init__(self, valid, ready, payload):
        self.valid, self.ready, self.payload = valid, ready, payload

    def fire(self):
        """In the read-only phase: True when a transfer happens at the coming edge."""
        return bool(int(self.valid.value)) and bool(int(self.ready.value))


class StreamSource:
    """Drives words into a stream. With probability `idle` it leaves a gap (valid low) before
    a word, but never before the first one, so the source starts on the first cycle the DUT
    is ready; `gaps` counts the gaps. Once valid is high the payload holds until accepted.
    `accepted` lists the cycle of each transfer; `starved` counts the cycles after the first
    transfer in which the DUT was ready and the source offered nothing (the gaps a cycle model
    of a stalling pipeline accounts: a gap while the DUT is not ready costs nothing)."""

    def __init__(self, tb, stream, words, idle=0.0):
        self.tb, self.stream, self.words = tb, stream, [int(w) for w in words]
        self.idle, self.gaps, self.accepted, self.starved = idle, 0, [], 0
        stream.valid.value = 0
        cocotb.start_soon(self._run())

    @property
    def done(self):
        return len(self.accepted) == len(self.words)

    def _offer(self, index):
        """Whether to offer word `index` this cycle (not before a random gap)."""
        if index > 0 and self.idle and self.tb.rng.random() < self.idle:
            self.gaps += 1
            return False
        return True

    async def _run(self):
        clk, index, valid = self.tb.dut.clk, 0, False
        while index < len(self.words):
            await FallingEdge(clk)
            if not valid:
                valid = self._offer(index)
                if valid:
                    self.stream.payload.value = self.words[index]
                self.stream.valid.value = int(valid)
            await ReadOnly()
            ready = int(self.stream.ready.value)
            if valid and ready:
                self.accepted.append(self.tb.cycle)
                index += 1
                valid = False
            elif ready and index > 0:
                self.starved += 1
        await FallingEdge(clk)
        self.stream.valid.value = 0


class MemorySource(StreamSource):
    """A read from the external memory model: `words` (beats of `beat_words` words each) stream
    at `words_per_cycle` words per cycle starting `latency` cycles after the request, made in
    cycle `start`: beat i may be offered from cycle start + latency + ceil((i+1)*beat_words /
    words_per_cycle) on (`memory_ready_cycle`), and waits there, in order, until taken (the memory keeps
    delivering into its buffer meanwhile). `start` may be a callable that returns None until the
    request is made (`lambda: cmd.accepted[0] if cmd.accepted else None`). No random gaps: every
    stall it causes follows from latency and bandwidth (`models.perf.gemm.memory_stall_cycles`)."""

    def __init__(self, tb, stream, words, start, latency, words_per_cycle, beat_words):
        self.start, self.latency, self.rate, self.beat_words = start, latency, words_per_cycle, beat_words
        super().__init__(tb, stream, words)

    def _offer(self, index):
        start = self.start() if callable(self.start) else self.start
        return start is not None and self.tb.cycle >= memory_ready_cycle(start, self.latency, self.rate,
                                                                        self.beat_words, index)


def memory_ready_cycle(start, latency, words_per_cycle, beat_words, index):
    """The first cycle the memory model can offer beat `index` of a read requested in cycle
    `start`: start + latency + ceil((index+1) * beat_words / words_per_cycle)."""
    return start + latency + -(-(index + 1) * beat_words // words_per_cycle)


class StreamSink:
    """Takes words from a stream, holding `ready` low with probability `backpressure` each
    cycle. `words` and `accepted` (cycles) list the transfers; `held` counts the cycles in which
    the DUT offered a word (valid high) and the sink refused it (`held_cycles` lists them)."""

    def __init__(self, tb, stream, backpressure=0.0):
        self.tb, self.stream, self.backpressure = tb, stream, backpressure
        self.words, self.accepted, self.held, self.held_cycles = [], [], 0, []
        stream.ready.value = 0
        cocotb.start_soon(self._run())

    async def _run(self):
        clk = self.tb.dut.clk
        while True:
            await FallingEdge(clk)
            ready = not (self.backpressure and self.tb.rng.random() < self.backpressure)
            self.stream.ready.value = int(ready)
            await ReadOnly()
            if int(self.stream.valid.value):
                if ready:
                    self.words.append(int(self.stream.payload.value))
                    self.accepted.append(self.tb.cycle)
                else:
                    self.held += 1
                    self.held_cycles.append(self.tb.cycle)


class StreamMonitor:
    """Checks the valid/ready protocol on a stream, every cycle: a word offered and not taken
    (valid high, ready low) must be offered again on the next cycle with the same payload (no
    valid dropped, payload stable). Violations are collected in `errors`."""

    def __init__(self, tb, stream, name):
        self.tb, self.stream, self.name, self.errors = tb, stream, name, []
        cocotb.start_soon(self._run())

    async def _run(self):
        clk, pending = self.tb.dut.clk, None
        while True:
            await FallingEdge(clk)
            await ReadOnly()
            valid, ready = int(self.stream.valid.value), int(self.stream.ready.value)
            payload = int(self.stream.payload.value) if valid else None
            if pending is not None:
                if not valid:
                    self.errors.append(f"{self.name}: valid dropped at cycle {self.tb.cycle} "
                                       f"before the word {pending:#x} was taken")
                elif payload != pending:
                    self.errors.append(f"{self.name}: payload changed from {pending:#x} to {payload:#x} "
                                       f"at cycle {self.tb.cycle} while waiting for ready")
            pending = payload if valid and not ready else None


class StreamHarness:
    """Source, sink and protocol monitor of a one-in, one-out stream unit in a single coroutine
    (the same behaviour as StreamSource + StreamSink + two StreamMonitors, at a quarter of the
    simulator events per cycle, for long exhaustive runs). Gaps: probability `idle` before a
    word (never before the first); back-pressure: probability `backpressure` per cycle.
    Afterwards: `words` received, `first_in`/`last_out` transfer cycles, `starved` (unit ready,
    nothing offered, after the first word), `held` (result offered, sink not ready), `errors`."""

    def __init__(self, tb, source, sink, words, idle=0.0, backpressure=0.0):
        self.tb, self.source, self.sink = tb, source, sink
        self.inputs, self.idle, self.backpressure = [int(w) for w in words], idle, backpressure
        self.words, self.errors = [], []
        self.first_in = self.last_out = None
        self.starved = self.held = 0
        source.valid.value = 0
        sink.ready.value = 0

    async def run(self, expected_count, limit):
        clk, rng, cycle = self.tb.dut.clk, self.tb.rng, 0
        index, offering, pending = 0, False, None
        while len(self.words) < expected_count and cycle < limit:
            await FallingEdge(clk)
            if not offering and index < len(self.inputs):
                offering = not (index > 0 and self.idle and rng.random() < self.idle)
                if offering:
                    self.source.payload.value = self.inputs[index]
            self.source.valid.value = int(offering)
            ready = not (self.backpressure and rng.random() < self.backpressure)
            self.sink.ready.value = int(ready)
            await ReadOnly()
            if int(self.source.ready.value):
                if offering:
                    self.first_in = cycle if self.first_in is None else self.first_in
                    index, offering = index + 1, False
                elif 0 < index < len(self.inputs):
                    self.starved += 1
            valid = int(self.sink.valid.value)
            payload = int(self.sink.payload.value) if valid else None
            if pending is not None and payload != pending:
                self.errors.append(f"output: word {pending:#x} withdrawn or changed at cycle {cycle} "
                                   "before it was taken")
            if valid and ready:
                self.words.append(payload)
                self.last_out = cycle
            elif valid:
                self.held += 1
            pending = payload if valid and not ready else None
            cycle += 1
        await FallingEdge(clk)
        self.source.valid.value = 0
        for _ in range(8):                    # an extra result after the last one shows up here
            await ReadOnly()
            if int(self.sink.valid.value):
                self.words.append(int(self.sink.payload.value))
            await FallingEdge(clk)

    @property
    def cycles(self):
        """First input transfer to last output transfer, both included."""
        return None if self.first_in is None or self.last_out is None else self.last_out - self.first_in + 1


class Scoreboard:
    """Compares received words with expected words, bit for bit, in order."""

    def __init__(self, expected, describe=None, keep=5):
        self.expected = np.asarray(expected, dtype=np.int64).ravel()
        self.describe = describe or (lambda i: {"index": int(i)})
        self.keep = keep

    def compare(self, got):
        """Report dict: results, expected, mismatches (a missing or extra word counts as one),
        first_mismatches (up to `keep`, each with `describe(index)`, expected and got)."""
        got = np.asarray(got, dtype=np.int64).ravel()
        n = min(got.size, self.expected.size)
        bad = np.flatnonzero(got[:n] != self.expected[:n])
        return {"results": int(got.size), "expected": int(self.expected.size),
                "mismatches": int(bad.size) + abs(int(self.expected.size) - int(got.size)),
                "first_mismatches": [{**self.describe(i), "expected": hex(self.expected[i]), "got": hex(got[i])}
                                     for i in bad[:self.keep]]}


def write_report(report):
    """Write the JSON report the host reads back ($SPECMX_REPORT)."""
    with open(os.environ["SPECMX_REPORT"], "w") as f:
        json.dump(report, f)
