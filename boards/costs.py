"""Resource cost table and the resource estimate of a Mamba engine on a board.

Costs are per unit of the engine, per FPGA family:
  pe        one multiply-accumulate of the matrix engine, by weight format (bf16: the RTL PE,
            bf16 x bf16 + fp32, 3 stages; fp8: fp8 weights widened to bf16 in LUTs ahead of
            the same PE; int8 / int4: integer MACs, modeled from this table, not built in RTL)
  ssm_lane  one lane of the SSM units (conv, selective scan with its exp unit, gate, and a lane
            of the dt softplus unit)
  ssm_base  the lane-independent rest (the RMSNorm unit, the sequencer, the fp32 adder of dt's
            bias, the state and tile buffers' control)
  adders    the two fp32 adders on each column of a matrix array's result stream (biases, the
            residual)
Each entry says where it comes from: `measured` entries are fitted to specmx's own ECP5
synthesis of the micro engine (`specmx engine synth`, README engine area table: 4x4 -> 5x5 ->
6x6 with one lane, 4x4 with two lanes); the rest are a documented table, with the source or the
reasoning (tags as in shared/BOARDS.md: C read in a source, I inferred, U unconfirmed).

On-chip memory is counted in bits: the state buffer (state_slots per-layer states of fp32
words) and the matrix engine's activation tile (tile rows of the widest layer but the LM
head, whose logits stream out; fp32).
"""

from dataclasses import dataclass

from specmx.boards.board import Board, BoardError

__all__ = ["Cost", "COSTS", "WEIGHT_FORMATS", "estimate", "largest_fit"]

WEIGHT_FORMATS = {"bf16": 16, "fp8": 8, "int8": 8, "int4": 4}


@dataclass(frozen=True)
class Cost:
    lut: float
    ff: float
    dsp: float
    source: str


_ECP5_PE = Cost(1443, 404, 1, "measured: ECP5 synth, 5x5 - 4x4 and 6x6 - 5x5 engines per added PE, the added "
                              "column's adders taken off (1,467 and 1,419 LUT sites, 11 DSP per 9-11 PEs, 402-406 FF)")
_ECP5_ADDERS = Cost(1550, 98, 0, "measured: ECP5 synth of the two-adder chain alone (hdl/fadd.py FAddChain(1, 2): "
                                 "1,202 LUT4 + 174 CCU2C); FF: its two stages' registers")
_ECP5_LANE = Cost(28627, 2758, 76, "measured: ECP5 synth, 4x4 engine with 2 lanes - with 1 lane")
_ECP5_BASE = Cost(24532, 2946, 41, "measured: ECP5 synth, 4x4 one-lane engine - 16 PEs - 4 columns' adders - one lane")

COSTS = {
    "ecp5": {
        "pe": {"bf16": _ECP5_PE,
               "fp8": Cost(1460, 400, 1, "I: the bf16 PE plus an fp8 -> bf16 widener (about 20 LUT4)"),
               "int8": Cost(60, 40, 0.5, "I: two 9x9 products per MULT18X18D (Diamond counts 312 halves, "
                                         "BOARDS.md 4a) plus a 24-bit accumulator"),
               "int4": Cost(40, 24, 0, "I: a 4x4 multiplier (about 16 LUT4) and a 16-bit accumulator in LUTs")},
        "adders": _ECP5_ADDERS, "ssm_lane": _ECP5_LANE, "ssm_base": _ECP5_BASE},
    "ice40": {
        "pe": {"bf16": Cost(1440, 400, 1, "I: the ECP5 PE's logic (LUT4 either way), the 8x8 product in one SB_MAC16"),
               "fp8": Cost(1460, 400, 1, "I: as bf16 plus the widener"),
               "int8": Cost(60, 40, 0.5, "I: SB_MAC16 holds two 8x8 multipliers"),
               "int4": Cost(40, 24, 0, "I: as on ECP5, in LUTs")},
        "adders": Cost(1550, 98, 0, "I: the ECP5 adders (LUT4 either way)"),
        "ssm_lane": Cost(28627, 2758, 76, "I: the ECP5 lane; a 24x24 product takes four 16x16 SB_MAC16 as four "
                                          "MULT18X18D"),
        "ssm_base": Cost(24532, 2946, 41, "I: the ECP5 base")},
    "versal": {
        "pe": {"bf16": Cost(80, 120, 1, "C: DSP58 has an FP32 multiply-add mode (UG1273); U: about 80 LUT of glue"),
               "fp8": Cost(100, 120, 1, "I: as bf16 plus the widener"),
               "int8": Cost(10, 20, 1 / 3, "C: DSP58 INT8 mode, a 3-element dot product per DSP (UG1273)"),
               "int4": Cost(25, 24, 0, "U: a 4x4 MAC in LUT6 (LightMamba's 64 W4A4 MACs sit beside only "
                                       "228 DSPs, BOARDS.md 5a)")},
        "adders": Cost(60, 100, 2, "U: DSP58's DSPFP32 mode adds fp32 (UG1273, recalled): one per adder, "
                                   "plus glue"),
        "ssm_lane": Cost(17200, 2300, 19, "I: the ECP5 lane with each 24x24 product (4 MULT18X18D) in one "
                                          "DSP58 and LUT6 = 0.6 LUT4"),
        "ssm_base": Cost(14700, 2946, 10, "I: the ECP5 base, mapped likewise")},
    "ultrascale+": {
        "pe": {"bf16": Cost(400, 450, 1, "U: the 8x8 product in one DSP48E2, an fp32 adder in LUT6 "
                                         "(Xilinx floating-point IP, recalled)"),
               "fp8": Cost(420, 450, 1, "I: as bf16 plus the widener"),
               "int8": Cost(10, 20, 0.5, "U: two int8 products per DSP48E2 by operand packing (WP487, recalled)"),
               "int4": Cost(25, 24, 0, "U: a 4x4 MAC in LUT6")},
        "adders": Cost(900, 200, 0, "U: two fp32 adders in LUT6 (Xilinx floating-point IP, recalled: about "
                                    "450 LUT each)"),
        "ssm_lane": Cost(17200, 2300, 38, "I: the ECP5 lane with each 24x24 product in two DSP48E2 and "
                                          "LUT6 = 0.6 LUT4"),
        "ssm_base": Cost(14700, 2946, 21, "I: the ECP5 base, mapped likewise")},
}


def _on_chip_bits(engine, dims):
    """State buffer plus activation tile, in bits."""
    state = engine.state_slots * dims.state_words * 32
    widest = max(dims.d_model, dims.in_proj, dims.d_inner)            # logits stream out, not held
    return state + engine.tile * widest * 32


def estimate(board: Board, engine, dims, weights="bf16"):
    """Resources the engine for `dims` needs on `board`: {resource: (needed, available)} for
    lut, ff, dsp and on-chip memory bits, with the cost table's sources."""
    if weights not in WEIGHT_FORMATS:
        raise BoardError(f"weights: unknown format {weights!r}; allowed: {', '.join(WEIGHT_FORMATS)}")
    table = COSTS[board.family]
    pe, lane, base = table["pe"][weights], table["ssm_lane"], table["ssm_base"]
    pes = engine.arrays * engine.rows * engine.cols
    adders = table["adders"]
    columns = engine.arrays * engine.cols
    need = {k: pes * getattr(pe, k) + columns * getattr(adders, k) + engine.lanes * getattr(lane, k) + getattr(base, k)
            for k in ("lut", "ff", "dsp")}
    need["memory_bits"] = _on_chip_bits(engine, dims)
    have = {"lut": board.need("lut"), "ff": board.need("ff"), "dsp": board.need("dsp"),
            "memory_bits": board.on_chip_bits}
    return {"resources": {k: (round(need[k]), have[k]) for k in need},
            "sources": {"pe": pe.source, "adders": adders.source, "ssm_lane": lane.source, "ssm_base": base.source}}


def check_fit(board, engine, dims, weights="bf16"):
    """The estimate, or a one-line BoardError naming the first resource that does not fit."""
    est = estimate(board, engine, dims, weights)
    for name, (need, have) in est["resources"].items():
        if need > have:
            raise BoardError(f"engine: does not fit {board.name}: {name} needs {need:,} of {have:,} "
                             f"({engine.arrays} x {engine.rows}x{engine.cols} PEs, {engine.lanes} lanes, {engine.state_slots} "
                             f"state slots, {weights} weights)")
    return est


def largest_fit(board, engine, dims, weights="bf16", lanes=None):
    """The largest configuration that fits the board with the engine's other fields kept: the
    most matrix arrays of the engine's rows x cols (a weight-stationary pass costs its fill
    latency, rows x stages + cols, so past a width more arrays add throughput where wider ones
    do not), then the most lanes (powers of two up to `lanes` or 64) while the arrays stay
    within 3/4 of their one-lane count. None when even one array with one lane does not fit."""
    from dataclasses import replace

    def fits(e):
        try:
            check_fit(board, e, dims, weights)
            return True
        except BoardError:
            return False

    best = None
    top = lanes or 64
    for n_lanes in [1 << k for k in range(0, 13) if 1 << k <= top]:
        lo, hi = 0, 1024
        while lo < hi:                                  # the most arrays that fit
            mid = (lo + hi + 1) // 2
            if fits(replace(engine, arrays=mid, lanes=n_lanes)):
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            break
        if best is not None and lo < best.arrays * 0.75:
            break
        best = replace(engine, arrays=lo, lanes=n_lanes)
    return best
