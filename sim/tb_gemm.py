"""cocotb testbench for hdl.gemm.GEMMEngine.

Sends one command, streams A, B, C0 (sources always valid), collects the results with a
random `ready` (back-pressure probability $SPECMX_BACKPRESSURE), and compares every result word
with the expected words from $SPECMX_VECTORS (npz: a, b, c0, expected, m, n, k). Counts the
cycles from the first operand accepted to the last result delivered, and the cycles the sink
held back a valid result. Writes a JSON report to $SPECMX_REPORT.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


class StreamSource:
    """Drives a valid/ready stream from a list of words, always valid."""

    def __init__(self, dut, name, words):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.words, self.index = [int(w) for w in words], 0

    def drive(self):
        if self.index < len(self.words):
            self.payload.value = self.words[self.index]
            self.valid.value = 1
        else:
            self.valid.value = 0

    def sample(self):
        """Before the edge (read-only phase): True if a word is accepted at this edge."""
        if int(self.valid.value) and int(self.ready.value):
            self.index += 1
            return True
        return False


@cocotb.test()
async def gemm_matches_golden(dut):
    v = np.load(os.environ["SPECMX_VECTORS"])
    M, N, K = int(v["m"]), int(v["n"]), int(v["k"])
    widths = [int(x) for x in os.environ["SPECMX_CMD_WIDTHS"].split(",")]
    rng = np.random.default_rng(int(os.environ.get("SPECMX_SEED", "0")))
    backpressure = float(os.environ.get("SPECMX_BACKPRESSURE", "0"))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for sig in ("cmd__valid", "a_in__valid", "b_in__valid", "c_in__valid", "r_out__ready"):
        getattr(dut, sig).value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    cmd = StreamSource(dut, "cmd", [M | (N << widths[0]) | (K << (widths[0] + widths[1]))])
    sources = [StreamSource(dut, "a_in", v["a"].ravel()), StreamSource(dut, "b_in", v["b"].ravel()),
               StreamSource(dut, "c_in", v["c0"].ravel())]
    results, cycle, first, last, held = [], 0, None, None, 0
    limit = 20 * (M * N * K + M * K + K * N + M * N) + 10000
    while len(results) < M * N and cycle < limit:
        cmd.drive()
        for src in sources:
            src.drive()
        ready = int(rng.random() >= backpressure)
        dut.r_out__ready.value = ready
        # Handshakes are decided by the values just before the clock edge.
        await ReadOnly()
        cmd.sample()
        if any([src.sample() for src in sources]) and first is None:
            first = cycle
        if int(dut.r_out__valid.value):
            if ready:
                results.append(int(dut.r_out__payload.value))
                last = cycle
            else:
                held += 1
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycle += 1
    expected = v["expected"].ravel()
    got = np.array(results, dtype=np.int64)
    n = min(got.size, expected.size)
    bad = np.flatnonzero(got[:n] != expected[:n])
    report = {"m": M, "n": N, "k": K, "results": int(got.size), "expected": int(expected.size),
              "mismatches": int(bad.size) + int(expected.size - n),
              "cycles": (last - first + 1) if (first is not None and last is not None) else None,
              "backpressure_cycles": held,
              "first_mismatches": [{"index": int(i), "row": int(i // N), "col": int(i % N),
                                    "expected": hex(expected[i]), "got": hex(got[i])} for i in bad[:5]]}
    with open(os.environ["SPECMX_REPORT"], "w") as f:
        json.dump(report, f)
    assert got.size == expected.size, f"{got.size} results for {expected.size} expected"
    assert report["mismatches"] == 0, f"{report['mismatches']} mismatches: {report['first_mismatches']}"
