"""cocotb testbench for a unit with one input stream `i` and two output streams, `o` (one word
per beat) and `s` (a wide beat): the scan unit in tree mode, whose `s` carries every new state.

$SPECMX_VECTORS (npz) holds the input beats, the expected `o` beats and the expected `s` beats,
each as rows of 64-bit limbs (`beat_limbs`, `expected_o_limbs`, `expected_s_limbs`).
A `StreamSource` feeds the beats with random gaps ($SPECMX_IDLE), two `StreamSink`s take the
outputs with independent random back-pressure ($SPECMX_BACKPRESSURE), two `StreamMonitor`s check
the protocol, and two scoreboards compare every word and beat bit for bit. Cycles run from the
first input transfer to the last output transfer on either stream; `held` counts the cycles in
which either sink refused a word (a stalling pipeline loses one cycle however many refuse).
Writes $SPECMX_REPORT.
"""

import os

import cocotb
import numpy as np

from specmx.sim.streams import TB, StreamMonitor, StreamSink, StreamSource, pack_lanes, write_report


def compare(got, expected, keep=5):
    """Mismatch count (a missing or extra beat counts as one) and the first few, bit for bit."""
    bad = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    return len(bad) + abs(len(got) - len(expected)), [
        {"beat": i, "expected": hex(expected[i]), "got": hex(got[i])} for i in bad[:keep]]


@cocotb.test()
async def unit_matches_golden(dut):
    v = np.load(os.environ["SPECMX_VECTORS"])
    expected, expected_s = pack_lanes(v["expected_o_limbs"], 64), pack_lanes(v["expected_s_limbs"], 64)
    idle, backpressure = float(os.environ.get("SPECMX_IDLE", "0")), float(os.environ.get("SPECMX_BACKPRESSURE", "0"))
    tb = TB(dut)
    source = StreamSource(tb, tb.stream("i"), pack_lanes(v["beat_limbs"], 64), idle)
    sink_o, sink_s = StreamSink(tb, tb.stream("o"), backpressure), StreamSink(tb, tb.stream("s"), backpressure)
    monitors = [StreamMonitor(tb, tb.stream(name), name) for name in ("o", "s")]
    await tb.start()
    limit = 20 * len(source.words) + 1000
    while (len(sink_o.words) < len(expected) or len(sink_s.words) < len(expected_s)) and tb.cycle < limit:
        await tb.cycles(1)
    await tb.cycles(8)                              # an extra word after the last one shows up here
    first_in = source.accepted[0] if source.accepted else None
    last_out = max((s.accepted[-1] for s in (sink_o, sink_s) if s.accepted), default=None)
    mismatches, first = compare(sink_o.words, expected)
    state_mismatches, first_state = compare(sink_s.words, expected_s)
    report = {"results": len(sink_o.words), "expected": len(expected), "mismatches": mismatches,
              "first_mismatches": first, "state_beats": len(sink_s.words), "state_expected": len(expected_s),
              "state_mismatches": state_mismatches, "first_state_mismatches": first_state,
              "beats": len(source.words),
              "cycles": None if first_in is None or last_out is None else last_out - first_in + 1,
              "starved": source.starved, "held": len(set(sink_o.held_cycles) | set(sink_s.held_cycles)),
              "protocol_errors": (monitors[0].errors + monitors[1].errors)[:10]}
    write_report(report)
    assert report["mismatches"] == 0, f"{report['mismatches']} mismatches: {report['first_mismatches']}"
    assert report["state_mismatches"] == 0, f"{report['state_mismatches']} state mismatches"
    assert not report["protocol_errors"], report["protocol_errors"]
