"""Streaming GEMM engines: C = A x B + C0 with load, compute and drain overlapped.

Output stationary (`OSStreamEngine`):

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

Weight stationary (`WSStreamEngine`): folds of R weight rows x C columns (`pe.WSStreamPE`, the
next fold's weights load while the current one computes), M in blocks of MB = 2R rows, folds
in the order block, k fold, n fold (N innermost):
  b_in   per fold (m0, k0, n0): R beats of C words, beat i = B[k0 + i, n0 ..]
  a_in   per (block, k fold): a beat of R words per row, A[m, k0 .. k0+R-1]; kept on chip (MB
         beats) for the other n folds
  c_in   per (block, n fold), kt = 0 pass: the block's rows of C0[., n0 ..]
  r_out  per (block, n fold), last k pass: the block's result rows
Partial sums between k folds stay in an on-chip buffer (MB x ceil(max_n/C) rows of C words).
Schedule (cycle 0 = first b beat; L = R*s + C: a row accepted at u leaves the array at u + L;
MBc = rows in the block, P = max(MBc, R)): the first fold's weights take cycles 0..R-1; fold f
starts at T_f (T_0 = R) and accepts its rows at T_f .. T_f + MBc - 1 while the next fold's
weights stream in at T_f .. T_f + R - 1; folds follow every P cycles, except that a k pass (NT
folds) starts at least L + 1 cycles after the previous one (its partial sums must be written
before they are read back). Last result: T_last + MBc_last - 1 + L, plus stall cycles.
"""

from math import ceil

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from specmx.hdl.fma import delay, ieee_to_internal
from specmx.hdl.normalizer import normalize_word
from specmx.hdl.systolic import OSStreamArray, WSStreamArray
from specmx.models.config import GemmConfig

__all__ = ["OSStreamEngine", "WSStreamEngine", "stream_engine_for", "MAX_SIZE"]

MAX_SIZE = 65535          # largest M, N, K (16-bit command fields)


class _StreamEngine(wiring.Component):
    """What both streaming engines share: the spec check, the signature and the stall rule.

    Parameters
    ----------
    engine : GemmConfig
        schedule "streaming"; max_m, max_n, max_k bound the command (<= 65535).
    black_box_pes : bool
        Every PE an instance of one module (`systolic.PE_MODULE`, built from `self.array.pe()`):
        for simulation and synthesis, which then compile one PE instead of R x C copies.

    Members
    -------
    cmd : In(stream)   payload {m, n, k}; accepted when idle.
    a_in : In(stream of R in_fmt words); b_in : In(stream of C in_fmt words)
    c_in : In(stream of C acc_fmt words); r_out : Out(stream of C acc_fmt words)
    busy : Out(1)      high from cmd accepted to the last result.
    """

    DATAFLOW = None
    ARRAY = None

    def __init__(self, engine: GemmConfig, *, black_box_pes=False):
        if not isinstance(engine, GemmConfig):
            raise TypeError(f"engine must be a GemmConfig, not {engine!r}")
        if engine.dataflow != self.DATAFLOW or engine.schedule != "streaming":
            raise ValueError(f"engine: {type(self).__name__} needs dataflow {self.DATAFLOW!r} and "
                             "schedule 'streaming'")
        for name, v in zip(("max_m", "max_n", "max_k"), engine.buffers):
            if v > MAX_SIZE:
                raise ValueError(f"{name}: must be in 1..{MAX_SIZE}, got {v}")
        self.engine = engine
        self.array = self.ARRAY(engine, black_box_pes=black_box_pes)
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

    def _handshake(self, m, go, need, need_r):
        """Inputs: a beat is taken whenever `need[x]` and offered, and held if the engine
        stalls; `go` (advance) when every needed beat is here and a needed result slot is
        free. Returns the beat values (held or live)."""
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
        return value

    def _result(self, m, words):
        cfg = self.cfg
        for j, word in enumerate(words):
            m.d.comb += self.r_out.payload[j].eq(normalize_word(m, cfg, word) if cfg.internal else word)

    def _to_acc(self, word):
        return ieee_to_internal(word, self.cfg) if self.cfg.internal else word


class OSStreamEngine(_StreamEngine):
    """Output-stationary streaming GEMM engine (module docstring; parameters and members as
    `_StreamEngine`)."""

    DATAFLOW = "os"
    ARRAY = OSStreamArray

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

        value = self._handshake(m, go, need, need_r)

        b_reg = Signal.like(self.b_in.payload, name="b_reg")     # the B beat of k, for q > 0
        b_now = data.View(b_reg.shape(), Mux(q == 0, value["b"].as_value(), b_reg.as_value()))
        with m.If(go & need["b"]):
            m.d.sync += b_reg.eq(value["b"])
        m.d.comb += [a_wr.data.eq(value["a"]), a_wr.en.eq(go & need["a"])]
        a_now = data.View(a_rd.data.shape(), Mux(fresh_a, value["a"].as_value(), a_rd.data.as_value()))
        m.d.comb += [arr.a[i].eq(a_now[i]) for i in range(R)]
        m.d.comb += [arr.b[j].eq(b_now[j]) for j in range(C)]
        m.d.comb += [arr.c_in[j].eq(Mux(need["c"], self._to_acc(value["c"][j]), 0)) for j in range(C)]
        m.d.comb += [arr.v.eq(step_on), arr.first.eq(k == 0), arr.last.eq(k == K - 1),
                     arr.c_shift.eq(c_win.active), arr.r_shift.eq(r_win.active)]
        self._result(m, [arr.r_out[j] for j in range(C)])

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


class WSStreamEngine(_StreamEngine):
    """Weight-stationary streaming GEMM engine (module docstring; parameters and members as
    `_StreamEngine`). M runs in blocks of `block_rows` = 2R rows."""

    DATAFLOW = "ws"
    ARRAY = WSStreamArray

    def elaborate(self, platform):
        m = Module()
        e = self.engine
        R, C = e.rows, e.cols
        MB, NT_MAX = 2 * R, ceil(e.max_n / C)
        L = self.array.latency + 1                      # accepted row -> result leaves the array
        go = Signal()
        m.submodules.array = arr = self.array
        m.d.comb += arr.en.eq(go)

        M = Signal(range(e.max_m + 1), name="M")
        N = Signal(range(e.max_n + 1), name="N")
        K = Signal(range(e.max_k + 1), name="K")
        m0 = Signal(range(e.max_m + MB + 1), name="m0")
        k0 = Signal(range(e.max_k + R + 1), name="k0")
        n0 = Signal(range(e.max_n + C + 1), name="n0")
        nt = Signal(range(NT_MAX + 1), name="nt")
        left = M - m0
        rows = Signal(range(MB + 1), name="rows")                   # rows of the current block
        m.d.comb += rows.eq(Mux(left >= MB, MB, left[:len(rows)]))
        period = Signal(range(max(MB, R, 2) + 1), name="period")
        m.d.comb += period.eq(Mux(rows > max(R, 2), rows, max(R, 2)))
        last_n, last_k, last_m = n0 + C >= N, k0 + R >= K, m0 + MB >= M
        last_fold = last_n & last_k & last_m

        running = Signal()
        folds_left = Signal()
        tc = Signal(range(max(MB, R, 2) + 1), name="tc")              # cycle within the fold
        since_pass = Signal(range(L + 2), name="since_pass")         # cycles since the k pass began
        drain = Signal(range(L + 1), name="drain")                   # cycles to the last result
        b_left = Signal(range(R + 1), name="b_left")                 # weight beats still to come
        fold_on = running & folds_left & (tc < rows)

        # result of each accepted row, L cycles later: to r_out (last k pass) or the psum buffer
        e_valid = delay(m, go, fold_on, L, "e_valid")
        e_last = delay(m, go, last_k, L, "e_last")
        e_row = delay(m, go, tc[:len(rows)], L, "e_row")
        e_nt = delay(m, go, nt, L, "e_nt")
        need = {"a": fold_on & (n0 == 0), "b": b_left != 0, "c": fold_on & (k0 == 0)}
        need_r = e_valid & e_last
        value = self._handshake(m, go, need, need_r)

        # on-chip A (one k fold of the block) and partial sums (the block's rows x all n folds)
        m.submodules.a_mem = a_mem = Memory(shape=self.a_in.payload.shape(), depth=MB, init=[])
        psum_shape = data.ArrayLayout(unsigned(self.cfg.acc_width), C)
        m.submodules.p_mem = p_mem = Memory(shape=psum_shape, depth=MB * NT_MAX, init=[])
        a_wr, a_rd = a_mem.write_port(), a_mem.read_port()
        p_wr, p_rd = p_mem.write_port(), p_mem.read_port()
        m.d.comb += [a_wr.addr.eq(tc), a_wr.data.eq(value["a"]), a_wr.en.eq(go & need["a"]),
                     a_rd.addr.eq(tc), a_rd.en.eq(go),
                     p_rd.addr.eq(tc * NT_MAX + nt), p_rd.en.eq(go),
                     p_wr.addr.eq(e_row * NT_MAX + e_nt), p_wr.data.eq(arr.psum_out),
                     p_wr.en.eq(go & e_valid & ~e_last)]

        # stage 2: what was accepted (or read) enters the array one cycle later
        s2 = {name: Signal(width, name=f"s2_{name}") for name, width in
              (("valid", 1), ("fresh", 1), ("first", 1), ("swap", 1), ("wt", 1), ("kmask", R))}
        s2_a = Signal.like(self.a_in.payload, name="s2_a")
        s2_c = Signal(psum_shape, name="s2_c")
        s2_wb = Signal.like(self.b_in.payload, name="s2_wb")
        with m.If(go):
            m.d.sync += [s2["valid"].eq(fold_on), s2["fresh"].eq(n0 == 0), s2["first"].eq(k0 == 0),
                         s2["swap"].eq(fold_on & (tc == 0)), s2["wt"].eq(need["b"] & (b_left == R)),
                         s2["kmask"].eq(Cat(*((k0 + i) < K for i in range(R)))),
                         s2_a.eq(value["a"]), s2_wb.eq(Mux(need["b"], value["b"].as_value(), 0))]
            m.d.sync += [s2_c[j].eq(self._to_acc(value["c"][j])) for j in range(C)]
        a_now = data.View(a_rd.data.shape(), Mux(s2["fresh"], s2_a.as_value(), a_rd.data.as_value()))
        p_now = data.View(psum_shape, Mux(s2["first"], s2_c.as_value(), p_rd.data.as_value()))
        m.d.comb += [arr.a[i].eq(a_now[i]) for i in range(R)]
        m.d.comb += [arr.psum_in[j].eq(p_now[j]) for j in range(C)]
        m.d.comb += [arr.wb[j].eq(s2_wb[j]) for j in range(C)]
        m.d.comb += [arr.a_valid.eq(s2["valid"]), arr.kmask.eq(s2["kmask"]), arr.swap.eq(s2["swap"]),
                     arr.wt.eq(s2["wt"])]
        self._result(m, [arr.psum_out[j] for j in range(C)])

        m.d.comb += self.busy.eq(running | (b_left != 0))
        m.d.comb += self.cmd.ready.eq(~self.busy)
        with m.If(self.cmd.valid & self.cmd.ready):
            p = self.cmd.payload
            m.d.sync += [M.eq(p.m), N.eq(p.n), K.eq(p.k), m0.eq(0), k0.eq(0), n0.eq(0), nt.eq(0),
                         tc.eq(0), folds_left.eq(1), b_left.eq(R)]      # first fold's weights
        with m.If(go):
            with m.If(b_left != 0):
                m.d.sync += b_left.eq(b_left - 1)
                with m.If((b_left == 1) & ~running & folds_left):
                    m.d.sync += [running.eq(1), tc.eq(0), since_pass.eq(0)]
            with m.If(fold_on & (tc == 0) & ~last_fold):
                m.d.sync += b_left.eq(R)                # next fold's weights, from the next cycle
            with m.If(running):
                m.d.sync += [tc.eq(Mux(tc == period, tc, tc + 1)), since_pass.eq(Mux(since_pass == L + 1,
                                                                                       since_pass, since_pass + 1))]
                with m.If(folds_left & (tc >= period - 1)):
                    with m.If(last_fold):
                        m.d.sync += folds_left.eq(0)
                    with m.Elif(~last_n | (since_pass >= L)):
                        m.d.sync += tc.eq(0)
                        with m.If(~last_n):
                            m.d.sync += [n0.eq(n0 + C), nt.eq(nt + 1)]
                        with m.Else():
                            m.d.sync += [n0.eq(0), nt.eq(0), since_pass.eq(0)]
                            with m.If(~last_k):
                                m.d.sync += k0.eq(k0 + R)
                            with m.Else():
                                m.d.sync += [k0.eq(0), m0.eq(m0 + MB)]
                with m.If(fold_on & last_fold & (tc == rows - 1)):
                    m.d.sync += drain.eq(L)
                with m.If(drain != 0):
                    m.d.sync += drain.eq(drain - 1)
                    with m.If(drain == 1):
                        m.d.sync += running.eq(0)
        return m


def stream_engine_for(engine: GemmConfig, **kwargs):
    """The streaming engine of `engine.dataflow`."""
    return (OSStreamEngine if engine.dataflow == "os" else WSStreamEngine)(engine, **kwargs)


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
