"""Pipelined nonlinear function units (exp, softplus, sigmoid, silu, rsqrt) on fp32 words.

The datapath is the one of `specmx.models.function_units` (read its docstring first), written
with the same integer operations: unpack, fixed-point range reduction, piecewise cubics from
ROM tables evaluated by Horner's rule with truncating shifts, fixed-point combination, and one
round-to-nearest-even pack that reuses the FMA's normalize/round/pack logic. The cocotb tests
compare the two bit for bit (every bf16 input, plus random fp32 words and range edges).

The unit is a stream component: one word in and one result out per cycle when the pipeline is
full; a result the sink does not take stalls the whole pipeline (clock enable), so nothing is
lost or reordered. Latency: `FunctionUnit(name).latency` cycles.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from specmx.hdl.arith import leading_zeros
from specmx.hdl.fma import EXP, align, delay_valid, normalize_shift, register, round_pack
from specmx.models import function_tables as fu
from specmx.models.formats import FORMATS
from specmx.models.perf.ssm import FUNCTION_LATENCY

__all__ = ["FunctionUnit", "FUNCTIONS", "pack_fp32", "Pipe"]

FUNCTIONS = fu.FUNCTIONS
FP32 = FORMATS["fp32"]


class Pipe:
    """Registers named groups of values (held while `en` is low); counts the cuts made."""

    def __init__(self, m, en):
        self.m, self.en, self.stages = m, en, 0

    def cut(self, name, **values):
        self.stages += 1
        return register(self.m, self.en, name, values)


@dataclass(frozen=True)
class _PackView:
    """What the FMA's normalize/round/pack functions read, for an fp32 result of a
    `width`-bit significand (two guard bits, exact normalization, RNE)."""

    width: int
    sum_width = property(lambda self: max(self.width, FP32.precision) + 2)
    acc_f = FP32
    rounding = "rne"
    step = 1
    window = None
    internal = False
    exact = True
    policy = "round"


def pack_fp32(m, sign, M, E, name):
    """(-1)**sign * M * 2**E -> fp32 word with one RNE rounding (subnormals, overflow to inf);
    mirrors `models.function_units.pack`."""
    view = _PackView(len(M))
    W = view.sum_width
    top = (E + len(M))[:EXP.width].as_signed()
    emin = Const(FP32.emin, EXP)
    anchor = Mux(top > emin, top, emin)[:EXP.width].as_signed()
    mag = Cat(align(m, M, len(M), top, anchor, W, f"{name}_pack"), Const(0, 1))
    norm, top_exp, _ = normalize_shift(m, view, mag, anchor, leading_zeros(mag))
    out = round_pack(m, view, norm, top_exp, sign, Const(0, 1), p=FP32.precision)
    return Mux(M.any(), out, Cat(Const(0, 31), sign))


def _rom(m, name, column, prefix=""):
    """Column `column` (b0..b3) of coefficient table `name` as a combinational ROM."""
    table = fu.segment_table(name)[:, column]
    width = max(int(abs(v)) for v in table).bit_length() + 1
    mem = Memory(shape=signed(width), depth=len(table), init=[int(v) for v in table])
    m.submodules[f"{prefix}rom_{name}_b{column}"] = mem
    return mem.read_port(domain="comb")


def horner(m, name, j, t, prefix=""):
    """Piecewise cubic `name` at segment j, position t: q = b3; q = b_i + ((q * t) >> t_bits)."""
    bits = fu.TABLES[name][1]
    ports = [_rom(m, name, c, prefix) for c in range(4)]
    for p in ports:
        m.d.comb += p.addr.eq(j)
    q = ports[3].data
    for i in (2, 1, 0):
        prod = Signal(signed(len(q) + bits + 2), name=f"{name}_p{i}")
        m.d.comb += prod.eq(q * t.as_unsigned())
        nxt = Signal(signed(36), name=f"{name}_q{i}")
        m.d.comb += nxt.eq(ports[i].data + (prod >> bits))
        q = nxt
    return q


def _shift_right(x, s, limit=63):
    """x >> min(s, limit) for a non-negative (or signed) amount s."""
    return x >> Mux(s > limit, limit, s)[:limit.bit_length()]


def exp_core(m, mag, e, negative):
    """(k, Mu): exp(+-mag * 2**e) = Mu * 2**(k - 31) for |x| < 128 (see the golden model)."""
    prod = Signal(unsigned(56), name="x_log2e")
    m.d.comb += prod.eq(mag * fu.LOG2E_Q31)
    sh = Signal(signed(EXP.width), name="t_shift")
    m.d.comb += sh.eq(-(e + 1))
    T = Signal(unsigned(40), name="t_mag")
    m.d.comb += T.eq(_shift_right(prod, Mux(sh < 0, 0, sh).as_unsigned()))
    t = Signal(signed(42), name="t")
    m.d.comb += t.eq(Mux(negative, -T, T))
    return t


class FunctionUnit(wiring.Component):
    """One nonlinear function on fp32 words, as a pipelined stream component.

    Parameters
    ----------
    name : {"exp", "softplus", "sigmoid", "silu", "rsqrt"}, or a tuple of them, one per lane
        (a mixed unit: lane l computes name[l]; shorter pipelines are delayed to the longest).
    lanes : int
        Words per beat (lane l holds bits 32l..32l+31), each with its own datapath.

    Members
    -------
    i : In(stream of lanes x 32-bit fp32 words)
    o : Out(stream of lanes x 32-bit fp32 words)   results in order, `latency` cycles after input
    """

    def __init__(self, name, lanes=1):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= 64:
            raise ValueError(f"lanes: must be an integer in 1..64, got {lanes!r}")
        names = tuple(name) if isinstance(name, (tuple, list)) else (name,) * lanes
        if len(names) != lanes:
            raise ValueError(f"unit: {len(names)} functions for {lanes} lanes")
        for n in names:
            if n not in FUNCTIONS:
                raise ValueError(f"unit: unknown function {n!r}; allowed: {', '.join(FUNCTIONS)}")
        self.names, self.lanes = names, lanes
        self.name = names[0] if len(set(names)) == 1 else "+".join(names)
        self.latency = max(FUNCTION_LATENCY[n] for n in names)
        super().__init__({"i": In(stream.Signature(32 * lanes)), "o": Out(stream.Signature(32 * lanes))})

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        results = []
        for lane, name in enumerate(self.names):
            unit = self if len(set(self.names)) == 1 else FunctionUnit(name)
            unit._MustUse__silence = True
            pipe = Pipe(m, en)
            r = unit.datapath(m, pipe, self.i.payload[32 * lane:32 * (lane + 1)], f"l{lane}_")
            assert pipe.stages == FUNCTION_LATENCY[name], (pipe.stages, name)
            for k in range(self.latency - pipe.stages):             # align with the longest lane
                r = pipe.cut(f"l{lane}_align{k}", r=r)["r"]
            results.append(r)
        result = Cat(*results)
        m.d.comb += [self.o.valid.eq(delay_valid(m, en, self.i.valid, self.latency)),
                     self.o.payload.eq(result)]
        return m

    def datapath(self, m, pipe, x, prefix=""):
        """The function on one fp32 word x, registered through `pipe` (`latency` cuts): the
        result word. Other units embed a function this way (the conv unit's SiLU)."""
        name = self.name
        sign, field, man = x[31], x[23:31], x[:23]
        mag = Cat(man, field.any())                              # 24-bit significand
        e = (Mux(field.any(), field, 1) - Const(150, EXP))[:EXP.width].as_signed()
        nan = (field == 255) & man.any()
        if name == "rsqrt":
            return self._rsqrt(m, pipe, x, sign, field, man, mag, e, nan, prefix)
        big = field >= fu.SATURATE_EXP
        mag = Mux(big, 0, mag)
        if name == "exp":
            special = Mux(big, Mux(sign, 0, FP32.inf_bits), 0)
            t = exp_core(m, mag, e, sign)
        else:
            special = {"sigmoid": Mux(sign, 0, fu.ONE), "silu": Mux(sign, 1 << 31, x),
                       "softplus": Mux(sign, 0, x)}[name]
            t = exp_core(m, mag, e, Const(1, 1))
        v = pipe.cut("t", t=t, sign=sign, mag=mag, e=e, nan=nan, big=big, special=special)
        t = v["t"]
        k = (t >> 32)[:10].as_signed()
        Mu = horner(m, "exp2", t[25:32], t[:25], prefix)[:34].as_unsigned()
        keep = {key: v[key] for key in ("sign", "mag", "e", "nan", "big", "special")}
        v = pipe.cut("mu", k=k, Mu=Mu, **keep)
        k, Mu = v["k"], v["Mu"]
        keep = {key: v[key] for key in ("sign", "mag", "e", "nan", "big", "special")}
        if name == "exp":
            v = pipe.cut("comb", M=Mu, E=(k - 31)[:EXP.width].as_signed(), sign=Const(0, 1),
                         nan=v["nan"], big=v["big"], special=v["special"])
        else:
            U = Signal(unsigned(34), name="u_q31")
            m.d.comb += U.eq(_shift_right(Mu, Mux(k < 0, -k, 0).as_unsigned()))
            table = "recip" if name in ("sigmoid", "silu") else "log1p_ratio"
            H = horner(m, table, U[24:32], U[:24], prefix)[:33].as_unsigned()
            v = pipe.cut("h2", k=k, Mu=Mu, H=H, **keep)
            v = self._combine(m, pipe, v)
        out = pack_fp32(m, v["sign"], v["M"], v["E"], name)
        out = Mux(v["big"], v["special"], out)
        out = Mux(v["nan"], fu.CANONICAL_NAN, out)
        return pipe.cut("out", r=out)["r"]

    def _combine(self, m, pipe, v):
        """sigmoid / silu / softplus from u = Mu * 2**(k-31) and the second table value H."""
        name, k, Mu, H, sign = self.name, v["k"], v["Mu"], v["H"], v["sign"]
        keep = {key: v[key] for key in ("nan", "big", "special")}
        tiny = Signal(unsigned(64), name="u_times_h")
        m.d.comb += tiny.eq(((Mu >> 1) * H) >> 30)           # u * H, value tiny * 2**(k-31)
        km31 = (k - 31)[:EXP.width].as_signed()
        if name == "sigmoid":
            return pipe.cut("comb", M=Mux(sign, tiny, H)[:34], E=Mux(sign, km31, -31)[:EXP.width].as_signed(),
                            sign=Const(0, 1), **keep)
        if name == "silu":
            Ms = Mux(sign, tiny, H)[:34]
            Es = Mux(sign, km31, -31)[:EXP.width].as_signed()
            M = Signal(unsigned(53), name="silu_m")
            m.d.comb += M.eq(v["mag"] * (Ms >> 4))
            return pipe.cut("comb", M=M, E=(v["e"] + Es + 4)[:EXP.width].as_signed(), sign=sign, **keep)
        # softplus: x < 0: log1p(u) = tiny; x >= 0: x + log1p(u) in Q32
        e, mag = v["e"], v["mag"]
        s = (e + 32)[:EXP.width].as_signed()
        X = Signal(unsigned(40), name="x_q32")
        m.d.comb += X.eq(Mux(s >= 0, (mag << Mux(s > 15, 15, s)[:4]),
                             _shift_right(mag, Mux(s < 0, -s, 0).as_unsigned())))
        lp = Signal(unsigned(40), name="log1p_q32")
        m.d.comb += lp.eq(_shift_right(tiny[:34] << 1, Mux(k < 0, -k, 0).as_unsigned()))
        S = Signal(unsigned(41), name="softplus_q32")
        m.d.comb += S.eq(X + lp)
        return pipe.cut("comb", M=Mux(sign, tiny[:41], S), E=Mux(sign, km31, -32)[:EXP.width].as_signed(),
                        sign=Const(0, 1), **keep)

    def _rsqrt(self, m, pipe, x, sign, field, man, mag, e, nan, prefix):
        zero = ~field.any() & ~man.any()
        inf = field.all() & ~man.any()
        special = Mux(zero, Cat(Const(FP32.inf_bits, 31), sign),
                      Mux(sign, fu.CANONICAL_NAN, 0))       # +-0 -> +-inf; negative -> NaN; +inf -> +0
        is_special = zero | inf | sign
        lz = leading_zeros(mag)                               # only subnormals have lz > 0
        mn = (mag << lz)[:24]
        e2 = (e - lz + 23)[:EXP.width].as_signed()
        v = pipe.cut("norm", mn=mn, e2=e2, nan=nan, special=special, is_special=is_special)
        mn, e2 = v["mn"], v["e2"]
        odd = e2[0]
        R = horner(m, "rsqrt", Cat(mn[16:23], odd), mn[:16], prefix)[:33].as_unsigned()
        v = pipe.cut("poly", R=R, E=(-31 - ((e2 - odd) >> 1))[:EXP.width].as_signed(),
                     nan=v["nan"], special=v["special"], is_special=v["is_special"])
        v = pipe.cut("comb", M=v["R"], E=v["E"], nan=v["nan"], special=v["special"], is_special=v["is_special"])
        out = pack_fp32(m, Const(0, 1), v["M"], v["E"], "rsqrt")
        out = Mux(v["is_special"], v["special"], out)
        out = Mux(v["nan"], fu.CANONICAL_NAN, out)
        return pipe.cut("out", r=out)["r"]
