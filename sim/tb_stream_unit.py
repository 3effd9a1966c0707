"""cocotb testbench for single-stream units (`i` in, `o` out), built from `sim.streams`.

Words come from $SPECMX_VECTORS (npz: inputs, expected), $SPECMX_LANES words of
$SPECMX_WORD_BITS bits per beat (lane 0 in the low bits), or as whole input beats the host
packed (`beat_limbs`, 64-bit limbs) when the input is a structure; results are always
$SPECMX_LANES words of $SPECMX_WORD_BITS bits per beat (as many beats as the expected words fill). A `StreamHarness` feeds them with
random gaps (probability $SPECMX_IDLE), takes results with random back-pressure (probability
$SPECMX_BACKPRESSURE) and checks that a result offered and not taken stays offered unchanged; a
scoreboard compares every result bit for bit. The report gives the cycles from the first input
transfer to the last result transfer, the cycles the source starved the unit and the cycles the
sink held a result back (what the cycle model accounts). Writes $SPECMX_REPORT.
"""

import os

import cocotb
import numpy as np

from specmx.sim.streams import TB, Scoreboard, StreamHarness, pack_lanes, write_report


@cocotb.test()
async def unit_matches_golden(dut):
    v = np.load(os.environ["SPECMX_VECTORS"])
    inputs, expected = v["inputs"], v["expected"]
    lanes, bits = int(os.environ.get("SPECMX_LANES", "1")), int(os.environ.get("SPECMX_WORD_BITS", "32"))
    if "beat_limbs" in v:       # beats the host packed itself (64-bit limbs, low limb first)
        beats = pack_lanes(v["beat_limbs"], 64)
    else:
        beats = pack_lanes(inputs.reshape(-1, lanes), bits)
    tb = TB(dut)
    harness = StreamHarness(tb, tb.stream("i"), tb.stream("o"), beats, float(os.environ.get("SPECMX_IDLE", "0")),
                            float(os.environ.get("SPECMX_BACKPRESSURE", "0")))
    await tb.start()
    await harness.run(len(expected) // lanes, 20 * len(beats) + 1000)
    mask = (1 << bits) - 1
    words = [(beat >> (bits * i)) & mask for beat in harness.words for i in range(lanes)]
    score = Scoreboard(expected, lambda i: {"index": int(i), "input": hex(int(inputs[i]))})
    report = {**score.compare(words), "vectors": int(len(inputs)), "beats": len(beats),
              "cycles": harness.cycles, "starved": harness.starved, "held": harness.held,
              "protocol_errors": harness.errors[:10]}
    write_report(report)
    assert report["results"] == report["expected"], f"{report['results']} results for {report['expected']} expected"
    assert report["mismatches"] == 0, f"{report['mismatches']} mismatches: {report['first_mismatches']}"
    assert not report["protocol_errors"], report["protocol_errors"]
