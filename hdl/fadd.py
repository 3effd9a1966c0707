"""fp32 adds in hardware: a + b in IEEE binary32 with one round-to-nearest-even (subnormals kept,
overflow to inf; a NaN result is the canonical quiet NaN 0x7FC00000), and a stream unit that
chains them.

The Mamba engine's fp32 adds (`hdl.mamba_engine`): the residual and bias adds on the matrix
engine's result stream (x + a1 + a2 per word, two adders: Mamba-2's out_proj adds its bias, then
the residual) and dt's bias before the softplus unit (one adder). Golden: numpy float32
addition, one add at a time (`models.function_units.fadd_chain`).

The adder aligns the smaller operand to the larger one's exponent with guard, round and sticky
bits, adds or subtracts the 27-bit significands, normalizes (a carry: one place right; a
cancellation: left by the leading zeros, down to the subnormal range) and rounds to nearest
even on the packed word, so a rounding carry moves into the exponent.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from specmx.hdl.arith import leading_zeros
from specmx.models.function_tables import CANONICAL_NAN

__all__ = ["fp32_add", "FAddChain"]


def fp32_add(m, a, b, name):
    """The fp32 word a + b (combinational)."""
    swap = b[:31] > a[:31]                               # order by magnitude
    big, small = Mux(swap, b, a), Mux(swap, a, b)
    e_big, e_small = big[23:31], small[23:31]
    x_big, x_small = Mux(e_big.any(), e_big, 1), Mux(e_small.any(), e_small, 1)
    m_big = Cat(Const(0, 3), big[:23], e_big.any())       # significand, then guard, round, sticky
    m_small = Cat(Const(0, 3), small[:23], e_small.any())
    d = (x_big - x_small)[:8]
    shift = Mux(d > 30, 30, d)
    wide = Cat(Const(0, 30), m_small) >> shift           # m_small's low 3 bits are zero: nothing falls off
    aligned = Cat(wide[30] | wide[:30].any(), wide[31:57])    # sticky into the lowest bit
    sub = big[31] ^ small[31]
    total = Signal(28, name=f"{name}_sum")
    m.d.comb += total.eq(Mux(sub, m_big - aligned, m_big + aligned))

    # normalize: a carry shifts right by one (keeping the sticky); a cancellation shifts left by
    # the leading zeros, but not below the smallest exponent (a subnormal result)
    lz = leading_zeros(total[:27])
    room = (x_big - 1)[:8]
    left = Mux(lz > room, room, lz)[:5]
    norm = Signal(27, name=f"{name}_norm")
    exp = Signal(9, name=f"{name}_e")
    with m.If(total[27]):
        m.d.comb += [norm.eq(Cat(total[0] | total[1], total[2:28])), exp.eq(x_big + 1)]
    with m.Else():
        m.d.comb += [norm.eq(total[:27] << left), exp.eq(x_big - left)]

    # round to nearest even on the packed word: a carry out of the fraction bumps the exponent
    # (a subnormal becoming normal, the largest finite becoming inf)
    up = norm[2] & (norm[1] | norm[0] | norm[3])
    field = Mux(norm[26], exp[:8], 0)
    magnitude = (Cat(norm[3:26], field) + up)[:31]
    overflow = exp >= 255
    sign = Mux(sub & ~total.any(), 0, big[31])           # x - x = +0
    finite = Cat(Mux(overflow, 0x7F800000, magnitude), sign)

    nan_a = a[23:31].all() & a[:23].any()
    nan_b = b[23:31].all() & b[:23].any()
    inf_a = a[23:31].all() & ~a[:23].any()
    inf_b = b[23:31].all() & ~b[:23].any()
    nan = nan_a | nan_b | (inf_a & inf_b & (a[31] != b[31]))
    inf = Cat(Const(0, 23), Const(0xFF, 8), Mux(inf_a, a[31], b[31]))
    return Mux(nan, CANONICAL_NAN, Mux(inf_a | inf_b, inf, finite))


class FAddChain(wiring.Component):
    """`lanes` words per beat, each x + a_1 + ... + a_adders (in that order, each add rounded),
    one registered adder per addend: latency `adders` cycles; a result the sink does not take
    stalls the chain (clock enable).

    Members
    -------
    i : In(stream)    per lane (low lane first) x, a_1, ..., a_adders, 32 bits each, x lowest
    o : Out(stream)   per lane the sum
    """

    def __init__(self, lanes, adders):
        if lanes < 1 or adders < 1:
            raise ValueError(f"lanes, adders: must be >= 1, got {lanes}, {adders}")
        self.lanes, self.adders = lanes, adders
        self.latency = adders
        super().__init__({"i": In(stream.Signature(32 * (adders + 1) * lanes)),
                          "o": Out(stream.Signature(32 * lanes))})

    def elaborate(self, platform):
        m = Module()
        n, lanes = self.adders, self.lanes
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        words = [[self.i.payload[32 * (k + (n + 1) * lane):32 * (k + 1 + (n + 1) * lane)] for k in range(n + 1)]
                 for lane in range(lanes)]
        valid = self.i.valid
        for stage in range(n):                            # stage s adds a_(s+1) and carries the rest
            nxt = []
            for lane, (acc, *rest) in enumerate(words):
                regs = [Signal(32, name=f"add{stage}_l{lane}_{k}") for k in range(len(rest))]
                total = fp32_add(m, acc, rest[0], f"add{stage}_l{lane}")
                with m.If(en):
                    m.d.sync += regs[0].eq(total)
                    m.d.sync += [r.eq(v) for r, v in zip(regs[1:], rest[1:])]
                nxt.append(regs)
            v = Signal(name=f"add{stage}_valid")
            with m.If(en):
                m.d.sync += v.eq(valid)
            words, valid = nxt, v
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.eq(Cat(*(w[0] for w in words)))]
        return m
