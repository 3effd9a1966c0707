"""The testbench parts (sim/streams.py) on a correct stream register and on broken ones: the
monitor and scoreboard pass the first and catch the others (their negative controls)."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from specmx.sim.runner import build_root, run_cocotb


class Register(wiring.Component):
    """A one-word stream buffer. `bug`: None (correct), "drop" (offers each word for one cycle
    only, whether taken or not), or "flip" (flips the payload's low bit while it waits)."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def __init__(self, bug=None):
        self.bug = bug
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        m.d.comb += [self.o.valid.eq(full), self.i.ready.eq(~full | self.o.ready)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.payload.eq(self.i.payload), full.eq(1)]
        with m.Elif(self.o.ready | (self.bug == "drop")):
            m.d.sync += full.eq(0)
        if self.bug == "flip":
            with m.If(full & ~self.o.ready):
                m.d.sync += self.o.payload.eq(self.o.payload ^ 1)
        return m


def _run(bug, tmp_path, backpressure=0.4, idle=0.3, waves=None):
    words = np.random.default_rng(1).integers(0, 256, 200)
    path = tmp_path / "words.npz"
    np.savez(path, words=words)
    result = run_cocotb(Register(bug), "passthrough", "specmx.sim.tb_passthrough",
                        {"SPECMX_VECTORS": path, "SPECMX_BACKPRESSURE": backpressure, "SPECMX_IDLE": idle,
                         "SPECMX_SEED": 3}, waves=waves)
    return result


def test_correct_register_passes_with_gaps_and_backpressure(tmp_path):
    """... and the run records a waveform when asked (the build with tracing is its own)."""
    result = _run(None, tmp_path, waves=True)
    r = result.report
    assert result.passed and r["mismatches"] == 0 and r["results"] == 200 and not r["protocol_errors"]
    assert r["held"] > 20 and r["gaps"] > 20          # back-pressure and gaps really happened
    assert result.waves is not None and result.waves.stat().st_size > 1000
    assert str(result.waves).startswith(str(build_root()))


@pytest.mark.parametrize("bug,error", [("drop", "o: valid dropped"), ("flip", "o: payload changed")])
def test_monitor_and_scoreboard_catch_a_broken_register(bug, error, tmp_path):
    result = _run(bug, tmp_path)
    r = result.report
    assert not result.passed
    assert any(e.startswith(error) for e in r["protocol_errors"]), r["protocol_errors"]
    assert r["mismatches"] > 0
