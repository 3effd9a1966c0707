"""GEMM engine: C = A x B + C0 on a systolic array, with on-chip buffers and stream ports.

A run: a `cmd` (m, n, k) is accepted; A (m x k), B (k x n) and C0 (m x n) stream in row-major,
concurrently, into on-chip memories (`amaranth.lib.memory`); the array computes tile by tile
(folding over M, N and K, padded edge tiles); the results stream out row-major on `r_out`
(IEEE accumulator words; with policy "internal" through one exact edge normalizer). Back-
pressure on `r_out` stalls the drain without losing data.

Cycle schedule (what `models.perf.gemm_cycles` reproduces; cycle 0 = first operand accepted,
sources always valid, sink always ready):
  load     L + 1 cycles, L = max(M*K, K*N, M*N)
  compute  OS: MT*NT*(2R + C + K*s - 1) + R + 1      (per tile: C0 shift-in/result shift-out
                                                      R+1, K steps every s cycles, drain of
                                                      the wavefront R+C+s-3)
           WS: NT*KT*(M + R + R*s + C + 1)           (per fold: weight load R+1, M rows,
                                                      pipeline drain R*s + C)
  drain    M*N + 1 (one result per cycle after a 1-cycle memory read)
where MT, NT, KT = ceil(M/R), ceil(N/C), ceil(K/R) and s = pe_stages.
"""

from math import ceil

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from specmx.hdl.fma import ieee_to_internal
from specmx.hdl.normalizer import normalize_word
from specmx.hdl.systolic import array_for
from specmx.models.config import GemmConfig

__all__ = ["GEMMEngine"]


class GEMMEngine(wiring.Component):
    """Systolic GEMM engine.

    Parameters
    ----------
    engine : GemmConfig
        PE arithmetic (`engine.fma`), array size R x C, dataflow (fixed at generation time),
        FMA pipeline stages per PE, and the largest problem the buffers hold (max_m, max_n,
        max_k; at most 4096 each here, so the counters stay 16 bits wide).
    black_box_pes : bool
        Every PE an instance of one module (`systolic.PE_MODULE`, built from `self.array.pe()`),
        so a simulator or synthesis tool compiles the PE once.

    Members
    -------
    cmd : In(stream)    payload {m, n, k}; accepted when idle.
    a_in, b_in : In(stream of in_fmt words)    A and B, row-major.
    c_in : In(stream of acc_fmt words)         C0, row-major.
    r_out : Out(stream of acc_fmt words)       C, row-major.
    busy : Out(1)       high from cmd accepted to the last result delivered.
    """

    MAX_BUFFER = 4096

    def __init__(self, engine: GemmConfig, *, black_box_pes=False):
        if not isinstance(engine, GemmConfig):
            raise TypeError(f"engine must be a GemmConfig, not {engine!r}")
        for name, v in zip(("max_m", "max_n", "max_k"), engine.buffers):
            if v > self.MAX_BUFFER:
                raise ValueError(f"{name}: must be in 1..{self.MAX_BUFFER}, got {v}")
        self.engine = engine
        self.array = array_for(engine, black_box_pes=black_box_pes)
        cfg = engine.fma
        self.cfg, self.rows, self.cols, self.dataflow = cfg, engine.rows, engine.cols, engine.dataflow
        self.pe_stages = engine.pe_stages
        max_m, max_n, max_k = self.max_m, self.max_n, self.max_k = engine.buffers
        sizes = data.StructLayout({"m": range(max_m + 1), "n": range(max_n + 1), "k": range(max_k + 1)})
        super().__init__({
            "cmd": In(stream.Signature(sizes)),
            "a_in": In(stream.Signature(cfg.in_f.width)),
            "b_in": In(stream.Signature(cfg.in_f.width)),
            "c_in": In(stream.Signature(cfg.acc_f.width)),
            "r_out": Out(stream.Signature(cfg.acc_f.width)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, R, C, s = self.cfg, self.rows, self.cols, self.pe_stages
        os_flow = self.dataflow == "os"
        m.submodules.array = arr = self.array
        max_k = self.max_k
        MT, NT, KT = ceil(self.max_m / R), ceil(self.max_n / C), ceil(self.max_k / R)
        w_in, w_ieee, w_acc = cfg.in_f.width, cfg.acc_f.width, cfg.acc_width

        # --- buffers ------------------------------------------------------------------------
        a_depth = MT * max_k if os_flow else self.max_m * KT
        m.submodules.a_mem = a_mem = Memory(shape=data.ArrayLayout(unsigned(w_in), R), depth=a_depth, init=[])
        m.submodules.b_mem = b_mem = Memory(shape=data.ArrayLayout(unsigned(w_in), C), depth=NT * max_k, init=[])
        c_depth = MT * R * NT
        m.submodules.c_mem = c_mem = Memory(shape=data.ArrayLayout(unsigned(w_ieee), C), depth=c_depth, init=[])
        m.submodules.o_mem = o_mem = Memory(shape=data.ArrayLayout(unsigned(w_acc), C), depth=c_depth, init=[])
        a_wr, b_wr, c_wr = (mem.write_port(granularity=1) for mem in (a_mem, b_mem, c_mem))
        o_wr = o_mem.write_port()
        a_rd, b_rd, c_rd, o_rd = (mem.read_port() for mem in (a_mem, b_mem, c_mem, o_mem))

        M = Signal(range(self.max_m + 1), name="M")
        N = Signal(range(self.max_n + 1), name="N")
        K = Signal(range(self.max_k + 1), name="K")

        # --- loaders: row-major streams into (address, lane) slots, concurrently ------------
        load = Signal()
        wa = _Walker(m, "a", R, R)
        wb = _Walker(m, "b", C, C)
        wc = _Walker(m, "c", C, C)
        if os_flow:
            a_addr, a_lane = wa.row_tile * max_k + wa.col, wa.row_lane      # entry (m//R, k)
        else:
            a_addr, a_lane = wa.row * KT + wa.col_tile, wa.col_lane         # entry (m, k//R)
        b_addr, b_lane = wb.col_tile * max_k + wb.row, wb.col_lane          # entry (n//C, k)
        c_addr, c_lane = wc.row * NT + wc.col_tile, wc.col_lane             # entry (m, n//C)
        for port, wr, walker, addr, lane, rows, cols in (
                (self.a_in, a_wr, wa, a_addr, a_lane, M, K), (self.b_in, b_wr, wb, b_addr, b_lane, K, N),
                (self.c_in, c_wr, wc, c_addr, c_lane, M, N)):
            m.d.comb += [port.ready.eq(load & ~walker.done), wr.addr.eq(addr)]
            m.d.comb += [wr.data[i].eq(port.payload) for i in range(len(wr.en))]
            with m.If(port.valid & port.ready):
                m.d.comb += wr.en.eq(1 << lane)
                walker.advance(rows, cols)
        loaded = wa.done & wb.done & wc.done

        # --- compute sequencing -------------------------------------------------------------
        m0 = Signal(range(MT * R + 1))             # first row of the current M tile (OS)
        mt = Signal(range(MT + 1))
        n0 = Signal(range(NT * C + 1))
        nt = Signal(range(NT + 1))
        k0 = Signal(range(KT * R + 1))             # first k of the current K fold (WS)
        kt = Signal(range(KT + 1))
        cnt = Signal(range(max(self.max_m, self.max_k, R) * 8 + 64))   # phase-local counter
        step = Signal(range(max_k + 1))
        issue = Signal()                            # a read for the array was issued last cycle
        m.d.sync += issue.eq(0)
        if cfg.internal:
            to_acc = lambda word: ieee_to_internal(word, cfg)
        else:
            to_acc = lambda word: word

        # --- drain: o_mem row-major -> (edge normalizer) -> r_out -----------------------------
        wd = _Walker(m, "d", C, C)
        have = Signal()
        lane_q = Signal(range(C))
        draining = Signal()
        word = o_rd.data[lane_q] if C > 1 else o_rd.data[0]
        result = normalize_word(m, cfg, word) if cfg.internal else word
        m.d.comb += [self.r_out.payload.eq(result), self.r_out.valid.eq(have)]
        fetch = draining & ~wd.done & (~have | self.r_out.ready)

        wait_os = R + C + s - 3
        first, last_tile = Signal(), Signal()
        e = _Env(locals())
        (self._os_setup if os_flow else self._ws_setup)(m, e)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [M.eq(self.cmd.payload.m), N.eq(self.cmd.payload.n), K.eq(self.cmd.payload.k)]
                    m.d.sync += wa.reset() + wb.reset() + wc.reset() + wd.reset()
                    m.d.sync += [m0.eq(0), mt.eq(0), n0.eq(0), nt.eq(0), k0.eq(0), kt.eq(0), cnt.eq(0)]
                    m.d.sync += [first.eq(1), last_tile.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [load.eq(1), self.busy.eq(1)]
                with m.If(loaded):
                    m.next = "PRE" if os_flow else "WLOAD"
            (self._os_states if os_flow else self._ws_states)(m, e)
            with m.State("DRAIN"):
                m.d.comb += [self.busy.eq(1), draining.eq(1)]
                m.d.comb += [o_rd.addr.eq(wd.row * NT + wd.col_tile), o_rd.en.eq(fetch)]
                with m.If(fetch):
                    m.d.sync += [have.eq(1), lane_q.eq(wd.col_lane)]
                    wd.advance(M, N)
                with m.Elif(self.r_out.ready):
                    m.d.sync += have.eq(0)
                with m.If(wd.done & (~have | self.r_out.ready)):
                    m.next = "IDLE"
        return m

    def _os_setup(self, m, e):
        """Output stationary wiring: array operands come straight from the read ports, one
        cycle after the read."""
        arr, R, C = e.arr, e.R, e.C
        m.d.comb += [arr.step.eq(e.issue)]
        m.d.comb += [arr.a[i].eq(e.a_rd.data[i]) for i in range(R)]
        m.d.comb += [arr.b[j].eq(e.b_rd.data[j]) for j in range(C)]
        m.d.comb += [arr.acc_in[j].eq(e.to_acc(e.c_rd.data[j])) for j in range(C)]
        e.prev_m0 = Signal.like(e.m0)
        e.prev_nt = Signal.like(e.nt)

    def _os_states(self, m, e):
        """Output stationary: per tile, C0 shift-in (and previous results out), K steps, wait."""
        arr, R, C, s, max_k = e.arr, e.R, e.C, e.s, e.max_k
        first, last_tile, prev_m0, prev_nt = e.first, e.last_tile, e.prev_m0, e.prev_nt
        with m.State("PRE"):
            # cycles 0..R-1: read C0 row m0+R-1-cnt; cycles 1..R: shift, write row leaving.
            m.d.comb += e.busy.eq(1)
            row_in = e.m0 + (R - 1) - e.cnt
            m.d.comb += [e.c_rd.addr.eq(row_in * e.NT + e.nt), e.c_rd.en.eq(1)]
            row_out = prev_m0 + (R - 1) - (e.cnt - 1)
            with m.If(e.cnt >= 1):
                m.d.comb += arr.shift.eq(1)
                m.d.comb += [e.o_wr.addr.eq(row_out * e.NT + prev_nt), e.o_wr.data.eq(arr.acc_out)]
                m.d.comb += e.o_wr.en.eq(~first & (row_out < e.M))
            with m.If(e.cnt == R):
                m.d.sync += [e.cnt.eq(0), e.step.eq(0), first.eq(0)]
                m.next = "STREAM"
                with m.If(last_tile):
                    m.next = "DRAIN"
            with m.Else():
                m.d.sync += e.cnt.eq(e.cnt + 1)
        with m.State("STREAM"):
            m.d.comb += e.busy.eq(1)
            m.d.comb += [e.a_rd.addr.eq(e.mt * max_k + e.step), e.b_rd.addr.eq(e.nt * max_k + e.step)]
            with m.If(e.cnt == 0):
                m.d.comb += [e.a_rd.en.eq(1), e.b_rd.en.eq(1)]
                m.d.sync += [e.issue.eq(1), e.step.eq(e.step + 1)]
                with m.If(e.step == e.K - 1):
                    m.d.sync += [e.cnt.eq(0), prev_m0.eq(e.m0), prev_nt.eq(e.nt)]
                    # advance to the next tile (N inner, M outer)
                    with m.If(e.n0 + C >= e.N):
                        m.d.sync += [e.n0.eq(0), e.nt.eq(0), e.m0.eq(e.m0 + R), e.mt.eq(e.mt + 1)]
                        with m.If(e.m0 + R >= e.M):
                            m.d.sync += last_tile.eq(1)
                    with m.Else():
                        m.d.sync += [e.n0.eq(e.n0 + C), e.nt.eq(e.nt + 1)]
                    m.next = "WAIT" if e.wait_os > 0 else "PRE"
                with m.Elif(s > 1):
                    m.d.sync += e.cnt.eq(1)
            with m.Else():
                m.d.sync += e.cnt.eq(Mux(e.cnt == s - 1, 0, e.cnt + 1))
        with m.State("WAIT"):
            m.d.comb += e.busy.eq(1)
            with m.If(e.cnt == e.wait_os - 1):
                m.d.sync += e.cnt.eq(0)
                m.next = "PRE"
            with m.Else():
                m.d.sync += e.cnt.eq(e.cnt + 1)

    def _ws_setup(self, m, e):
        """Weight stationary wiring: weights, A rows and partial sums from the read ports;
        results written back as they leave the array."""
        arr, R, C = e.arr, e.R, e.C
        e.kmask = kmask = Signal(R)
        m.d.comb += arr.kmask.eq(kmask)
        m.d.comb += [arr.w_in[j].eq(e.b_rd.data[j]) for j in range(C)]
        m.d.comb += [arr.a[i].eq(e.a_rd.data[i]) for i in range(R)]
        m.d.comb += arr.a_valid.eq(e.issue)
        e.from_c0 = from_c0 = Signal()
        for j in range(C):
            m.d.comb += arr.psum_in[j].eq(Mux(from_c0, e.to_acc(e.c_rd.data[j]), e.o_rd.data[j]))
        e.out_row = out_row = Signal(range(self.max_m + 1))
        with m.If(arr.out_valid):
            m.d.comb += [e.o_wr.addr.eq(out_row * e.NT + e.nt), e.o_wr.data.eq(arr.psum_out), e.o_wr.en.eq(1)]
            m.d.sync += out_row.eq(out_row + 1)

    def _ws_states(self, m, e):
        """Weight stationary: per (N tile, K fold), weight load, M rows streamed, pipeline drain."""
        arr, R, C, s, max_k = e.arr, e.R, e.C, e.s, e.max_k
        kmask, from_c0, out_row = e.kmask, e.from_c0, e.out_row
        with m.State("WLOAD"):
            # cycles 0..R-1: read B row k0+R-1-cnt; cycles 1..R: shift it into the weight chain.
            m.d.comb += e.busy.eq(1)
            m.d.comb += [e.b_rd.addr.eq(e.nt * max_k + e.k0 + (R - 1) - e.cnt), e.b_rd.en.eq(1)]
            m.d.comb += arr.w_shift.eq(e.cnt >= 1)
            m.d.sync += kmask.eq(Cat(*((e.k0 + i) < e.K for i in range(R))))
            with m.If(e.cnt == R):
                m.d.sync += [e.cnt.eq(0), from_c0.eq(e.kt == 0), out_row.eq(0)]
                m.next = "STREAM"
            with m.Else():
                m.d.sync += e.cnt.eq(e.cnt + 1)
        with m.State("STREAM"):
            m.d.comb += e.busy.eq(1)
            m.d.comb += [e.a_rd.addr.eq(e.cnt * e.KT + e.kt), e.a_rd.en.eq(1),
                         e.c_rd.addr.eq(e.cnt * e.NT + e.nt), e.c_rd.en.eq(1),
                         e.o_rd.addr.eq(e.cnt * e.NT + e.nt), e.o_rd.en.eq(1)]
            m.d.sync += e.issue.eq(1)
            with m.If(e.cnt == e.M - 1):
                m.d.sync += e.cnt.eq(0)
                m.next = "WAIT"
            with m.Else():
                m.d.sync += e.cnt.eq(e.cnt + 1)
        with m.State("WAIT"):
            # the last row leaves the array `latency` cycles after it went in
            m.d.comb += e.busy.eq(1)
            with m.If(e.cnt == arr.latency):
                m.d.sync += e.cnt.eq(0)
                with m.If(e.k0 + R >= e.K):
                    m.d.sync += [e.k0.eq(0), e.kt.eq(0), e.n0.eq(e.n0 + C), e.nt.eq(e.nt + 1)]
                    with m.If(e.n0 + C >= e.N):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "WLOAD"
                with m.Else():
                    m.d.sync += [e.k0.eq(e.k0 + R), e.kt.eq(e.kt + 1)]
                    m.next = "WLOAD"
            with m.Else():
                m.d.sync += e.cnt.eq(e.cnt + 1)


class _Env:
    """Attribute access to the local names `elaborate` shares with the per-dataflow states."""

    def __init__(self, env):
        self.__dict__.update(env)
        self.busy = env["self"].busy


class _Walker:
    """Row-major position over a matrix: (row, col) plus row and column split into (tile, lane)
    for the given lane counts, advanced by one element per `advance`."""

    def __init__(self, m, name, row_lanes, col_lanes):
        self.m, self.row_lanes, self.col_lanes = m, row_lanes, col_lanes
        self.row = Signal(16, name=f"{name}_row")
        self.col = Signal(16, name=f"{name}_col")
        self.row_tile = Signal(16, name=f"{name}_row_tile")
        self.row_lane = Signal(range(max(row_lanes, 2)), name=f"{name}_row_lane")
        self.col_tile = Signal(16, name=f"{name}_col_tile")
        self.col_lane = Signal(range(max(col_lanes, 2)), name=f"{name}_col_lane")
        self.done = Signal(name=f"{name}_done")

    def reset(self):
        return [sig.eq(0) for sig in (self.row, self.col, self.row_tile, self.row_lane,
                                      self.col_tile, self.col_lane, self.done)]

    def _wrap(self, tile, lane, lanes):
        with self.m.If(lane == lanes - 1):
            self.m.d.sync += [lane.eq(0), tile.eq(tile + 1)]
        with self.m.Else():
            self.m.d.sync += lane.eq(lane + 1)

    def advance(self, rows, cols):
        m = self.m
        with m.If(self.col == cols - 1):
            m.d.sync += [self.col.eq(0), self.col_tile.eq(0), self.col_lane.eq(0), self.row.eq(self.row + 1)]
            self._wrap(self.row_tile, self.row_lane, self.row_lanes)
            with m.If(self.row == rows - 1):
                m.d.sync += self.done.eq(1)
        with m.Else():
            m.d.sync += self.col.eq(self.col + 1)
            self._wrap(self.col_tile, self.col_lane, self.col_lanes)
