"""Amaranth FMA unit r = a*b + c with exact or approximate normalization.

The datapath is the one of `specmx.models.fma` (read its docstring first): unpack, exact
product, align with sticky, add, (approximate) normalize, round, pack. Both are generated from
the same `FMAConfig`, and the cocotb tests check them bit for bit.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from specmx.models.config import MAX_FMA_STAGES, FMAConfig, WideView
from specmx.hdl.arith import grouped_leading_zeros, leading_zeros, unpack_ieee

__all__ = ["FMA", "fma_datapath", "CUT_POINTS", "ieee_to_internal", "register", "delay", "delay_valid"]

# Pipeline cut points in datapath order; `stages=n` registers the first n of PREFERENCE.
# unpack: operand fields | mul: product, container tops | anchor: common exponent |
# distance: alignment shifts | align: shifted operands | negate: signed operands |
# sum: signed sum | add: magnitude and sign | lzc: leading-zero count | norm: normalized sum |
# round: rounded significand | out: result.
CUT_POINTS = ("unpack", "mul", "anchor", "distance", "align", "negate", "sum", "add", "lzc", "norm", "round", "out")
PREFERENCE = ("out", "add", "mul", "norm", "align", "lzc", "anchor", "distance", "sum", "round", "unpack", "negate")
assert sorted(CUT_POINTS) == sorted(PREFERENCE) and len(CUT_POINTS) == MAX_FMA_STAGES
EXP = signed(14)   # exponent arithmetic: wide enough for every format's sums and differences


class _Pipeline:
    """Registers a dict of values at the chosen cut points (held while `enable` is low)."""

    def __init__(self, m, cuts, enable):
        self.m, self.cuts, self.enable = m, cuts, enable

    def cut(self, name, **values):
        if name not in self.cuts:
            return wires(self.m, name, values)
        return register(self.m, self.enable, name, values)


def wires(m, name, values):
    """One combinational signal per value (named `<name>_<key>`): names an expression once, so
    the netlist holds it once however often later logic slices or reuses it."""
    out = {}
    for key, value in values.items():
        value = Value.cast(value)
        wire = Signal(value.shape(), name=f"{name}_{key}")
        m.d.comb += wire.eq(value)
        out[key] = wire
    return out


def register(m, enable, name, values):
    """One register per value (named `<name>_<key>`), loaded while `enable` is high."""
    out = {}
    for key, value in values.items():
        value = Value.cast(value)
        reg = Signal(value.shape(), name=f"{name}_{key}")
        with m.If(enable):
            m.d.sync += reg.eq(value)
        out[key] = reg
    return out


def delay(m, enable, value, cycles, name="delay"):
    """`value` delayed by `cycles` enabled clock edges (a shift register held while `enable`
    is low): operands travelling alongside a stalling pipeline."""
    for k in range(cycles):
        value = register(m, enable, f"{name}{k}", {"d": value})["d"]
    return value


def delay_valid(m, enable, valid, cycles):
    """`valid` delayed by `cycles` enabled clock edges (the valid bit of a stalling pipeline)."""
    return delay(m, enable, valid, cycles, "valid")


def unpack_internal(bits, ifmt):
    sig = bits[:ifmt.sig_bits]
    exp = bits[ifmt.sig_bits:ifmt.sig_bits + ifmt.exp_bits]
    special = exp.all()
    is_nan = special & sig.any()
    is_inf = special & ~sig.any()
    lsb_exp = exp - Const(ifmt.bias + ifmt.sig_bits - 1, EXP)
    return bits[-1], Mux(special, 0, sig), lsb_exp, is_nan, is_inf


def align(m, x, width, top, anchor, sum_width, name):
    """Right-shift x into the sum register, ORing the bits shifted out into the LSB."""
    return align_by(m, x, width, align_distance(m, top, anchor, sum_width, name), sum_width, name)


def align_distance(m, top, anchor, sum_width, name, top_far=None):
    """Right shift that brings a container top to the anchor, clamped to 0..sum_width + 1.
    `top_far` (top + sum_width + 1, formed a stage early) lets the upper clamp compare the
    anchor beside the subtraction instead of after it."""
    dist = anchor - top
    beyond = dist > sum_width + 1 if top_far is None else anchor > top_far
    shift = Signal(range(sum_width + 2), name=f"{name}_shift")
    m.d.comb += shift.eq(Mux(dist < 0, 0, Mux(beyond, sum_width + 1, dist)))
    return shift


def align_by(m, x, width, shift, sum_width, name):
    """x (width bits) placed at the top of the sum register, right-shifted by `shift` with
    the bits shifted out ORed into the LSB (sticky)."""
    placed = Cat(Const(0, sum_width - width), x)
    kept = (placed >> shift)[:sum_width]
    lost_mask = ~(Const((1 << sum_width) - 1, sum_width) << shift)[:sum_width]
    sticky = (placed & lost_mask).any()
    return wires(m, name, {"aligned": kept | sticky})["aligned"]


SPECIALS = ("is_nan", "is_inf", "inf_sign")   # the special-case flags every stage carries on


def _keep(values, *keys):
    """The named values of the current stage, to carry on through the next cut."""
    return {k: values[k] for k in keys}


def fma_datapath(m, cfg: FMAConfig, a, b, c, pipe: _Pipeline):
    """Build the combinational (optionally pipelined) datapath; returns the result word."""
    in_f, acc_f = cfg.in_f, cfg.acc_f
    daz = cfg.subnormals == "flush"
    W, p = cfg.sum_width, cfg.c_width

    # 1. unpack + exact product
    sa, sig_a, ea, nan_a, inf_a = unpack_ieee(a, in_f, daz, EXP)
    sb, sig_b, eb, nan_b, inf_b = unpack_ieee(b, getattr(cfg, "b_f", in_f), daz, EXP)
    if cfg.internal:
        sc, sig_c, ec, nan_c, inf_c = unpack_internal(c, cfg.int_f)
    else:
        sc, sig_c, ec, nan_c, inf_c = unpack_ieee(c, acc_f, daz, EXP)
    names = ("s", "sig", "e", "nan", "inf")
    sa, sig_a, ea, nan_a, inf_a = wires(m, "a", dict(zip(names, (sa, sig_a, ea, nan_a, inf_a)))).values()
    sb, sig_b, eb, nan_b, inf_b = wires(m, "b", dict(zip(names, (sb, sig_b, eb, nan_b, inf_b)))).values()
    sc, sig_c, ec, nan_c, inf_c = wires(m, "c", dict(zip(names, (sc, sig_c, ec, nan_c, inf_c)))).values()
    sp = sa ^ sb
    zero_a = ~sig_a.any() & ~nan_a & ~inf_a
    zero_b = ~sig_b.any() & ~nan_b & ~inf_b
    prod_inf = inf_a | inf_b
    is_nan = nan_a | nan_b | nan_c | (inf_a & zero_b) | (zero_a & inf_b) | (prod_inf & inf_c & (sp != sc))
    is_inf = prod_inf | inf_c
    inf_sign = Mux(prod_inf, sp, sc)
    v = pipe.cut("unpack", sig_a=sig_a, sig_b=sig_b, ea=ea, eb=eb, sig_c=sig_c, ec=ec, sp=sp, sc=sc,
                 is_nan=is_nan, is_inf=is_inf, inf_sign=inf_sign)
    # A deep pipeline spends some area on shorter stages: alignment clamps against container
    # tops formed early, and the normalizing shift by count and by room side by side.
    early_far = {"anchor", "distance"} <= pipe.cuts
    tops = {"top_p": v["ea"] + v["eb"] + cfg.prod_width, "top_c": v["ec"] + cfg.c_width}
    if early_far:
        tops.update(far_p=tops["top_p"] + (W + 1), far_c=tops["top_c"] + (W + 1))
    v = pipe.cut("mul", prod=v["sig_a"] * v["sig_b"], prod_zero=~(v["sig_a"].any() & v["sig_b"].any()),
                 c_zero=~v["sig_c"].any(), **{k: x[:EXP.width].as_signed() for k, x in tops.items()},
                 **_keep(v, "sig_c", "sp", "sc", *SPECIALS))

    # 2. align around the larger container top (never below emin for IEEE results); a product
    # is zero exactly when a multiplicand is, so that test needs no product bits
    # (the comparisons run side by side, then pick: no comparator waits for another's mux)
    top_p, top_c = v["top_p"], v["top_c"]
    from_p = ~v["prod_zero"] & (v["c_zero"] | (top_p > top_c))
    anchor = Mux(from_p, top_p, top_c)
    if not cfg.internal:
        emin = Const(acc_f.emin, EXP)
        anchor = Mux(Mux(from_p, top_p < emin, top_c < emin), emin, anchor)
    anchor = anchor[:EXP.width].as_signed()
    far = ("far_p", "far_c") if early_far else ()
    v = pipe.cut("anchor", anchor=anchor, **_keep(v, "prod", "sig_c", "top_p", "top_c", *far, "sp", "sc", *SPECIALS))
    v = pipe.cut("distance", shift_p=align_distance(m, v["top_p"], v["anchor"], W, "prod", v.get("far_p")),
                 shift_c=align_distance(m, v["top_c"], v["anchor"], W, "c", v.get("far_c")),
                 **_keep(v, "prod", "sig_c", "anchor", "sp", "sc", *SPECIALS))
    pa = align_by(m, v["prod"], cfg.prod_width, v["shift_p"], W, "prod")
    ca = align_by(m, v["sig_c"], cfg.c_width, v["shift_c"], W, "c")
    v = pipe.cut("align", pa=pa, ca=ca, **_keep(v, "anchor", "sp", "sc", *SPECIALS))

    # 3. signed add
    v = pipe.cut("negate", pa_s=Mux(v["sp"], -v["pa"], v["pa"]), ca_s=Mux(v["sc"], -v["ca"], v["ca"]),
                 zero_sign=v["sp"] & v["sc"], **_keep(v, "anchor", *SPECIALS))
    total = Signal(signed(W + 2), name="total")
    m.d.comb += total.eq(v["pa_s"] + v["ca_s"])
    v = pipe.cut("sum", total=total, **_keep(v, "zero_sign", "anchor", *SPECIALS))
    neg = v["total"] < 0
    mag = Mux(neg, -v["total"], v["total"])[:W + 1]
    v = pipe.cut("add", mag=mag, neg=neg, **_keep(v, "zero_sign", "anchor", *SPECIALS))

    # 4. normalize: exact or approximate left shift
    room = {} if cfg.internal else {"room": room_groups(cfg, v["anchor"])}   # beside the count
    v = pipe.cut("lzc", lz=leading_zero_groups(cfg, v["mag"]), **room,
                 **_keep(v, "mag", "anchor", "neg", "zero_sign", *SPECIALS))
    mag = v["mag"]
    norm, top_exp, residual = normalize_shift(m, cfg, mag, v["anchor"], v["lz"], v.get("room"),
                                               parallel="lzc" in pipe.cuts)
    v = pipe.cut("norm", norm=norm, top_exp=top_exp, residual=residual, zero_sum=~mag.any(),
                 **_keep(v, "neg", "zero_sign", *SPECIALS))

    # 5. round the top p bits, pack, specials
    word = cfg.int_f if cfg.internal else acc_f
    special_word = Mux(v["is_nan"], Const(word.canonical_nan, word.width),
                       Mux(v["is_inf"], Cat(Const(word.inf_bits, word.width - 1), v["inf_sign"]),
                           Cat(Const(0, word.width - 1), v["zero_sign"])))
    field = {"field": v["top_exp"] + (acc_f.bias - 1)} if field_early(cfg) else {}
    v = pipe.cut("round", sig=round_sig(cfg, v["norm"]), special=v["is_nan"] | v["is_inf"] | v["zero_sum"],
                 special_word=special_word, **field, **_keep(v, "top_exp", "residual", "neg"))
    out = pack(m, cfg, v["sig"], v["top_exp"], v["neg"], v["residual"], field=v.get("field"))
    if daz and not cfg.internal:
        out = Mux(out[acc_f.man_bits:acc_f.man_bits + acc_f.exp_bits].any(), out,
                  Cat(Const(0, word.width - 1), out[-1]))
    # NaN, then infinity, then an exact zero sum override the packed word (picked a stage early)
    out = Mux(v["special"], v["special_word"], out)
    return pipe.cut("out", r=out)["r"]


def leading_zero_groups(cfg, mag):
    """Leading-zero detector: exact count over the whole sum, or all-zero groups of `step`
    bits among the top `window` bits (approximate)."""
    if cfg.window is None and cfg.step == 1:
        return leading_zeros(mag)
    return grouped_leading_zeros(mag, min(cfg.lzd_window, cfg.sum_width + 1), cfg.step)


def room_groups(cfg, anchor):
    """Whole groups the sum may shift left before its top goes below emin (IEEE results)."""
    room = anchor - cfg.acc_f.emin           # >= 0: shifting further would go below emin
    return (room >> (cfg.step.bit_length() - 1)).as_unsigned()


def normalize_shift(m, cfg, mag, anchor, lz_groups, room=None, parallel=False):
    """Normalizing left shift by step * groups, stopped at emin for IEEE results (`room`:
    `room_groups(cfg, anchor)`, if already formed). `parallel` shifts by the count and by the
    room side by side and lets their comparison pick (a second shifter, for a shorter path).
    Returns (shifted sum, exponent of its top bit, 'left unnormalized' flag)."""
    W = cfg.sum_width
    g_bits = cfg.step.bit_length() - 1       # step is a power of two

    def shifted(groups, name):
        shift = Signal(range(W + 2), name=f"{name}_shift")
        m.d.comb += shift.eq(groups << g_bits)
        return wires(m, name, {"shifted": (mag << shift)[:W + 1], "top": (anchor - shift)[:EXP.width].as_signed()})

    if cfg.internal:
        v = shifted(lz_groups, "norm")
    else:
        room = room_groups(cfg, anchor) if room is None else room
        stop = room < lz_groups
        if parallel:
            by_lz, by_room = shifted(lz_groups, "norm_lz"), shifted(room, "norm_room")
            v = wires(m, "norm", {k: Mux(stop, by_room[k], by_lz[k]) for k in ("shifted", "top")})
        else:
            v = shifted(Mux(stop, room, lz_groups), "norm")
    norm, top_exp = v["shifted"], v["top"]
    residual = Signal(name="unnormalized")
    if not cfg.internal:
        # Left unnormalized: no leading one at the top and not stopped at the emin boundary.
        m.d.comb += residual.eq(~norm[W] & (top_exp != cfg.acc_f.emin))
    return norm, top_exp, residual


def round_pack(m, cfg, norm, top_exp, neg, residual, p=None):
    """Round the top p bits (default: cfg.c_width) of the normalized sum (rne/rtz) and pack
    the result word (specials and zero are overridden by the caller)."""
    return pack(m, cfg, round_sig(cfg, norm, p), top_exp, neg, residual, p)


def round_sig(cfg, norm, p=None):
    """The top p bits of the normalized sum rounded (rne) or truncated (rtz), as p+1 bits
    (room for a rounding carry)."""
    W, p = cfg.sum_width, (cfg.c_width if p is None else p)
    sig = Cat(norm[W + 1 - p:], Const(0, 1))
    if cfg.rounding == "rne":
        round_bit = norm[W - p]
        sticky = norm[:W - p].any()
        sig = (sig + (round_bit & (sticky | sig[0])))[:p + 1]
    return sig


def pack(m, cfg, sig, top_exp, neg, residual, p=None, field=None):
    """Pack a rounded significand (p+1 bits) into the result word: internal, or IEEE after the
    approximate configs' flush or renormalization of a left-unnormalized significand. `field`:
    the IEEE exponent field top_exp + bias - 1, if formed a stage early (see `field_early`)."""
    p = cfg.c_width if p is None else p
    if cfg.internal:
        return _pack_internal(m, cfg.int_f, neg, sig, top_exp)
    if not cfg.exact:
        if cfg.policy == "flush":
            sig = Mux(residual, 0, sig)
        else:
            sig, top_exp = _renormalize(m, cfg.acc_f, sig, top_exp, p)
    if field is None:
        field = top_exp + (cfg.acc_f.bias - 1)
    return _pack_ieee(m, cfg.acc_f, neg, sig, field, cfg.rounding)


def field_early(cfg):
    """The exponent field can be formed before rounding (no renormalization moves it after;
    a flushed significand packs to zero whatever the field)."""
    return not cfg.internal and (cfg.exact or cfg.policy == "flush")


def _renormalize(m, fmt, sig, top_exp, p):
    """Policy "round": bring the leading one of a fixed-position rounded significand to the
    top (or to the emin boundary) with a narrow shifter (p+1 bits instead of the sum width)."""
    lz = leading_zeros(sig)                  # over p+1 bits: lz - 1 = bits to shift up
    want = Mux(lz > 0, lz - 1, 0)
    room = top_exp - fmt.emin
    up = Signal(range(p + 2), name="renorm_shift")
    m.d.comb += up.eq(Mux(room < want, room, want))
    return (sig << up)[:p + 1], (top_exp - up)[:EXP.width].as_signed()


def _pack_ieee(m, fmt, neg, sig, field, rounding):
    """Exponent field (top_exp + bias - 1) added, not ORed, so a significand carry increments
    it by itself."""
    packed = Signal(signed(fmt.width + 8), name="packed")
    m.d.comb += packed.eq(Mux(sig.any(), (field << fmt.man_bits) + sig, 0))
    big = fmt.inf_bits if rounding == "rne" else fmt.max_finite_bits
    if fmt.has_inf:   # packed > max finite <=> the exponent field reached all ones: a bit test
        too_big = at_least_all_ones(packed[fmt.man_bits:].as_signed(), fmt.exp_bits)
    else:
        too_big = packed > fmt.max_finite_bits
    magnitude = Mux(too_big, big, packed[:fmt.width - 1])
    return Cat(magnitude[:fmt.width - 1], neg)


def at_least_all_ones(x, bits):
    """Signed x >= 2**bits - 1, as bit tests (LUTs) instead of a comparator's carry chain."""
    return ~x[-1] & (x[bits:-1].any() | x[:bits].all())


def _pack_internal(m, ifmt, neg, sig, top_exp):
    """The biased exponent with and without the rounding carry are formed side by side, and
    the carry picks one (the adders do not wait for the rounding)."""
    carry = sig[ifmt.sig_bits]
    sig = Mux(carry, sig[1:ifmt.sig_bits + 1], sig[:ifmt.sig_bits])
    exp = Signal(EXP, name="int_exp")
    m.d.comb += exp.eq(Mux(carry, top_exp + (ifmt.bias + 1), top_exp + ifmt.bias))
    out = Cat(sig, exp[:ifmt.exp_bits], neg)
    out = Mux(at_least_all_ones(exp, ifmt.exp_bits), Cat(Const(ifmt.inf_bits, ifmt.width - 1), neg), out)
    not_positive = exp[-1] | ~exp.any()
    return Mux(not_positive | ~sig.any(), Cat(Const(0, ifmt.width - 1), neg), out)


class FMA(wiring.Component):
    """Pipelined floating-point multiply-add r = a*b + c.

    Parameters
    ----------
    cfg : FMAConfig
        Formats, normalization knobs and rounding; shared with the golden model.
    stages : int
        Pipeline depth in cycles, 0 (combinational) .. 12. Registers go to the cut points
        of PREFERENCE (`out`, `add`, `mul`, `norm`, `align`, `lzc`, ...), in that order.
    wide : bool
        Multiplicand b in the accumulator format (IEEE words): the `fma_wide` of the golden,
        for products with a state or accumulator word (product and sum register widen).

    Members
    -------
    a, b : In(in_fmt width)      multiplicands (raw bit patterns; b: acc width when wide)
    c : In(cfg.acc_width)        addend: IEEE accumulator word, or internal word
    valid : In(1)                operands present this cycle
    en : In(1, init=1)           clock enable: while low, the pipeline holds its contents
    r : Out(cfg.acc_width)       result, `stages` enabled cycles after its operands
    r_valid : Out(1)             r holds the result of a valid operand set
    """

    def __init__(self, cfg: FMAConfig, stages: int = 1, wide: bool = False):
        if not isinstance(cfg, FMAConfig):
            raise TypeError(f"cfg must be an FMAConfig, not {cfg!r}")
        if isinstance(stages, bool) or not isinstance(stages, int) or not 0 <= stages <= len(CUT_POINTS):
            raise ValueError(f"stages: must be an integer in 0..{len(CUT_POINTS)}, got {stages!r}")
        if wide and cfg.internal:
            raise ValueError("policy: a wide FMA takes IEEE accumulator words; allowed: round, flush")
        self.cfg, self.stages, self.wide = cfg, stages, wide
        super().__init__({
            "a": In(cfg.in_f.width), "b": In(cfg.acc_width if wide else cfg.in_f.width), "c": In(cfg.acc_width),
            "valid": In(1), "en": In(1, init=1),
            "r": Out(cfg.acc_width), "r_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cuts = set(PREFERENCE[:self.stages])
        pipe = _Pipeline(m, cuts, self.en)
        cfg = WideView(self.cfg) if self.wide else self.cfg
        m.d.comb += self.r.eq(fma_datapath(m, cfg, self.a, self.b, self.c, pipe))
        m.d.comb += self.r_valid.eq(delay_valid(m, self.en, self.valid, self.stages))
        return m


def ieee_to_internal(bits, cfg: FMAConfig):
    """IEEE accumulator word -> internal word (exact); mirrors `models.fma.to_internal`."""
    acc_f, ifmt = cfg.acc_f, cfg.int_f
    sign, sig, lsb_exp, is_nan, is_inf = unpack_ieee(bits, acc_f, cfg.subnormals == "flush", EXP)
    exp = (lsb_exp + acc_f.man_bits + ifmt.bias)[:ifmt.exp_bits]
    word = Cat(Const(0, ifmt.sig_bits - acc_f.precision), sig, exp, sign)
    word = Mux(sig.any(), word, Cat(Const(0, ifmt.width - 1), sign))
    word = Mux(is_inf, Cat(Const(ifmt.inf_bits, ifmt.width - 1), sign), word)
    return Mux(is_nan, Const(ifmt.canonical_nan, ifmt.width), word)
