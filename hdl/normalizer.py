"""The exact edge normalizer: internal (unnormalized) accumulator word -> IEEE word.

One of these sits at the edge of a matrix engine whose PEs use policy "internal". It is the
FMA's own normalize / round / pack logic with no product: the internal significand is placed
in a (p_int + 2)-bit register anchored at its top, or at emin for subnormal results (shifted
out bits go to sticky, at least two bits below the rounding position), then normalized exactly
and rounded once. Mirrors `models.fma.normalize` (which is computed differently: via float64).
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from specmx.models.config import FMAConfig
from specmx.hdl.arith import leading_zeros, max_signed
from specmx.hdl.fma import EXP, align, normalize_shift, round_pack, unpack_internal

__all__ = ["Normalizer", "normalize_word"]


@dataclass(frozen=True)
class _EdgeView:
    """The subset of FMAConfig the shared normalize/round functions read, for the edge."""

    cfg: FMAConfig

    sum_width = property(lambda self: self.cfg.int_f.sig_bits + 2)
    acc_f = property(lambda self: self.cfg.acc_f)
    rounding = property(lambda self: self.cfg.rounding)
    step = 1
    window = None
    internal = False
    exact = True
    policy = "round"


def normalize_word(m, cfg: FMAConfig, word):
    """Combinational internal -> IEEE conversion of one word (see module docstring)."""
    view, ifmt, acc_f = _EdgeView(cfg), cfg.int_f, cfg.acc_f
    W = view.sum_width
    sign, sig, lsb_exp, is_nan, is_inf = unpack_internal(word, ifmt)
    top = (lsb_exp + ifmt.sig_bits)[:EXP.width].as_signed()
    anchor = max_signed(top, Const(acc_f.emin, EXP))[:EXP.width].as_signed()
    mag = Cat(align(m, sig, ifmt.sig_bits, top, anchor, W, "edge"), Const(0, 1))
    norm, top_exp, _ = normalize_shift(m, view, mag, anchor, leading_zeros(mag))
    out = round_pack(m, view, norm, top_exp, sign, Const(0, 1), p=acc_f.precision)
    out = Mux(sig.any(), out, Cat(Const(0, acc_f.width - 1), sign))
    if cfg.subnormals == "flush":
        out = Mux(out[acc_f.man_bits:acc_f.man_bits + acc_f.exp_bits].any(), out,
                  Cat(Const(0, acc_f.width - 1), out[-1]))
    out = Mux(is_inf, Cat(Const(acc_f.inf_bits, acc_f.width - 1), sign), out)
    return Mux(is_nan, Const(acc_f.canonical_nan, acc_f.width), out)


class Normalizer(wiring.Component):
    """Combinational internal -> IEEE accumulator word converter.

    Members
    -------
    i : In(cfg.int_f.width)     internal word
    o : Out(cfg.acc_f.width)    correctly rounded IEEE word (cfg.rounding, cfg.subnormals)
    """

    def __init__(self, cfg: FMAConfig):
        if not cfg.internal:
            raise ValueError(f"cfg: the edge normalizer needs policy 'internal', got {cfg.policy!r}")
        self.cfg = cfg
        super().__init__({"i": In(cfg.int_f.width), "o": Out(cfg.acc_f.width)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(normalize_word(m, self.cfg, self.i))
        return m
