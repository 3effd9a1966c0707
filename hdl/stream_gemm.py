"""Streaming GEMM engine, output stationary: C = A x B + C0 with load, compute and drain overlapped.

No whole-matrix buffers: operands and results move as vectors (one beat = R or C words) in tile
order, so any M, N, K runs through a small array. A tile is R*s rows x C columns (s = PE
stages; the s pipeline stages of every PE hold s row groups, `pe.OSStreamPE`). Tiles run M
outer, N inner. Stream formats, tile (m0, n0), rows past M and columns past N padded:
  a_in   per row of tiles (with its first tile), for k in 0..K-1, for q in 0..s-1:
         R words, lane l = A[m0 + l*s + q, k]; held on chip (K*s beats) for the row's other tiles
  b_in   per tile, for k in 0..K-1: C words, lane j = B[k, n0 + j]
  c_in   per tile, rows m0.. in order (rows < M only): C words, lane j = C0[row, n0 + j]
  r_out  per tile, same order as c_in, IEEE accumulator words (lanes past N: padding)
C0 of tile t+1 shifts into the PEs' C0 chains while tile t computes; the results of tile t
shift out of the result chains while tile t+1 computes.

Schedule (cycles in which the engine advances; cycle 0 = first c_in beat), with RS = R*s,
D = s + R + C - 3, ks = K*s, P = max(ks, RS + D + 1) and T_t = RS + t*P:
  C0 of tile 0       cycles 0 .. RS-1
  tile t steps       T_t .. T_t + ks - 1          (one a beat per cycle, one b beat per s;
                                                   a from the on-chip copy after a row's first tile)
  C0 of tile t+1     T_t + D + 1 .. T_t + D + RS  (after the last PE took tile t's C0)
  results of tile t  T_t + ks + D .. + RS - 1     (after the last PE pushed tile t's result)
so a run of MT x NT tiles (MT = ceil(M/RS), NT = ceil(N/C)) takes
  RS + (MT*NT - 1)*P + ks + D + (M - (MT-1)*RS)   cycles to its last result,
plus one cycle for every stall: a cycle in which a beat the schedule needs has not arrived, or
the sink refuses a result. On a stall everything freezes (array, chains and counters); each
input has a one-beat holding register, so a beat offered during another stream's stall is
taken at once. (`models.perf.gemm.gemm_cycles` gives the same figure.)
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from specmx.hdl.fma import ieee_to_internal
from specmx.hdl.normalizer import normalize_word
from specmx.hdl.systolic import OSStreamArray
from specmx.models.config import GemmConfig

__all__ = ["OSStreamEngine", "MAX_SIZE"]

MAX_SIZE = 65535          # largest M, N, K (16-bit command fields)


class OSStreamEngine(wiring.Component):
    """Output-stationary streaming GEMM engine (module docstring).

    Parameters
    ----------
    engine : GemmConfig
        dataflow "os", schedule "streaming"; max_m, max_n, max_k bound the command (<= 65535).
    black_box_pes : bool
        Every PE an instance of one module (`systolic.PE_MODULE`, built from `self.array.pe()`):
        for simulation and synthesis, which then compile one PE instead of R x C copies.

    Members
    -------
    cmd : In(stream)   payload {m, n, k}; accepted when idle.
    a_in : In(stream of R in_fmt words); b_in : In(stream of C in_fmt words)
    c_in : In(stream of C acc_fmt words); r_out : Out(stream of C acc_fmt words)
    busy : Out(1)      high from cmd accepted to the last result shifted out.
    """

    def __init__(self, engine: GemmConfig, *, black_box_pes=False):
        if not isinstance(engine, GemmConfig):
            raise TypeError(f"engine must be a GemmConfig, not {engine!r}")
        if engine.dataflow != "os" or engine.schedule != "streaming":
            raise ValueError("engine: OSStreamEngine needs dataflow 'os' and schedule 'streaming'")
        for name, v in zip(("max_m", "max_n", "max_k"), engine.buffers):
            if v > MAX_SIZE:
                raise ValueError(f"{name}: must be in 1..{MAX_SIZE}, got {v}")
        self.engine = engine
        self.array = OSStreamArray(engine, black_box_pes=black_box_pes)
        cfg = self.cfg = engine.fma
        R, C = engine.rows, engine.cols
        sizes = data.StructLayout({"m": range(engine.max_m + 1), "n": range(engine.max_n + 1),
                                   "k": range(engine.max_k + 1)})
        words = lambda width, n: data.ArrayLayout(unsigned(width), n)
        super().__init__({
            "cmd": In(stream.Signature(sizes)),
            "a_in": In(stream.Signature(words(cfg.in_f.width, R))),
            "b_in": In(stream.Signature(words(cfg.in_f.width, C))),
            "c_in": In(stream.Signature(words(cfg.acc_f.width, C))),
            "r_out": Out(stream.Signature(words(cfg.acc_f.width, C))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        e, cfg = self.engine, self.cfg
        R, C, s = e.rows, e.cols, e.pe_stages
        RS, D = R * s, s + R + C - 3
        go = Signal()                                   # the engine advances this cycle
        m.submodules.array = arr = self.array
        m.d.comb += arr.en.eq(go)

        M = Signal(range(e.max_m + 1), name="M")
        N = Signal(range(e.max_n + 1), name="N")
        K = Signal(range(e.max_k + 1), name="K")
        ks = Signal(range(e.max_k * s + 1), name="ks")
        period = Signal(range(max(e.max_k * s, RS + D + 1) + 1), name="period")
        step_tile, c_tile, r_tile = (_TileWalker(m, name, e, RS, C, M, N) for name in ("st", "ct", "rt"))

        running = Signal()                              # prologue done, tiles in progress
        steps_left = Signal()                           # some tile still has steps to issue
        tc = Signal.like(period, name="tc")             # cycle within the tile period
        k = Signal(range(e.max_k + 1), name="k")
        q = Signal(range(max(s, 2)), name="q")
        c_win, r_win = _Window(m, "c", D, RS), _Window(m, "r", D, RS)

        step_on = running & steps_left & (tc < ks)
        # A of a row of tiles streams in with its first tile (n0 = 0) into `a_mem` and is
        # replayed from there for the other tiles of the row: A crosses the interface once.
        m.submodules.a_mem = a_mem = Memory(shape=self.a_in.payload.shape(), depth=e.max_k * s, init=[])
        a_wr, a_rd = a_mem.write_port(), a_mem.read_port()
        fresh_a = step_tile.n0 == 0
        step = Signal(range(e.max_k * s + 1), name="step")          # k*s + q
        step_next = Mux(step_on, Mux(step == ks - 1, 0, step + 1), step)
        m.d.comb += [a_rd.addr.eq(step_next), a_rd.en.eq(go), a_wr.addr.eq(step)]
        with m.If(go):
            m.d.sync += step.eq(step_next)
        need = {"a": step_on & fresh_a, "b": step_on & (q == 0),
                "c": c_win.active & (c_tile.m0 + c_win.index < M)}
        need_r = r_win.active & (r_tile.m0 + r_win.index < M)

        # Inputs: a beat is taken whenever needed and offered; held if the engine stalls.
        value, ok = {}, {}
        for name, port in (("a", self.a_in), ("b", self.b_in), ("c", self.c_in)):
            hold = Signal.like(port.payload, name=f"{name}_hold")
            held = Signal(name=f"{name}_held")
            m.d.comb += port.ready.eq(need[name] & ~held)
            with m.If(port.valid & port.ready & ~go):
                m.d.sync += [hold.eq(port.payload), held.eq(1)]
            with m.If(go):
                m.d.sync += held.eq(0)
            value[name] = data.View(port.payload.shape(), Mux(held, hold.as_value(), port.payload.as_value()))
            ok[name] = ~need[name] | held | port.valid
        inputs_ok = ok["a"] & ok["b"] & ok["c"]
        m.d.comb += [self.r_out.valid.eq(need_r & inputs_ok),
                     go.eq(inputs_ok & (~need_r | self.r_out.ready))]

        b_reg = Signal.like(self.b_in.payload, name="b_reg")     # the B beat of k, for q > 0
        b_now = data.View(b_reg.shape(), Mux(q == 0, value["b"].as_value(), b_reg.as_value()))
        with m.If(go & need["b"]):
            m.d.sync += b_reg.eq(value["b"])
        to_acc = (lambda w: ieee_to_internal(w, cfg)) if cfg.internal else (lambda w: w)
        m.d.comb += [a_wr.data.eq(value["a"]), a_wr.en.eq(go & need["a"])]
        a_now = data.View(a_rd.data.shape(), Mux(fresh_a, value["a"].as_value(), a_rd.data.as_value()))
        m.d.comb += [arr.a[i].eq(a_now[i]) for i in range(R)]
        m.d.comb += [arr.b[j].eq(b_now[j]) for j in range(C)]
        m.d.comb += [arr.c_in[j].eq(Mux(need["c"], to_acc(value["c"][j]), 0)) for j in range(C)]
        m.d.comb += [arr.v.eq(step_on), arr.first.eq(k == 0), arr.last.eq(k == K - 1),
                     arr.c_shift.eq(c_win.active), arr.r_shift.eq(r_win.active)]
        for j in range(C):
            word = arr.r_out[j]
            m.d.comb += self.r_out.payload[j].eq(normalize_word(m, cfg, word) if cfg.internal else word)

        m.d.comb += self.busy.eq(running | c_win.pending | r_win.pending)
        m.d.comb += self.cmd.ready.eq(~self.busy)
        with m.If(self.cmd.valid & self.cmd.ready):
            p = self.cmd.payload
            m.d.sync += [M.eq(p.m), N.eq(p.n), K.eq(p.k), ks.eq(p.k * s),
                         period.eq(Mux(p.k * s > RS + D + 1, p.k * s, RS + D + 1)),
                         tc.eq(0), k.eq(0), q.eq(0), step.eq(0), steps_left.eq(1), running.eq(0)]
            m.d.sync += step_tile.reset() + c_tile.reset() + r_tile.reset()
            m.d.sync += c_win.open()                    # C0 of tile 0: the prologue
        with m.If(go):
            c_win.advance()
            r_win.advance()
            with m.If(c_win.closing):
                c_tile.advance()
                with m.If(~running & steps_left):
                    m.d.sync += running.eq(1)          # the prologue ends with tile 0's C0
            with m.If(r_win.closing):
                r_tile.advance()
                with m.If(r_tile.last):
                    m.d.sync += running.eq(0)          # the last result has left
            with m.If(running):
                m.d.sync += tc.eq(Mux(tc == period - 1, 0, tc + 1))
            with m.If(step_on):
                with m.If((k == 0) & (q == 0) & ~step_tile.last):
                    m.d.sync += c_win.open(wait=True)  # C0 of the next tile
                with m.If(q == s - 1):
                    m.d.sync += [q.eq(0), k.eq(Mux(k == K - 1, 0, k + 1))]
                    with m.If(k == K - 1):
                        m.d.sync += r_win.open(wait=True)    # results of this tile
                        step_tile.advance()
                        with m.If(step_tile.last):
                            m.d.sync += steps_left.eq(0)
                with m.Else():
                    m.d.sync += q.eq(q + 1)
        return m


class _Window:
    """A chain-shift window: `open(wait=True)` starts it D+1 cycles later (after the last PE of
    the wavefront), `open()` at once; it is `active` for RS advancing cycles, `index` counting
    them from 0, and `closing` on its last. `pending` while waiting or active."""

    def __init__(self, m, name, D, RS):
        self.m, self.D, self.RS = m, D, RS
        self.pos = Signal(range(D + RS + 2), name=f"{name}_pos")     # 0: closed
        self.active = Signal(name=f"{name}_active")
        self.index = Signal(range(RS + 1), name=f"{name}_index")
        self.closing = Signal(name=f"{name}_closing")
        self.pending = Signal(name=f"{name}_pending")
        m.d.comb += [self.active.eq(self.pos >= D + 1), self.index.eq(self.pos - (D + 1)),
                     self.closing.eq(self.pos == D + RS), self.pending.eq(self.pos != 0)]

    def open(self, wait=False):
        return [self.pos.eq(1 if wait else self.D + 1)]

    def advance(self):
        with self.m.If(self.closing):
            self.m.d.sync += self.pos.eq(0)
        with self.m.Elif(self.pending):
            self.m.d.sync += self.pos.eq(self.pos + 1)


class _TileWalker:
    """Tile position (m0, n0) in tile order (N inner, M outer); `last` on the final tile."""

    def __init__(self, m, name, e, RS, C, M, N):
        self.m, self.RS, self.C, self.N = m, RS, C, N
        self.m0 = Signal(range(e.max_m + RS + 1), name=f"{name}_m0")
        self.n0 = Signal(range(e.max_n + C + 1), name=f"{name}_n0")
        self.last = Signal(name=f"{name}_last")
        m.d.comb += self.last.eq((self.m0 + RS >= M) & (self.n0 + C >= N))

    def reset(self):
        return [self.m0.eq(0), self.n0.eq(0)]

    def advance(self):
        with self.m.If(self.n0 + self.C >= self.N):
            self.m.d.sync += [self.n0.eq(0), self.m0.eq(self.m0 + self.RS)]
        with self.m.Else():
            self.m.d.sync += self.n0.eq(self.n0 + self.C)
