"""Several output streams of one lock-step pipeline.

A stalling pipeline advances only when every output it offers is taken. With more than one
output, a word may be taken on a cycle in which another output's sink refuses and the pipeline
holds: that word is marked sent and not offered again, so each word transfers exactly once.
"""

from amaranth.hdl import Signal

__all__ = ["lockstep_enable"]


def lockstep_enable(m, outputs):
    """`outputs`: (stream port, offered) pairs, `offered` the pipeline's valid for that port.
    Drives each port's valid and returns the pipeline's advance signal `en`."""
    en = Signal(name="lockstep_en")
    free = 1
    for port, offered in outputs:
        sent = Signal(name=f"{port.valid.name}_sent")
        m.d.comb += port.valid.eq(offered & ~sent)
        with m.If(en):
            m.d.sync += sent.eq(0)
        with m.Elif(port.valid & port.ready):
            m.d.sync += sent.eq(1)
        free = free & (~port.valid | port.ready)
    m.d.comb += en.eq(free)
    return en
