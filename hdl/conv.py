"""Depthwise causal conv1d unit with bias and SiLU (the Mamba mixer's short convolution).

Per channel c and token t: y = silu(b[c] + sum_k w[c, k] * x[t - K + 1 + k]), in the hardware
numerics of `models.ssm_numerics.HardwareOps.conv_step`: the input word (fp32) is rounded to
the operand format on entry, the bias enters the accumulator as an fp32 word, the K
multiply-adds run oldest tap first through specmx's FMA, and the SiLU is the function unit.

Stream protocol: one beat per `lanes` channels, channel groups in order 0..G-1 (G = d_inner /
lanes) for each token, then the next token. A beat carries, per lane, the input word, the K
weights and the bias (streamed from the weight buffer, as a decode step reads a layer's
weights), plus one `clear` bit that starts a new sequence (the window reads as zeros). The
window of the last K-1 inputs of every channel lives in an on-chip memory (G words of
lanes * (K-1) operands), read and written back in the cycle the beat is taken.

Pipeline: K FMA stages (one registered FMA each, operands delayed alongside) and the SiLU
unit's stages; latency K + 5, one beat per cycle, a refused result stalls everything.

Tree mode (`slots` > 1), for speculative tree verification: the window memory holds `slots`
windows per channel group; each beat reads slot `src` (its parent's window) and writes slot
`dst`. A `load` token writes the beats' `win` operands (a starting window from memory) and
computes nothing; every other beat also sends its new window (lanes x (K-1) bf16 operands,
oldest first) on the state stream `s`, one cycle after it is taken.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from specmx.hdl.fma import FMA, delay_valid
from specmx.hdl.function_unit import FUNCTION_LATENCY, FunctionUnit, Pipe
from specmx.hdl.lockstep import lockstep_enable
from specmx.models.config import SSMConfig

__all__ = ["ConvUnit", "round_to_operand", "conv_layout"]


def round_to_operand(m, x, name):
    """fp32 word -> bf16 word, round to nearest even (NaN -> canonical quiet NaN): the rule for a
    value that feeds a multiplier."""
    rounded = Signal(33, name=f"{name}_rnd")
    m.d.comb += rounded.eq(x + 0x7FFF + x[16])
    nan = (x[23:31] == 0xFF) & x[:23].any()
    out = Signal(16, name=f"{name}_bf16")
    m.d.comb += out.eq(rounded[16:32])
    with m.If(nan):
        m.d.comb += out.eq(0x7FC0)
    return out


def conv_layout(ssm: SSMConfig, slots=1):
    """The input beat: per lane {x: fp32, w: K bf16, bias: bf16}, then the clear bit; in tree
    mode (slots > 1) also the slots read and written, the load flag and the window of a load."""
    lane = data.StructLayout({"x": 32, "w": data.ArrayLayout(16, ssm.kernel), "bias": 16})
    tree = {"src": range(slots), "dst": range(slots), "load": 1,
            "win": max(1, ssm.lanes * (ssm.kernel - 1) * 16)} if slots > 1 else {}
    return data.StructLayout({"lanes": data.ArrayLayout(lane, ssm.lanes), "clear": 1, **tree})


class ConvUnit(wiring.Component):
    """Depthwise conv1d + bias + SiLU over `ssm.lanes` channels per cycle.

    Parameters
    ----------
    ssm : SSMConfig
        d_inner (a multiple of lanes), kernel K, lanes, and the FMA arithmetic (bf16 operands).

    slots : int
        Windows per channel group: 1 for one sequence, more for tree mode.

    Members
    -------
    i : In(stream of conv_layout(ssm, slots))
    o : Out(stream of lanes x fp32 words)
    s : Out(stream of lanes x (K-1) bf16 words)      tree mode only: each beat's new window
    """

    def __init__(self, ssm: SSMConfig, slots=1):
        self._MustUse__silence = True          # no "never used" warning when a check fails
        if not isinstance(ssm, SSMConfig):
            raise TypeError(f"ssm must be an SSMConfig, not {ssm!r}")
        if ssm.d_inner % ssm.lanes:
            raise ValueError(f"lanes: must divide d_inner={ssm.d_inner}, got {ssm.lanes}")
        if ssm.fma.in_fmt != "bf16":
            raise ValueError(f"fma.in_fmt: the conv unit takes bf16 operands; allowed: bf16, got {ssm.fma.in_fmt!r}")
        if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 4096:
            raise ValueError(f"slots: must be an integer in 1..4096, got {slots!r}")
        self.ssm, self.slots = ssm, slots
        self.groups = ssm.d_inner // ssm.lanes
        self.latency = ssm.kernel + FUNCTION_LATENCY["silu"]
        members = {"i": In(stream.Signature(conv_layout(ssm, slots))), "o": Out(stream.Signature(32 * ssm.lanes))}
        if slots > 1:
            members["s"] = Out(stream.Signature(max(1, ssm.lanes * (ssm.kernel - 1) * 16)))
        super().__init__(members)
        self._MustUse__silence = False

    def elaborate(self, platform):
        m = Module()
        ssm, K, L = self.ssm, self.ssm.kernel, self.ssm.lanes
        tree = self.slots > 1
        take = Signal()
        o_valid, s_valid = Signal(), Signal()        # offered by the pipeline, sent or not
        en = lockstep_enable(m, [(self.o, o_valid)] + ([(self.s, s_valid)] if tree else []))
        m.d.comb += [self.i.ready.eq(en), take.eq(self.i.valid & en)]
        beat = self.i.payload
        load = beat.load if tree else Const(0)

        # channel-group counter and the window memory
        group = Signal(range(max(self.groups, 2)))
        with m.If(take):
            m.d.sync += group.eq(Mux(group == self.groups - 1, 0, group + 1))
        width = L * (K - 1) * 16
        m.submodules.window = mem = Memory(shape=max(width, 1), depth=self.groups * self.slots, init=[])
        rd = mem.read_port(domain="comb")
        wr = mem.write_port()
        src, dst = (beat.src, beat.dst) if tree else (0, 0)
        m.d.comb += [rd.addr.eq(src * self.groups + group), wr.addr.eq(dst * self.groups + group), wr.en.eq(take)]

        results, new_windows = [], []
        silu = FunctionUnit("silu")
        silu._MustUse__silence = True        # only its datapath is embedded, never elaborated
        for lane in range(L):
            p = beat.lanes[lane]
            x = round_to_operand(m, p.x, f"l{lane}_x")
            old = rd.data[lane * (K - 1) * 16:(lane + 1) * (K - 1) * 16] if K > 1 else Const(0, 0)
            taps = [Mux(beat.clear, 0, old[k * 16:(k + 1) * 16]) for k in range(K - 1)] + [x]
            new_windows.append(Cat(*taps[1:]))
            acc = Cat(Const(0, 16), p.bias)                     # bf16 -> fp32 is exact
            operands = [(p.w[k], taps[k]) for k in range(K)]
            for k in range(K):
                fma = FMA(ssm.fma, stages=1)
                m.submodules[f"l{lane}_fma{k}"] = fma
                a, b = operands[k]
                m.d.comb += [fma.a.eq(a), fma.b.eq(b), fma.c.eq(acc), fma.en.eq(en), fma.valid.eq(1)]
                acc = fma.r
                delayed = []                                    # later taps travel one stage on
                for a2, b2 in operands[k + 1:]:
                    ra, rb = Signal(16, name=f"l{lane}_a{k}"), Signal(16, name=f"l{lane}_b{k}")
                    with m.If(en):
                        m.d.sync += [ra.eq(a2), rb.eq(b2)]
                    delayed.append((ra, rb))
                operands = operands[:k + 1] + delayed
            results.append(silu.datapath(m, Pipe(m, en), acc, f"l{lane}_"))
        new_window = Cat(*new_windows)
        m.d.comb += wr.data.eq(Mux(load, beat.win, new_window) if tree else new_window)
        if tree:
            sent_window = Signal(len(self.s.payload))
            with m.If(en):
                m.d.sync += sent_window.eq(new_window)
            m.d.comb += [s_valid.eq(delay_valid(m, en, self.i.valid & ~load, 1)), self.s.payload.eq(sent_window)]

        m.d.comb += [o_valid.eq(delay_valid(m, en, self.i.valid & ~load, self.latency)),
                     self.o.payload.eq(Cat(*results))]
        return m
