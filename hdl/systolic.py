"""R x C systolic arrays of FMA processing elements, output- or weight-stationary.

Operands enter unskewed (one column slice of A and one row slice of B per step); the array
skews them itself with delay registers, so callers never see the wavefront.

Output stationary (`OSArray`): PE (i, j) keeps the accumulator of C[m0+i, n0+j]. A step
presents A[m0.., k] on `a` and B[k, n0..] on `b`; row i is delayed i cycles, column j is
delayed j cycles, and operands then move one PE per cycle (right for A, down for B), so PE
(i, j) sees step k at T + i + j. Each PE is an FMA whose last pipeline stage is the accumulator
register: with `pe_stages` = s it accepts one step every s cycles. The accumulators form a
column shift chain: `shift` moves every row down by one, row 0 takes `acc_in`, and `acc_out`
shows row R-1 (so loading the next tile's C0 unloads this tile's results).

Weight stationary (`WSArray`): PE (i, j) holds B[k0+i, n0+j], loaded through a column shift
chain (`w_shift`, `w_in` enters row 0). A row of A (A[m, k0..]) and its partial sums
(`psum_in`, C0 or the previous k-fold) enter together; row i is delayed i*s cycles, column j
j cycles; A moves right one PE per cycle, partial sums move down through each PE's s-stage FMA.
Rows with `kmask[i]` low (padding past K) pass the partial sum through unchanged. The bottom
outputs are deskewed so a whole row of results leaves together on `psum_out`, `out_valid`,
`R*s + C - 1` cycles after its inputs went in (`WSArray.latency`).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..models.fma import FMAConfig
from .fma import PREFERENCE, _Pipeline, fma_datapath

__all__ = ["OSArray", "WSArray"]


def _delay(m, value, cycles, name):
    """`value` delayed by `cycles` registers (0: itself)."""
    for n in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{n}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _check(cfg, rows, cols, pe_stages):
    if not isinstance(cfg, FMAConfig):
        raise TypeError(f"cfg must be an FMAConfig, not {cfg!r}")
    for name, v in (("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 64:
            raise ValueError(f"{name}: must be an integer in 1..64, got {v!r}")
    if isinstance(pe_stages, bool) or not isinstance(pe_stages, int) or not 1 <= pe_stages <= 5:
        raise ValueError(f"pe_stages: must be an integer in 1..5, got {pe_stages!r}")


class _Array(wiring.Component):
    """Common constructor: checks the parameters and builds the signature from `_ports`."""

    def __init__(self, cfg: FMAConfig, rows: int, cols: int, pe_stages: int = 1):
        _check(cfg, rows, cols, pe_stages)
        self.cfg, self.rows, self.cols, self.pe_stages = cfg, rows, cols, pe_stages
        lane_in = lambda n: data.ArrayLayout(unsigned(cfg.in_f.width), n)
        lane_acc = lambda n: data.ArrayLayout(unsigned(cfg.acc_width), n)
        super().__init__(self._ports(lane_in, lane_acc))


class OSArray(_Array):
    """Output-stationary array (module docstring). Parameters: cfg, rows, cols, pe_stages."""

    def _ports(self, lane_in, lane_acc):
        return {"a": In(lane_in(self.rows)), "b": In(lane_in(self.cols)), "step": In(1),
                "shift": In(1), "acc_in": In(lane_acc(self.cols)), "acc_out": Out(lane_acc(self.cols))}

    def elaborate(self, platform):
        m = Module()
        R, C, s, cfg = self.rows, self.cols, self.pe_stages, self.cfg
        acc = [[Signal(cfg.acc_width, name=f"acc_{i}_{j}") for j in range(C)] for i in range(R)]
        # Skew at the edges, then one register per PE hop.
        a_row = [_delay(m, self.a[i], i, f"a_skew{i}") for i in range(R)]
        v_row = [_delay(m, self.step, i, f"v_skew{i}") for i in range(R)]
        b_col = [_delay(m, self.b[j], j, f"b_skew{j}") for j in range(C)]
        cuts = set(PREFERENCE[1:s])         # s-1 internal cuts; the accumulator is the last stage
        for i in range(R):
            a_here, v_here = a_row[i], v_row[i]
            for j in range(C):
                b_here = b_col[j] if i == 0 else b_down[j]
                pipe = _Pipeline(m, cuts, 1)
                result = fma_datapath(m, cfg, a_here, b_here, acc[i][j], pipe)
                done = _delay(m, v_here, s - 1, f"pe{i}_{j}_v")
                with m.If(self.shift):
                    m.d.sync += acc[i][j].eq(self.acc_in[j] if i == 0 else acc[i - 1][j])
                with m.Elif(done):
                    m.d.sync += acc[i][j].eq(result)
                # pass operands on to the right and down
                a_next, v_next = Signal.like(a_here, name=f"a_{i}_{j}"), Signal(name=f"v_{i}_{j}")
                m.d.sync += [a_next.eq(a_here), v_next.eq(v_here)]
                b_next = Signal.like(b_here, name=f"b_{i}_{j}")
                m.d.sync += b_next.eq(b_here)
                if j == 0:
                    b_down_row = []
                b_down_row.append(b_next)
                a_here, v_here = a_next, v_next
            b_down = b_down_row
        for j in range(C):
            m.d.comb += self.acc_out[j].eq(acc[R - 1][j])
        return m


class WSArray(_Array):
    """Weight-stationary array (module docstring). Parameters: cfg, rows, cols, pe_stages."""

    def _ports(self, lane_in, lane_acc):
        return {"a": In(lane_in(self.rows)), "a_valid": In(1), "kmask": In(self.rows),
                "psum_in": In(lane_acc(self.cols)), "w_in": In(lane_in(self.cols)), "w_shift": In(1),
                "psum_out": Out(lane_acc(self.cols)), "out_valid": Out(1)}

    @property
    def latency(self):
        return self.rows * self.pe_stages + self.cols - 1

    def elaborate(self, platform):
        m = Module()
        R, C, s, cfg = self.rows, self.cols, self.pe_stages, self.cfg
        w = [[Signal(cfg.in_f.width, name=f"w_{i}_{j}") for j in range(C)] for i in range(R)]
        with m.If(self.w_shift):
            for j in range(C):
                m.d.sync += w[0][j].eq(self.w_in[j])
                for i in range(1, R):
                    m.d.sync += w[i][j].eq(w[i - 1][j])
        cuts = set(PREFERENCE[:s])           # s stages, the last one ("out") is the psum register
        psum = [_delay(m, self.psum_in[j], j, f"p_skew{j}") for j in range(C)]
        for i in range(R):
            a_here = _delay(m, self.a[i], i * s, f"a_skew{i}")
            keep = _delay(m, self.kmask[i], i * s, f"k_skew{i}")
            for j in range(C):
                pipe = _Pipeline(m, cuts - {"out"}, 1)
                result = fma_datapath(m, cfg, a_here, w[i][j], psum[j], pipe)
                bypass = _delay(m, psum[j], s - 1, f"byp{i}_{j}")
                keep_late = _delay(m, keep, s - 1, f"keep{i}_{j}")
                out = Signal(cfg.acc_width, name=f"psum_{i}_{j}")
                m.d.sync += out.eq(Mux(keep_late, result, bypass))
                psum[j] = out
                a_next = Signal.like(a_here, name=f"a_{i}_{j}")
                k_next = Signal(name=f"k_{i}_{j}")
                m.d.sync += [a_next.eq(a_here), k_next.eq(keep)]
                a_here, keep = a_next, k_next
        for j in range(C):
            m.d.comb += self.psum_out[j].eq(_delay(m, psum[j], C - 1 - j, f"deskew{j}"))
        m.d.comb += self.out_valid.eq(_delay(m, self.a_valid, self.latency, "valid"))
        return m
