"""Composing components: expose each sub-unit's ports on the outer component under a prefix
(`conv_i`, `mxu_cmd`, ...) and wire them through, so a testbench (or the engine's sequencer)
drives the units of a composed design by name."""

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["prefixed_members", "connect_prefixed", "connect_gated", "pack_struct"]


def prefixed_members(units, skip=()):
    """Signature members {prefix_name: In/Out(...)} of `units` ({prefix: component}), leaving
    out the `prefix_name`s in `skip` (ports the composition drives itself)."""
    members = {}
    for prefix, unit in units.items():
        unit._MustUse__silence = True                  # elaborated as a submodule, never on its own
        for name, member in unit.signature.members.items():
            if f"{prefix}_{name}" in skip:
                continue
            if member.is_port:
                members[f"{prefix}_{name}"] = In(member.shape) if member.flow == wiring.In else Out(member.shape)
            else:
                members[f"{prefix}_{name}"] = In(member.signature.flip()) if member.flow == wiring.In \
                    else Out(member.signature)
    return members


def connect_prefixed(m, outer, units, skip=(), gates=None):
    """Add `units` as submodules of `m` and wire each exposed port of `outer` to its unit's.
    `gates` ({prefix_name: signal}): those input streams pass words only while the signal is 1."""
    gates = gates or {}
    for prefix, unit in units.items():
        setattr(m.submodules, prefix, unit)
        for name, member in unit.signature.members.items():
            if f"{prefix}_{name}" in skip:
                continue
            port, inner = getattr(outer, f"{prefix}_{name}"), getattr(unit, name)
            if member.is_port:
                m.d.comb += (inner.eq(port) if member.flow == wiring.In else port.eq(inner))
            elif f"{prefix}_{name}" in gates:
                connect_gated(m, port, inner, gates[f"{prefix}_{name}"])
            elif member.flow == wiring.In:
                wiring.connect(m, wiring.flipped(port), inner)
            else:
                wiring.connect(m, inner, wiring.flipped(port))


def connect_gated(m, source, sink, on):
    """Stream `source` into `sink`, passing words only while `on` is 1."""
    m.d.comb += [sink.valid.eq(source.valid & on), source.ready.eq(sink.ready & on), sink.payload.eq(source.payload)]


def pack_struct(layout, value):
    """The integer payload of a struct/array `layout` from nested dicts and lists of ints (how a
    host, a testbench or a ROM's initial contents build a structured stream beat)."""
    if isinstance(layout, data.Layout):
        return sum(pack_struct(f.shape, value[key]) << f.offset for key, f in layout)
    return int(value)
