"""cocotb testbench for the streaming GEMM engines (`hdl.stream_gemm`), built from `sim.streams`.

Sends one command; the a, b and c0 beats from $SPECMX_VECTORS (npz: a, b, c0 as [beats, lanes]
words, expected as [beats, lanes] words, lanes_valid [beats, lanes], m, n, k) stream in from
sources that leave random gaps (probability $SPECMX_IDLE); results go to a sink with random
back-pressure ($SPECMX_BACKPRESSURE); monitors check the valid/ready protocol and a scoreboard
compares every valid result lane bit for bit. Cycles run from the first operand beat accepted to
the last result accepted; `stall_cycles` counts the cycles in between in which the engine asked
for a beat that no source offered (ready high, valid low) or offered a result the sink refused,
which is what the cycle model adds. With $SPECMX_MEMORY ("latency,words per cycle") the b beats
(the weights) come from the external memory model instead (`MemorySource`, requested when the
command is taken) and `cycles_from_cmd` counts from the command to the last result, memory
stalls included. Writes a JSON report to $SPECMX_REPORT.
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly

from specmx.sim.streams import (TB, MemorySource, Scoreboard, StreamMonitor, StreamSink, StreamSource, pack_lanes,
                                write_report)


async def count_stalls(tb, inputs, output, stalled):
    """Append to `stalled` every cycle in which an input is starved or the output is held."""
    while True:
        await FallingEdge(tb.dut.clk)
        await ReadOnly()
        starved = any(int(s.ready.value) and not int(s.valid.value) for s in inputs)
        held = int(output.valid.value) and not int(output.ready.value)
        if starved or held:
            stalled.append(tb.cycle)


@cocotb.test()
async def stream_gemm_matches_golden(dut):
    v = np.load(os.environ["SPECMX_VECTORS"])
    M, N, K = int(v["m"]), int(v["n"]), int(v["k"])
    widths = [int(x) for x in os.environ["SPECMX_CMD_WIDTHS"].split(",")]
    in_bits, acc_bits = (int(x) for x in os.environ["SPECMX_WORD_BITS"].split(","))
    idle = float(os.environ.get("SPECMX_IDLE", "0"))
    tb = TB(dut)
    streams = {name: tb.stream(name) for name in ("cmd", "a_in", "b_in", "c_in", "r_out")}
    monitors = [StreamMonitor(tb, s, name) for name, s in streams.items()]
    sink = StreamSink(tb, streams["r_out"], float(os.environ.get("SPECMX_BACKPRESSURE", "0")))
    await tb.start()
    stalled = []
    cocotb.start_soon(count_stalls(tb, [streams[n] for n in ("a_in", "b_in", "c_in")], streams["r_out"], stalled))
    cmd = StreamSource(tb, streams["cmd"], [M | (N << widths[0]) | (K << (widths[0] + widths[1]))])
    memory = os.environ.get("SPECMX_MEMORY")
    if memory:
        latency, rate = (int(x) for x in memory.split(","))
        b = MemorySource(tb, streams["b_in"], pack_lanes(v["b"], in_bits), lambda: cmd.accepted[0] if cmd.accepted
                         else None, latency, rate, v["b"].shape[1])
    else:
        b = StreamSource(tb, streams["b_in"], pack_lanes(v["b"], in_bits), idle)
    sources = {"a": StreamSource(tb, streams["a_in"], pack_lanes(v["a"], in_bits), idle), "b": b,
               "c0": StreamSource(tb, streams["c_in"], pack_lanes(v["c0"], acc_bits), idle)}
    expected, lanes_valid = v["expected"], v["lanes_valid"].astype(bool)
    beats = expected.shape[0]
    limit = 40 * (len(v["a"]) + len(v["c0"])) + 10000
    while len(sink.words) < beats and tb.cycle < limit:
        await tb.cycles(1)
    await tb.cycles(4)        # an extra result after the last one would show up here
    mask = (1 << acc_bits) - 1
    got = np.array([[(w >> (acc_bits * j)) & mask for j in range(expected.shape[1])] for w in sink.words],
                   dtype=np.int64).reshape(-1, expected.shape[1])
    n = min(len(got), beats)
    lanes = np.flatnonzero(lanes_valid[:n].ravel())
    score = Scoreboard(expected[:n].ravel()[lanes], lambda i: {"beat": int(lanes[i] // expected.shape[1]),
                                                                "lane": int(lanes[i] % expected.shape[1])})
    report = {"m": M, "n": N, "k": K, **score.compare(got[:n].ravel()[lanes]),
              "beats": len(sink.words), "expected_beats": int(beats)}
    first = min((src.accepted[0] for src in sources.values() if src.accepted), default=None)
    last = sink.accepted[-1] if sink.accepted else None
    report["cycles"] = last - first + 1 if first is not None and last is not None else None
    report["cycles_from_cmd"] = last - cmd.accepted[0] if last is not None and cmd.accepted else None
    report["stall_cycles"] = sum(1 for c in stalled if first is not None and last is not None and first <= c <= last)
    report["protocol_errors"] = [e for mon in monitors for e in mon.errors][:10]
    if len(sink.words) != beats:
        report["mismatches"] += abs(len(sink.words) - beats)
    write_report(report)
    assert len(sink.words) == beats, f"{len(sink.words)} result beats for {beats} expected"
    assert report["mismatches"] == 0, f"{report['mismatches']} mismatches: {report['first_mismatches']}"
    assert not report["protocol_errors"], report["protocol_errors"]
