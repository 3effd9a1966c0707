"""R x C systolic arrays of FMA processing elements (`pe.py`), output- or weight-stationary.

Operands enter unskewed (one column slice of A and one row slice of B per step); the array
skews them itself with delay registers, so callers never see the wavefront.

Output stationary (`OSArray`): PE (i, j) keeps the accumulator of C[m0+i, n0+j]. A step
presents A[m0.., k] on `a` and B[k, n0..] on `b`; row i is delayed i cycles, column j is
delayed j cycles, and operands then move one PE per cycle (right for A, down for B), so PE
(i, j) sees step k at T + i + j. Each PE is an FMA whose last pipeline stage is the accumulator
register: with `pe_stages` = s it accepts one step every s cycles. The accumulators form a
column shift chain: `shift` moves every row down by one, row 0 takes `acc_in`, and `acc_out`
shows row R-1 (so loading the next tile's C0 unloads this tile's results).

Output stationary, streaming schedule (`OSStreamArray`): the same wavefront, with `OSStreamPE`s.
A step is (k, q): row group q of the tile's R*s rows at reduction index k, presented on `a`
with `v`, `first` (k == 0) and `last` (k == K-1); lane l of `a` carries tile row l*s + q and
feeds PE row R-1-l (so the column chains hold the tile's rows in order: row 0 at the bottom).
`c_shift` moves the C0 chains down one word (`c_in` enters at the top); `r_shift` moves the
result chains down one word (`r_out` shows the bottom): both R*s words long per column. All
registers hold while `en` is low.

Weight stationary (`WSArray`): PE (i, j) holds B[k0+i, n0+j], loaded through a column shift
chain (`w_shift`, `w_in` enters row 0). A row of A (A[m, k0..]) and its partial sums
(`psum_in`, C0 or the previous k-fold) enter together; row i is delayed i*s cycles, column j
j cycles; A moves right one PE per cycle, partial sums move down through each PE's s-stage FMA.
Rows with `kmask[i]` low (padding past K) pass the partial sum through unchanged. The bottom
outputs are deskewed so a whole row of results leaves together on `psum_out`, `out_valid`,
`R*s + C - 1` cycles after its inputs went in (`WSArray.latency`).

Weight stationary, streaming schedule (`WSStreamArray`): the same wavefront with `WSStreamPE`s.
The next fold's weights load while the current one computes: a beat of C words per cycle on
`wb` (beat i for PE row i; column j's word enters j cycles late), `wt` high with beat 0; a row
with `swap` high (the fold's first) switches every PE to the loaded weights as it passes.
"""

from amaranth.hdl import EnableInserter, Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from specmx.hdl.pe import OSPE, OSStreamPE, WSPE, WSStreamPE, BlackBox, delay
from specmx.models.config import GemmConfig

__all__ = ["OSArray", "OSStreamArray", "WSArray", "WSStreamArray", "PE_MODULE", "array_for"]

PE_MODULE = "specmx_pe"


class _Array(wiring.Component):
    """Common constructor: takes the geometry and PE arithmetic from a `GemmConfig` and builds
    the signature from `_ports`.

    With `black_box_pes` every PE becomes an instance of one module named `PE_MODULE` (see
    `pe.BlackBox`); `self.pe()` is that PE, to be converted on its own. Synthesis only."""

    def __init__(self, engine: GemmConfig, *, black_box_pes=False):
        if not isinstance(engine, GemmConfig):
            raise TypeError(f"engine must be a GemmConfig, not {engine!r}")
        self.engine = engine
        self.cfg, self.rows, self.cols, self.pe_stages = engine.fma, engine.rows, engine.cols, engine.pe_stages
        self.black_box_pes = black_box_pes
        cfg = engine.fma
        lane_in = lambda n: data.ArrayLayout(unsigned(cfg.in_f.width), n)
        lane_acc = lambda n: data.ArrayLayout(unsigned(cfg.acc_width), n)
        super().__init__(self._ports(lane_in, lane_acc))

    def pe(self):
        return self.PE(self.cfg, self.pe_stages)

    def _add_pe(self, m, i, j):
        pe = BlackBox(self.PE.ports(self.cfg), PE_MODULE) if self.black_box_pes else self.pe()
        m.submodules[f"pe_{i}_{j}"] = pe
        return pe


class OSArray(_Array):
    """Output-stationary array (module docstring). Parameter: a GemmConfig."""

    PE = OSPE

    def _ports(self, lane_in, lane_acc):
        return {"a": In(lane_in(self.rows)), "b": In(lane_in(self.cols)), "step": In(1),
                "shift": In(1), "acc_in": In(lane_acc(self.cols)), "acc_out": Out(lane_acc(self.cols))}

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        # Skew at the edges; the PEs then pass operands one hop per cycle.
        b_down = [delay(m, self.b[j], j, f"b_skew{j}") for j in range(C)]
        acc_above = [self.acc_in[j] for j in range(C)]
        for i in range(R):
            a_here, v_here = delay(m, self.a[i], i, f"a_skew{i}"), delay(m, self.step, i, f"v_skew{i}")
            for j in range(C):
                pe = self._add_pe(m, i, j)
                m.d.comb += [pe.a.eq(a_here), pe.v.eq(v_here), pe.b.eq(b_down[j]),
                             pe.shift.eq(self.shift), pe.acc_in.eq(acc_above[j])]
                a_here, v_here, b_down[j], acc_above[j] = pe.a_out, pe.v_out, pe.b_out, pe.acc
        for j in range(C):
            m.d.comb += self.acc_out[j].eq(acc_above[j])
        return m


class OSStreamArray(_Array):
    """Output-stationary array of the streaming schedule (module docstring). Parameter: a
    GemmConfig."""

    PE = OSStreamPE
    STEP_FLAGS = ("v", "first", "last")

    def _ports(self, lane_in, lane_acc):
        return {"en": In(1), "a": In(lane_in(self.rows)), "b": In(lane_in(self.cols)), "v": In(1), "first": In(1),
                "last": In(1), "c_shift": In(1), "c_in": In(lane_acc(self.cols)), "r_shift": In(1),
                "r_out": Out(lane_acc(self.cols))}

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        b_down = [delay(m, self.b[j], j, f"b_skew{j}") for j in range(C)]
        c_above = [self.c_in[j] for j in range(C)]
        r_above = [0] * C
        for i in range(R):
            a_here = delay(m, self.a[R - 1 - i], i, f"a_skew{i}")
            flags = {f: delay(m, getattr(self, f), i, f"{f}_skew{i}") for f in self.STEP_FLAGS}
            for j in range(C):
                pe = self._add_pe(m, i, j)
                m.d.comb += [pe.en.eq(self.en), pe.a.eq(a_here), pe.b.eq(b_down[j]), pe.c_shift.eq(self.c_shift),
                             pe.r_shift.eq(self.r_shift), pe.c_in.eq(c_above[j]), pe.r_in.eq(r_above[j])]
                m.d.comb += [getattr(pe, f).eq(flags[f]) for f in self.STEP_FLAGS]
                a_here, b_down[j], c_above[j], r_above[j] = pe.a_out, pe.b_out, pe.c_out, pe.r_out
                flags = {f: getattr(pe, f"{f}_out") for f in self.STEP_FLAGS}
        for j in range(C):
            m.d.comb += self.r_out[j].eq(r_above[j])
        return EnableInserter(self.en)(m)


class WSArray(_Array):
    """Weight-stationary array (module docstring). Parameter: a GemmConfig."""

    PE = WSPE

    def _ports(self, lane_in, lane_acc):
        return {"a": In(lane_in(self.rows)), "a_valid": In(1), "kmask": In(self.rows),
                "psum_in": In(lane_acc(self.cols)), "w_in": In(lane_in(self.cols)), "w_shift": In(1),
                "psum_out": Out(lane_acc(self.cols)), "out_valid": Out(1)}

    @property
    def latency(self):
        return self.rows * self.pe_stages + self.cols - 1

    def elaborate(self, platform):
        m = Module()
        R, C, s = self.rows, self.cols, self.pe_stages
        psum = [delay(m, self.psum_in[j], j, f"p_skew{j}") for j in range(C)]
        w_above = [self.w_in[j] for j in range(C)]
        for i in range(R):
            a_here = delay(m, self.a[i], i * s, f"a_skew{i}")
            keep = delay(m, self.kmask[i], i * s, f"k_skew{i}")
            for j in range(C):
                pe = self._add_pe(m, i, j)
                m.d.comb += [pe.a.eq(a_here), pe.keep.eq(keep), pe.psum_in.eq(psum[j]),
                             pe.w_in.eq(w_above[j]), pe.w_shift.eq(self.w_shift)]
                a_here, keep, psum[j], w_above[j] = pe.a_out, pe.keep_out, pe.psum_out, pe.w
        self._deskew(m, psum)
        return m

    def _deskew(self, m, psum):
        """Bottom outputs realigned so a whole row of results leaves together, with its valid."""
        C = self.cols
        for j in range(C):
            m.d.comb += self.psum_out[j].eq(delay(m, psum[j], C - 1 - j, f"deskew{j}"))
        m.d.comb += self.out_valid.eq(delay(m, self.a_valid, self.latency, "valid"))


class WSStreamArray(WSArray):
    """Weight-stationary array of the streaming schedule (module docstring). Parameter: a
    GemmConfig. Same latency and output deskew as `WSArray`."""

    PE = WSStreamPE

    def _ports(self, lane_in, lane_acc):
        return {"en": In(1), "a": In(lane_in(self.rows)), "a_valid": In(1), "kmask": In(self.rows), "swap": In(1),
                "psum_in": In(lane_acc(self.cols)), "wb": In(lane_in(self.cols)), "wt": In(1),
                "psum_out": Out(lane_acc(self.cols)), "out_valid": Out(1)}

    def elaborate(self, platform):
        m = Module()
        R, C, s = self.rows, self.cols, self.pe_stages
        psum = [delay(m, self.psum_in[j], j, f"p_skew{j}") for j in range(C)]
        wb = [delay(m, self.wb[j], j, f"wb_skew{j}") for j in range(C)]
        wt = [delay(m, self.wt, j, f"wt_skew{j}") for j in range(C)]
        for i in range(R):
            a_here = delay(m, self.a[i], i * s, f"a_skew{i}")
            keep = delay(m, self.kmask[i], i * s, f"k_skew{i}")
            swap = delay(m, self.swap, i * s, f"s_skew{i}")
            for j in range(C):
                pe = self._add_pe(m, i, j)
                m.d.comb += [pe.en.eq(self.en), pe.a.eq(a_here), pe.keep.eq(keep), pe.swap.eq(swap),
                             pe.psum_in.eq(psum[j]), pe.wb_in.eq(wb[j]), pe.wt_in.eq(wt[j])]
                a_here, keep, swap, psum[j], wb[j], wt[j] = (pe.a_out, pe.keep_out, pe.swap_out, pe.psum_out,
                                                             pe.wb_out, pe.wt_out)
        self._deskew(m, psum)
        return EnableInserter(self.en)(m)


def array_for(engine: GemmConfig, **kwargs):
    """The array class of `engine.dataflow`, built for `engine`."""
    if engine.schedule == "streaming":
        return {"os": OSStreamArray, "ws": WSStreamArray}[engine.dataflow](engine, **kwargs)
    return (OSArray if engine.dataflow == "os" else WSArray)(engine, **kwargs)
