"""cocotb testbench for hdl.gemm.GEMMEngine, built from `sim.streams`.

Sends one command; A, B and C0 stream in from sources that leave random gaps between words
(probability $SPECMX_IDLE); results go to a sink with random back-pressure (probability
$SPECMX_BACKPRESSURE); a monitor checks the valid/ready protocol on every stream and a
scoreboard compares each result word with the expected words from $SPECMX_VECTORS (npz: a, b,
c0, expected, m, n, k). Cycles run from the first operand accepted to the last result
delivered; the report also gives each source's gaps and the cycles the sink held back a valid
result, which the cycle model accounts for. Writes a JSON report to $SPECMX_REPORT.
"""

import os

import cocotb
import numpy as np

from specmx.sim.streams import TB, Scoreboard, StreamMonitor, StreamSink, StreamSource, write_report


@cocotb.test()
async def gemm_matches_golden(dut):
    v = np.load(os.environ["SPECMX_VECTORS"])
    M, N, K = int(v["m"]), int(v["n"]), int(v["k"])
    widths = [int(x) for x in os.environ["SPECMX_CMD_WIDTHS"].split(",")]
    idle = float(os.environ.get("SPECMX_IDLE", "0"))
    tb = TB(dut)
    streams = {name: tb.stream(name) for name in ("cmd", "a_in", "b_in", "c_in", "r_out")}
    monitors = [StreamMonitor(tb, s, name) for name, s in streams.items()]
    sink = StreamSink(tb, streams["r_out"], float(os.environ.get("SPECMX_BACKPRESSURE", "0")))
    await tb.start()
    StreamSource(tb, streams["cmd"], [M | (N << widths[0]) | (K << (widths[0] + widths[1]))])
    sources = {"a": StreamSource(tb, streams["a_in"], v["a"].ravel(), idle),
               "b": StreamSource(tb, streams["b_in"], v["b"].ravel(), idle),
               "c0": StreamSource(tb, streams["c_in"], v["c0"].ravel(), idle)}
    limit = 20 * (M * N * K + M * K + K * N + M * N) + 10000
    while len(sink.words) < M * N and tb.cycle < limit:
        await tb.cycles(1)
    await tb.cycles(4)        # an extra result after the last one would show up here
    first = min(src.accepted[0] for src in sources.values() if src.accepted) \
        if any(src.accepted for src in sources.values()) else None
    score = Scoreboard(v["expected"], lambda i: {"index": int(i), "row": int(i // N), "col": int(i % N)})
    report = {"m": M, "n": N, "k": K, **score.compare(sink.words),
              "cycles": (sink.accepted[-1] - first + 1) if first is not None and sink.accepted else None,
              "backpressure_cycles": sink.held, "source_gaps": {k: s.gaps for k, s in sources.items()},
              "protocol_errors": [e for mon in monitors for e in mon.errors][:10]}
    write_report(report)
    assert report["results"] == report["expected"], f"{report['results']} results for {report['expected']} expected"
    assert report["mismatches"] == 0, f"{report['mismatches']} mismatches: {report['first_mismatches']}"
    assert not report["protocol_errors"], report["protocol_errors"]
