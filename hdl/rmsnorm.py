"""RMSNorm unit: out[d] = w[d] * x[d] / sqrt(mean(x^2) + eps) over vectors of `length` words.

The hardware numerics of `models.ssm_numerics.HardwareOps.norm`: x (fp32 words) is rounded to
the operand format on entry; ss = x*x + ss in element order from +0 through one FMA; then
v = lo*ss + (hi*ss + eps) with 1/length as two bf16 words hi + lo; r = rsqrt(v) (the function
unit); and out = w * (x * r), two FMAs whose multiplicand is the fp32 word.

Three phases per vector, one element per cycle (the sum of squares is one sequential chain):
take the `length` elements (x and w into an on-chip buffer, the square sum accumulating), six
cycles for the norm (two registered FMAs and the rsqrt unit), then send the `length` results
from the buffer through two registered FMAs. The next vector's elements are taken while the
last results drain. A refused result stalls everything. Mamba-2's gated norm is this unit on
the scan unit's gated outputs, one vector per group.
"""

import ml_dtypes
import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from specmx.hdl.conv import round_to_operand
from specmx.hdl.fma import FMA, delay, delay_valid
from specmx.hdl.function_unit import FunctionUnit, Pipe
from specmx.models.config import FMAConfig
from specmx.models.perf.ssm import RMSNORM_NORM_CYCLES, RMSNORM_OUT_LATENCY

__all__ = ["RMSNormUnit", "rmsnorm_layout", "MAX_LENGTH"]

MAX_LENGTH = 8192
INGEST, NORM, EMIT = 0, 1, 2


def rmsnorm_layout():
    """The input beat: x (fp32 word) and its weight w (bf16 word)."""
    return data.StructLayout({"x": 32, "w": 16})


def _bf16_bits(value):
    return int(np.array(value, dtype=ml_dtypes.bfloat16).view(np.uint16))


class RMSNormUnit(wiring.Component):
    """RMSNorm over vectors of `length` fp32 words, one element per cycle.

    Parameters
    ----------
    fma : FMAConfig
        Arithmetic of the multiply-adds (bf16 operands, fp32 accumulator).
    length : int
        Elements per vector (d_model for a layer's norm; d_inner / groups for Mamba-2's gated
        norm).
    eps : float
        Added to the mean square (as an fp32 word).

    Members
    -------
    i : In(stream of rmsnorm_layout())
    o : Out(stream of fp32 words)     results in element order
    """

    def __init__(self, fma: FMAConfig, length: int, eps: float = 1e-5):
        self._MustUse__silence = True          # no "never used" warning when a check fails
        if not isinstance(fma, FMAConfig):
            raise TypeError(f"fma must be an FMAConfig, not {fma!r}")
        if fma.in_fmt != "bf16" or fma.acc_fmt != "fp32" or fma.internal:
            raise ValueError("fma: the RMSNorm unit takes bf16 operands and fp32 IEEE words; "
                             f"allowed: in_fmt bf16, acc_fmt fp32, policy round|flush, got {fma.name}")
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_LENGTH:
            raise ValueError(f"length: must be an integer in 1..{MAX_LENGTH}, got {length!r}")
        if not (isinstance(eps, (int, float)) and 0 <= eps < 1):
            raise ValueError(f"eps: must be a number in [0, 1), got {eps!r}")
        self.fma, self.length, self.eps = fma, length, float(eps)
        inv = 1.0 / length
        hi = _bf16_bits(inv)
        lo_value = inv - float(np.array(hi, np.uint16).view(ml_dtypes.bfloat16))
        self.inv_hi, self.inv_lo = hi, _bf16_bits(lo_value)
        self.eps_bits = int(np.array(np.float32(eps)).view(np.uint32))
        super().__init__({"i": In(stream.Signature(rmsnorm_layout())), "o": Out(stream.Signature(32))})
        self._MustUse__silence = False

    def _fma(self, m, en, name, a, b, c, stages):
        unit = FMA(self.fma, stages=stages, wide=True)
        m.submodules[name] = unit
        m.d.comb += [unit.a.eq(a), unit.b.eq(b), unit.c.eq(c), unit.en.eq(en), unit.valid.eq(1)]
        return unit.r

    def elaborate(self, platform):
        m = Module()
        n = self.length
        en, take = Signal(), Signal()
        phase = Signal(range(3))
        k = Signal(range(max(n, RMSNORM_NORM_CYCLES) + 1))
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en & (phase == INGEST)),
                     take.eq(self.i.valid & self.i.ready)]

        m.submodules.buffer = buf = Memory(shape=32, depth=max(n, 2), init=[])   # an address bit even at n=1
        rd, wr = buf.read_port(domain="comb"), buf.write_port()
        x = round_to_operand(m, self.i.payload.x, "x")
        m.d.comb += [rd.addr.eq(k), wr.addr.eq(k), wr.data.eq(Cat(x, self.i.payload.w)), wr.en.eq(take)]

        # sum of squares: one combinational FMA into the accumulator (the first element from +0)
        ss = Signal(32)
        square = FMA(self.fma, stages=0)
        m.submodules.square = square
        m.d.comb += [square.a.eq(x), square.b.eq(x), square.c.eq(Mux(k == 0, 0, ss)), square.valid.eq(1)]
        with m.If(take):
            m.d.sync += ss.eq(square.r)

        # norm: v = lo*ss + (hi*ss + eps), r = rsqrt(v); valid from the sixth NORM cycle on
        v = self._fma(m, en, "mean_hi", self.inv_hi, ss, self.eps_bits, 1)
        v = self._fma(m, en, "mean_lo", self.inv_lo, ss, v, 1)
        rsqrt = FunctionUnit("rsqrt")
        rsqrt._MustUse__silence = True              # only its datapath is embedded
        r = rsqrt.datapath(m, Pipe(m, en), v, "rsqrt_")
        assert 2 + rsqrt.latency == RMSNORM_NORM_CYCLES

        # results: w * (x * r) for the buffered elements in order
        xr = self._fma(m, en, "scale", rd.data[:16], r, 0, 1)
        out = self._fma(m, en, "weight", delay(m, en, rd.data[16:], 1, "w"), xr, 0, 1)
        m.d.comb += [self.o.payload.eq(out),
                     self.o.valid.eq(delay_valid(m, en, phase == EMIT, RMSNORM_OUT_LATENCY))]

        with m.If(en):
            with m.Switch(phase):
                with m.Case(INGEST):
                    with m.If(take):
                        m.d.sync += k.eq(Mux(k == n - 1, 0, k + 1))
                        with m.If(k == n - 1):
                            m.d.sync += phase.eq(NORM)
                with m.Case(NORM):
                    m.d.sync += k.eq(Mux(k == RMSNORM_NORM_CYCLES - 1, 0, k + 1))
                    with m.If(k == RMSNORM_NORM_CYCLES - 1):
                        m.d.sync += phase.eq(EMIT)
                with m.Case(EMIT):
                    m.d.sync += k.eq(Mux(k == n - 1, 0, k + 1))
                    with m.If(k == n - 1):
                        m.d.sync += phase.eq(INGEST)
        return m
