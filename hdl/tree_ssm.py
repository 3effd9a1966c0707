"""The SSM half of the Mamba engine: the conv unit and the scan unit in tree mode, side by side
with shared state-slot numbering (`specdec.assign_slots`). The engine feeds them node by node in
FIFO order; each node reads its parent's slot and writes its own, and every node's new conv
window and SSM state leave on the state streams (store backtracking).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring

from specmx.hdl.compose import connect_prefixed, prefixed_members
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
        self.units = {"conv": ConvUnit(conv, slots), "scan": ScanUnit(scan, slots)}
        self.conv, self.scan = self.units["conv"], self.units["scan"]
        super().__init__(prefixed_members(self.units))

    def elaborate(self, platform):
        m = Module()
        connect_prefixed(m, self, self.units)
        return m
