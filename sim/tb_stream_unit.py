"""cocotb testbench for single-stream units (`i` in, `o` out), built from `sim.streams`.

Words come from $SPECMX_VECTORS (npz: inputs, expected), $SPECMX_LANES words of
$SPECMX_WORD_BITS bits per beat (lane 0 in the low bits), through a source that leaves random
gaps (probability $SPECMX_IDLE); results go to a sink with random back-pressure (probability
$SPECMX_BACKPRESSURE); a monitor checks the valid/ready protocol on both streams, and a
scoreboard compares every result bit for bit. The report gives the cycles from the first input
transfer to the last result transfer, the cycles the source starved the unit and the cycles the
sink held a result back (what the cycle model accounts). Writes $SPECMX_REPORT.
"""

import os

import cocotb
import numpy as np

from specmx.sim.streams import TB, Scoreboard, StreamMonitor, StreamSink, StreamSource, write_report


@cocotb.test()
async def unit_matches_golden(dut):
    v = np.load(os.environ["SPECMX_VECTORS"])
    inputs, expected = v["inputs"], v["expected"]
    lanes, bits = int(os.environ.get("SPECMX_LANES", "1")), int(os.environ.get("SPECMX_WORD_BITS", "32"))
    beats = [sum(int(w) << (bits * i) for i, w in enumerate(row)) for row in inputs.reshape(-1, lanes)]
    tb = TB(dut)
    streams = {name: tb.stream(name) for name in ("i", "o")}
    monitors = [StreamMonitor(tb, s, name) for name, s in streams.items()]
    sink = StreamSink(tb, streams["o"], float(os.environ.get("SPECMX_BACKPRESSURE", "0")))
    await tb.start()
    source = StreamSource(tb, streams["i"], beats, float(os.environ.get("SPECMX_IDLE", "0")))
    limit = 20 * len(beats) + 1000
    while len(sink.words) < len(beats) and tb.cycle < limit:
        await tb.cycles(1)
    await tb.cycles(8)        # an extra result after the last one would show up here
    mask = (1 << bits) - 1
    words = [(beat >> (bits * i)) & mask for beat in sink.words for i in range(lanes)]
    score = Scoreboard(expected, lambda i: {"index": int(i), "input": hex(int(inputs[i]))})
    report = {**score.compare(words), "vectors": int(len(inputs)), "beats": len(beats),
              "cycles": (sink.accepted[-1] - source.accepted[0] + 1) if sink.accepted else None,
              "starved": source.starved, "held": sink.held,
              "protocol_errors": [e for mon in monitors for e in mon.errors][:10]}
    write_report(report)
    assert report["results"] == report["expected"], f"{report['results']} results for {report['expected']} expected"
    assert report["mismatches"] == 0, f"{report['mismatches']} mismatches: {report['first_mismatches']}"
    assert not report["protocol_errors"], report["protocol_errors"]
