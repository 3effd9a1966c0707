"""The FMA's normalization-related parts as stand-alone components, for area breakdowns.

Each wraps exactly the function the FMA datapath itself uses (`hdl.fma`), so synthesising
them shows where exact and approximate normalization spend their gates.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from specmx.models.config import FMAConfig
from specmx.hdl.fma import EXP, leading_zero_groups, normalize_shift, round_pack

__all__ = ["FMAPart", "PARTS"]

PARTS = ("lzd", "shifter", "round")


class FMAPart(wiring.Component):
    """One part of the FMA normalization path (combinational).

    Parameters
    ----------
    cfg : FMAConfig
    part : {"lzd", "shifter", "round"}
        lzd: sum magnitude -> leading-zero groups; shifter: normalizing shift incl. the emin
        clamp; round: rounding, renormalization (policy round) and packing.
    """

    def __init__(self, cfg: FMAConfig, part: str):
        if part not in PARTS:
            raise ValueError(f"part: unknown {part!r}; allowed: {', '.join(PARTS)}")
        self.cfg, self.part = cfg, part
        W = cfg.sum_width
        groups = (W + 1) if cfg.window is None and cfg.step == 1 else cfg.lzd_window // cfg.step
        ports = {
            "lzd": {"mag": In(W + 1), "lz": Out(groups.bit_length())},
            "shifter": {"mag": In(W + 1), "anchor": In(EXP), "lz": In(groups.bit_length()),
                        "norm": Out(W + 1), "top_exp": Out(EXP), "residual": Out(1)},
            "round": {"norm": In(W + 1), "top_exp": In(EXP), "neg": In(1), "residual": In(1),
                      "r": Out(cfg.acc_width)},
        }[part]
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        if self.part == "lzd":
            m.d.comb += self.lz.eq(leading_zero_groups(cfg, self.mag))
        elif self.part == "shifter":
            norm, top_exp, residual = normalize_shift(m, cfg, self.mag, self.anchor, self.lz)
            m.d.comb += [self.norm.eq(norm), self.top_exp.eq(top_exp), self.residual.eq(residual)]
        else:
            m.d.comb += self.r.eq(round_pack(m, cfg, self.norm, self.top_exp, self.neg, self.residual))
        return m
