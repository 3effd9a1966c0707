"""Closed-form cycle models of the SSM datapath units (function units, and the conv, scan and
RMSNorm units as they land), checked against the cycles the RTL takes in every cocotb test.

All units are stalling pipelines: a cycle in which the sink refuses a valid result (`held`)
freezes the whole pipeline, and a cycle in which the unit is ready but its source offers
nothing (`starved`) leaves a bubble. Cycles run from the first input transfer to the last
output transfer, both included.
"""

from dataclasses import dataclass

__all__ = ["FUNCTION_LATENCY", "UnitCycles", "function_unit_cycles", "fadd_cycles", "conv_latency", "conv_cycles",
           "tree_levels", "scan_latency", "scan_beats", "scan_cycles", "RMSNORM_NORM_CYCLES", "RMSNORM_OUT_LATENCY",
           "rmsnorm_cycles"]

# Pipeline registers from input to output of each function unit (`hdl.function_unit`).
FUNCTION_LATENCY = {"exp": 4, "rsqrt": 4, "softplus": 5, "sigmoid": 5, "silu": 5}


@dataclass(frozen=True)
class UnitCycles:
    total: int        # first input transfer .. last output transfer
    busy: int         # cycles with no source gap and no sink stall
    starved: int
    held: int

    def as_dict(self):
        return dict(self.__dict__)


def function_unit_cycles(name, n, starved=0, held=0, lanes=1):
    """n words through function unit `name` (or a tuple of names, one per lane: the longest
    pipeline sets the latency) with `lanes` words per beat: ceil(n / lanes) beats + latency
    cycles, plus one per bubble and stall."""
    names = tuple(name) if isinstance(name, (tuple, list)) else (name,)
    for one in names:
        if one not in FUNCTION_LATENCY:
            raise ValueError(f"unit: unknown function {one!r}; allowed: {', '.join(FUNCTION_LATENCY)}")
    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    busy = -(-n // lanes) + max(FUNCTION_LATENCY[one] for one in names)
    return UnitCycles(busy + starved + held, busy, starved, held)


def fadd_cycles(n, adders, starved=0, held=0, lanes=1):
    """n words through an fp32 add chain (`hdl.fadd.FAddChain`, one registered adder per
    addend) with `lanes` words per beat: ceil(n / lanes) beats + `adders` cycles, plus one per
    bubble and stall."""
    if n < 1 or adders < 1:
        raise ValueError(f"n, adders: must be >= 1, got {n}, {adders}")
    busy = -(-n // lanes) + adders
    return UnitCycles(busy + starved + held, busy, starved, held)


def conv_latency(ssm):
    """Conv unit pipeline: one registered FMA per tap, then the SiLU unit."""
    return ssm.kernel + FUNCTION_LATENCY["silu"]


def conv_cycles(ssm, tokens, starved=0, held=0):
    """`tokens` tokens through the conv unit of `ssm`: d_inner / lanes beats per token."""
    if tokens < 1:
        raise ValueError(f"tokens: must be >= 1, got {tokens}")
    busy = tokens * (ssm.d_inner // ssm.lanes) + conv_latency(ssm)
    return UnitCycles(busy + starved + held, busy, starved, held)


def tree_levels(lanes):
    """Levels of the pairwise adder tree that reduces `lanes` partial sums (odd ones carried)."""
    return (lanes - 1).bit_length()


def scan_latency(ssm):
    """Scan unit pipeline, input beat to gated output: dt*A FMA, exp unit, hi/lo split FMA,
    two state FMAs (h*hi + dBu, then h*lo + that), the C*h accumulator, the adder tree, the
    D*u FMA and the gate FMA (`hdl.scan`)."""
    return 1 + FUNCTION_LATENCY["exp"] + 1 + 1 + 1 + 1 + tree_levels(ssm.lanes) + 1 + 1


def scan_beats(ssm):
    """Input beats per token: d_state / lanes per channel, d_inner channels."""
    return ssm.d_inner * (ssm.d_state // ssm.lanes)


def scan_cycles(ssm, tokens, starved=0, held=0):
    """`tokens` tokens through the scan unit of `ssm`: one beat per cycle, one output word per
    channel once its last beat has gone through."""
    if tokens < 1:
        raise ValueError(f"tokens: must be >= 1, got {tokens}")
    busy = tokens * scan_beats(ssm) + scan_latency(ssm)
    return UnitCycles(busy + starved + held, busy, starved, held)


# RMSNorm unit: after the last element of a vector, 1/D and eps FMAs (2) and the rsqrt unit;
# then each element leaves through two registered FMAs (x * r, then * w).
RMSNORM_NORM_CYCLES = 2 + FUNCTION_LATENCY["rsqrt"]
RMSNORM_OUT_LATENCY = 2


def rmsnorm_cycles(length, vectors, starved=0, held=0):
    """`vectors` vectors of `length` elements through the RMSNorm unit: each takes `length`
    cycles in, the norm cycles, `length` cycles out (the next vector's input overlaps only the
    last results' drain)."""
    if vectors < 1 or length < 1:
        raise ValueError(f"vectors, length: must be >= 1, got {vectors}, {length}")
    busy = vectors * (2 * length + RMSNORM_NORM_CYCLES) + RMSNORM_OUT_LATENCY
    return UnitCycles(busy + starved + held, busy, starved, held)
