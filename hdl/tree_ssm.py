"""The SSM half of the Mamba engine: the conv unit and the scan unit in tree mode, side by side
with shared state-slot numbering (`specdec.assign_slots`). The engine feeds them node by node in
FIFO order; each node reads its parent's slot and writes its own, and every node's new conv
window and SSM state leave on the state streams (store backtracking).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from specmx.hdl.conv import ConvUnit
from specmx.hdl.scan import ScanUnit
from specmx.models.config import SSMConfig

__all__ = ["TreeSSM"]


class TreeSSM(wiring.Component):
    """Conv unit (`conv` config: d_inner = the conv's channels) and scan unit (`scan` config),
    both with `slots` state slots.

    Members: conv_i, conv_o, conv_s and scan_i, scan_o, scan_s: the units' streams.
    """

    def __init__(self, conv: SSMConfig, scan: SSMConfig, slots):
        if slots < 2:
            raise ValueError(f"slots: tree mode needs at least 2, got {slots}")
        self.conv, self.scan = ConvUnit(conv, slots), ScanUnit(scan, slots)
        for unit in (self.conv, self.scan):        # elaborated as submodules, never on their own
            unit._MustUse__silence = True
        members = {}
        for unit, prefix in ((self.conv, "conv"), (self.scan, "scan")):
            for name, member in unit.signature.members.items():
                members[f"{prefix}_{name}"] = In(member.signature.flip()) if member.flow == wiring.In \
                    else Out(member.signature)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.conv, m.submodules.scan = self.conv, self.scan
        for unit, prefix in ((self.conv, "conv"), (self.scan, "scan")):
            for name in unit.signature.members:
                outer = getattr(self, f"{prefix}_{name}")
                inner = getattr(unit, name)
                if unit.signature.members[name].flow == wiring.In:
                    wiring.connect(m, wiring.flipped(outer), inner)
                else:
                    wiring.connect(m, inner, wiring.flipped(outer))
        return m
