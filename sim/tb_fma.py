"""cocotb testbench for hdl.fma.FMA, built from `sim.streams`: one operand set per cycle,
every result compared bit for bit with the golden model.

Inputs come from $SPECMX_VECTORS (npz with a, b, c, expected; the expected words are computed
by the host with `models.fma.fma`, and may be deliberately corrupted for the negative control).
The FMA is a clock-enabled pipeline, not a stream: $SPECMX_BUBBLE is the probability of an idle
input cycle (valid low) and $SPECMX_STALL of a cycle with the clock enable low. The pipeline
must deliver exactly one result per valid operand set, in order. Writes a JSON report to
$SPECMX_REPORT.
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, Timer

from specmx.sim.streams import TB, Scoreboard, write_report


async def run_combinational(tb, a, b, c):
    """0 stages: the result is visible after the inputs settle."""
    results = []
    for x, y, z in zip(a, b, c):
        tb.port("a").value, tb.port("b").value, tb.port("c").value = int(x), int(y), int(z)
        tb.port("valid").value = 1
        await Timer(1, unit="ns")
        results.append(int(tb.port("r").value))
    return results, len(a)


async def run_pipelined(tb, a, b, c, stall, bubble, stages):
    """Drive operand sets with random bubbles and stalls; collect r whenever r_valid and en."""
    ports = {name: tb.port(name) for name in ("a", "b", "c", "valid", "en", "r", "r_valid")}
    ports["valid"].value, ports["en"].value = 0, 1
    await tb.start()
    results, i, n, cycles = [], 0, len(a), 0
    limit = 4 * n + 100 + stages
    while len(results) < n and cycles < limit:
        await FallingEdge(tb.dut.clk)
        en = 0 if stall and tb.rng.random() < stall else 1
        send = i < n and not (bubble and tb.rng.random() < bubble)
        ports["en"].value = en
        if send:
            ports["a"].value, ports["b"].value, ports["c"].value = int(a[i]), int(b[i]), int(c[i])
        ports["valid"].value = int(send)
        await ReadOnly()
        if en and int(ports["r_valid"].value):
            results.append(int(ports["r"].value))
        if en and send:
            i += 1
        cycles += 1
    return results, cycles


@cocotb.test()
async def fma_matches_golden(dut):
    data = np.load(os.environ["SPECMX_VECTORS"])
    stages = int(os.environ["SPECMX_STAGES"])
    a, b, c, expected = data["a"], data["b"], data["c"], data["expected"]
    tb = TB(dut)
    if stages == 0:
        results, cycles = await run_combinational(tb, a, b, c)
    else:
        results, cycles = await run_pipelined(tb, a, b, c, float(os.environ.get("SPECMX_STALL", "0")),
                                              float(os.environ.get("SPECMX_BUBBLE", "0")), stages)
    score = Scoreboard(expected, lambda k: {"index": int(k), "a": hex(a[k]), "b": hex(b[k]), "c": hex(c[k])})
    report = {"vectors": int(len(expected)), "cycles": int(cycles), **score.compare(results)}
    write_report(report)
    assert report["results"] == report["vectors"], f"{report['results']} results for {len(expected)} vectors"
    assert report["mismatches"] == 0, f"{report['mismatches']} mismatches, first: {report['first_mismatches']}"
