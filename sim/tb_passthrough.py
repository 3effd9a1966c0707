"""cocotb testbench for any component with one input stream `i` and one output stream `o`
that passes words through unchanged: source with random gaps -> DUT -> sink with random
back-pressure, a protocol monitor on both streams and a scoreboard. It tests the testbench parts
of `sim.streams` themselves (tests/test_streams.py), on a correct and a deliberately broken DUT.
"""

import os

import cocotb
import numpy as np

from specmx.sim.streams import TB, Scoreboard, StreamMonitor, StreamSink, StreamSource, write_report


@cocotb.test()
async def passthrough(dut):
    words = np.load(os.environ["SPECMX_VECTORS"])["words"]
    tb = TB(dut)
    i, o = tb.stream("i"), tb.stream("o")
    monitors = [StreamMonitor(tb, i, "i"), StreamMonitor(tb, o, "o")]
    sink = StreamSink(tb, o, float(os.environ.get("SPECMX_BACKPRESSURE", "0")))
    await tb.start()
    source = StreamSource(tb, i, words, float(os.environ.get("SPECMX_IDLE", "0")))
    while not source.done and tb.cycle < 20 * len(words) + 100:
        await tb.cycles(1)
    await tb.cycles(20)
    report = {**Scoreboard(words).compare(sink.words), "held": sink.held, "gaps": source.gaps,
              "protocol_errors": [e for m in monitors for e in m.errors][:10]}
    write_report(report)
    assert report["mismatches"] == 0 and not report["protocol_errors"], report
