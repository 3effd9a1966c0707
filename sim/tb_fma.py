"""cocotb testbench for hdl.fma.FMA: one operand set per cycle, every result compared bit for
bit with the golden model.

Inputs come from $SPECMX_VECTORS (npz with a, b, c, expected; the expected words are computed
by the host with `models.fma.fma`, and may be deliberately corrupted for the negative control).
Optional $SPECMX_STALL (probability of a cycle with en=0) and $SPECMX_BUBBLE (probability of an
idle input cycle) exercise the clock enable and gaps. Writes a JSON report to $SPECMX_REPORT.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer


class FMADriver:
    """Feeds operand sets into the FMA ports and collects results in order."""

    def __init__(self, dut, stages, rng, stall, bubble):
        self.dut, self.stages, self.rng = dut, stages, rng
        self.stall, self.bubble = stall, bubble
        self.results = []

    async def run_comb(self, a, b, c):
        dut = self.dut
        for x, y, z in zip(a, b, c):
            dut.a.value, dut.b.value, dut.c.value, dut.valid.value = int(x), int(y), int(z), 1
            await Timer(1, unit="ns")
            self.results.append(int(dut.r.value))

    async def run_pipelined(self, a, b, c):
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value, dut.valid.value, dut.en.value = 1, 0, 1
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        i, n, cycles = 0, len(a), 0
        limit = 4 * n + 100 + self.stages
        while len(self.results) < n and cycles < limit:
            en = 0 if self.stall and self.rng.random() < self.stall else 1
            send = i < n and not (self.bubble and self.rng.random() < self.bubble)
            dut.en.value = en
            if send:
                dut.a.value, dut.b.value, dut.c.value = int(a[i]), int(b[i]), int(c[i])
            dut.valid.value = int(send)
            await RisingEdge(dut.clk)
            await ReadOnly()
            if en and send:
                i += 1
            if en and int(dut.r_valid.value):
                self.results.append(int(dut.r.value))
            await FallingEdge(dut.clk)
            cycles += 1
        return cycles


@cocotb.test()
async def fma_matches_golden(dut):
    data = np.load(os.environ["SPECMX_VECTORS"])
    stages = int(os.environ["SPECMX_STAGES"])
    a, b, c, expected = data["a"], data["b"], data["c"], data["expected"]
    rng = np.random.default_rng(int(os.environ.get("SPECMX_SEED", "0")))
    drv = FMADriver(dut, stages, rng, float(os.environ.get("SPECMX_STALL", "0")),
                    float(os.environ.get("SPECMX_BUBBLE", "0")))
    if stages == 0:
        await drv.run_comb(a, b, c)
        cycles = len(a)
    else:
        cycles = await drv.run_pipelined(a, b, c)
    got = np.array(drv.results, dtype=np.int64)
    n = min(len(got), len(expected))
    bad = np.nonzero(got[:n] != expected[:n])[0]
    mismatches = int(bad.size) + (len(expected) - n)
    report = {"vectors": int(len(expected)), "results": int(len(got)), "mismatches": mismatches,
              "cycles": int(cycles),
              "first_mismatches": [{"index": int(k), "a": hex(a[k]), "b": hex(b[k]), "c": hex(c[k]),
                                    "expected": hex(expected[k]), "got": hex(got[k])}
                                   for k in bad[:5]]}
    with open(os.environ["SPECMX_REPORT"], "w") as f:
        json.dump(report, f)
    assert len(got) == len(expected), f"{len(got)} results for {len(expected)} vectors"
    assert mismatches == 0, f"{mismatches} mismatches, first: {report['first_mismatches']}"
