"""Cycle model of the Mamba engine: one speculative verification step (and plain decode) as a
program of operations on the engine's units, with a closed form and a dataflow graph.

The engine (`EngineConfig`) has seven units, each running its operations in program order:
  mxu   the streaming matrix engine: every linear layer, batched over a tile of T nodes (M = T),
        weights streamed once per tile over its own memory channel, results through two fp32
        adders (biases, the residual)
  conv  the conv1d unit: the tile's nodes one after another, each from its parent's window
  scan  the selective-scan unit (scan, D skip, gate): the tile's nodes in series
  norm  the RMSNorm unit: the pre-norms, Mamba-2's gated norms, the final norm
  fu    the function unit: softplus of dt, after an fp32 adder (dt's bias)
  rd    the memory read channel: embeddings, the starting states, recompute's caches
  wr    the memory write channel: stored states (store) or cached SSM inputs (recompute), logits
An operation starts when its unit has finished the one before it and every operation it
depends on has finished; it then takes a fixed number of cycles (the unit cycle models of
`perf.gemm` and `perf.ssm`; a read: one cycle for the request, the memory latency, then a
beat of `mem_words` 32-bit words per cycle; a write: a beat per cycle, posted, so the
memory's latency is not waited on). Embeddings, states, caches and logits move as fp32 words.

The program interleaves tiles so that the linear layers run in parallel with the SSM: with
jobs j = (layer, tile) in order (the LM head's tiles last), the matrix engine takes in_proj
(and Mamba-1's x_proj, dt_proj) of job j+1 before out_proj of job j, so while the scan unit
works through tile j node by node, the matrix engine runs the linear layers of tile j+1 and
out_proj of tile j-1. With a single tile (plain decode) everything runs in series.

`step_cycles` evaluates the program in closed form (start = max(unit free, inputs ready),
one pass in program order); `step_graph` builds the same step as a networkx graph (operations
as nodes with unit, cycles and memory words; dependencies as edges) and `list_schedule` runs
an event-driven list scheduler over the units on it: the two must give the same length. The
schedule also gives the critical path and the overlap (cycles in which the matrix engine and
the scan unit are both busy).
"""

from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from math import ceil, gcd

from specmx.models.config import EngineConfig
from specmx.models.perf.gemm import gemm_cycles, memory_stall_cycles
from specmx.models.perf.ssm import conv_latency, function_unit_cycles, rmsnorm_cycles, scan_latency

__all__ = ["UNITS", "RESULT_ADDS", "DT_BIAS_ADD", "ModelDims", "Op", "linear_cycles", "linear_parts", "model_dims", "unit_configs",
           "tree_parents", "step_ops", "step_cycles", "step_graph", "list_schedule", "engine_perf", "backtrack_strategy"]

UNITS = ("mxu", "conv", "scan", "norm", "fu", "rd", "wr", "host")
RESULT_ADDS = 2   # the two fp32 adders on the matrix engine's result stream (biases, the residual)
DT_BIAS_ADD = 1   # the fp32 adder before the softplus unit (dt + dt_bias)


@dataclass(frozen=True)
class ModelDims:
    """What the engine needs of a model: its family and dimensions."""

    family: str
    d_model: int
    d_inner: int
    d_state: int
    layers: int
    vocab: int
    kernel: int = 4
    heads: int = 1
    groups: int = 1
    dt_rank: int = 1
    eps: float = 1e-5               # the RMSNorms' epsilon (a constant of the engine's norm units)

    @property
    def conv_dim(self):
        """Channels through the conv (Mamba-2 convolves x, B and C)."""
        return self.d_inner + (2 * self.groups * self.d_state if self.family == "mamba2" else 0)

    @property
    def in_proj(self):
        """Output width of in_proj: x, z (Mamba-2 also B, C and dt per head)."""
        if self.family == "mamba2":
            return 2 * self.d_inner + 2 * self.groups * self.d_state + self.heads
        return 2 * self.d_inner

    @property
    def state_words(self):
        """fp32 words of one layer's state: the conv window and the SSM state."""
        return self.conv_dim * (self.kernel - 1) + self.d_inner * self.d_state

    @property
    def cache_words(self):
        """fp32 words that recompute caches per node and layer: the conv input and the SSM inputs
        that are not conv outputs (Mamba-1: dt, B, C; Mamba-2: dt per head)."""
        if self.family == "mamba2":
            return self.conv_dim + self.heads
        return self.conv_dim + self.d_inner + 2 * self.d_state


def model_dims(cfg):
    """`ModelDims` of a `MambaConfig` or `Mamba2Config`."""
    if hasattr(cfg, "head_dim"):
        return ModelDims("mamba2", cfg.hidden_size, cfg.intermediate_size, cfg.state_size, cfg.num_hidden_layers,
                         cfg.vocab_size, cfg.conv_kernel, cfg.num_heads, cfg.n_groups, eps=cfg.layer_norm_epsilon)
    return ModelDims("mamba1", cfg.hidden_size, cfg.intermediate_size, cfg.state_size, cfg.num_hidden_layers,
                     cfg.vocab_size, cfg.conv_kernel, dt_rank=cfg.dt_rank, eps=cfg.layer_norm_epsilon)


@lru_cache(maxsize=1024)
def unit_configs(engine: EngineConfig, dims: ModelDims):
    """(conv unit, scan unit) configurations the engine builds for a model: the conv's channels
    are its input (Mamba-2: x, B and C) and its lanes the largest divisor of them up to
    `engine.lanes`; the scan's lanes divide d_state (gcd with `engine.lanes`)."""
    conv_lanes = max(k for k in range(1, engine.lanes + 1) if dims.conv_dim % k == 0)
    conv = engine.ssm("mamba1", dims.conv_dim, dims.d_state, kernel=dims.kernel)
    conv = replace(conv, lanes=conv_lanes)
    scan = engine.ssm(dims.family, dims.d_inner, dims.d_state, dims.heads, dims.groups, dims.kernel)
    return conv, replace(scan, lanes=gcd(engine.lanes, dims.d_state))


def tree_parents(widths):
    """Parent indices of the full tree with `widths` children per depth, in FIFO (breadth-first)
    order: (3, 2, 1) -> 1 + 3 + 6 + 6 nodes."""
    parent, level = [-1], [0]
    for w in widths:
        nxt = []
        for p in level:
            for _ in range(w):
                parent.append(p)
                nxt.append(len(parent) - 1)
        level = nxt
    return parent


@dataclass(frozen=True)
class Op:
    """One operation: its unit, its cycles, the operations it waits for, memory words moved, and
    its phase: "verify" (the verification pass) or "backtrack" (recompute after acceptance)."""

    name: str
    unit: str
    cycles: int
    deps: tuple = ()
    words: int = 0
    phase: str = "verify"
    stall: int = 0          # of `cycles`, those the matrix engine waits for weights from memory
    outputs: tuple = ()     # words on each output stream of its unit (the RTL sequencer's counts)
    target: int = 0         # which of its unit's datapaths: 1 = Mamba-2's gated norm


def _packed(n, bits):
    """32-bit memory words holding n values of `bits` bits."""
    return ceil(n * bits / 32)



@dataclass
class _Program:
    engine: EngineConfig
    phase: str = "verify"
    ops: list = field(default_factory=list)
    mem_rate: object = None         # 32-bit words per cycle of each memory channel (None: engine.mem_words)
    weight_bits: int = None         # bits per stored weight (None: the FMA's input format)

    def add(self, name, unit, cycles, deps=(), words=0, stall=0, outputs=(), target=0):
        self.ops.append(Op(name, unit, int(cycles), tuple(d for d in deps if d), int(words), self.phase, int(stall),
                           tuple(int(w) for w in outputs), target))
        return name

    def __post_init__(self):
        rate = Fraction(self.engine.mem_words if self.mem_rate is None else self.mem_rate)
        self._num, self._den = rate.numerator, rate.denominator

    def mem(self, name, unit, words, deps=()):
        """A transfer on a memory channel: a read (rd) waits one cycle for its request and the
        latency, a write (wr) is posted; then ceil(words / rate) beats."""
        beats = -(-words * self._den // self._num)                     # ceil(words / rate), exactly
        cycles = beats if unit == "wr" else 1 + self.engine.mem_latency + beats
        return self.add(name, unit, cycles, deps, words, outputs=(beats,))

    def linear(self, name, M, K, N, deps):
        """A linear layer on the matrix engine, its K x N weights streamed over the weight
        channel (`linear_cycles`), its results through the two result adders (`RESULT_ADDS`)."""
        words = _packed(K * N, self.weight_bits or self.engine.fma.in_f.width)
        e = self.engine
        if e.arrays > 1:                    # each array: N / arrays outputs, its share of the channel
            rate = Fraction(self.mem_rate or e.mem_words) / e.arrays
            schedule, stall = linear_parts(e, M, K, ceil(N / e.arrays), rate, self.weight_bits or e.fma.in_f.width)
        else:
            schedule, stall = linear_parts(e, M, K, N, self.mem_rate, self.weight_bits)
        return self.add(name, "mxu", 1 + schedule + stall + RESULT_ADDS, deps, words, stall,
                        outputs=(M * ceil(N / e.cols),))


def linear_cycles(engine: EngineConfig, M, K, N, mem_rate=None, weight_bits=None):
    """Cycles of an M x K by K x N linear layer on the engine's matrix engine, from its command
    to its last result, both included: one for the command, the streaming schedule (`gemm_cycles`) plus the stalls of its weights
    arriving from memory (`memory_stall_cycles`: `mem_latency`, then `mem_words` 32-bit words,
    i.e. mem_words * 32 / width operand words, per cycle). Equal to the RTL (tests/test_gemm.py,
    the engine co-simulation). The system model passes `mem_rate` (32-bit words per cycle, a
    Fraction: a board's bandwidth at the spec's clock) and `weight_bits` (stored weight width:
    int4 weights stream 8 to a word). In the Mamba engine a linear layer also takes
    `RESULT_ADDS` cycles for its result adders (`step_ops`)."""
    schedule, stall = linear_parts(engine, M, K, N, mem_rate, weight_bits)
    return 1 + schedule + stall


@lru_cache(maxsize=4096)
def linear_parts(engine: EngineConfig, M, K, N, mem_rate=None, weight_bits=None):
    """(streaming schedule cycles, memory stall cycles) of `linear_cycles`."""
    gemm = engine.gemm
    if mem_rate is None and weight_bits is None:
        rate = max(1, engine.mem_words * 32 // engine.fma.in_f.width)
    else:
        rate = Fraction(mem_rate or engine.mem_words) * 32 / (weight_bits or engine.fma.in_f.width)
    return gemm_cycles(gemm, M, N, K).total_cycles, memory_stall_cycles(gemm, M, N, K, engine.mem_latency, rate)


def backtrack_strategy(engine: EngineConfig, dims: ModelDims, n_nodes, backtrack):
    """store / recompute as asked; hybrid stores when every node's state fits the budget."""
    if backtrack == "hybrid":
        return "store" if n_nodes * dims.layers * dims.state_words * 4 <= engine.memory_budget else "recompute"
    return backtrack


def step_ops(engine: EngineConfig, dims: ModelDims, parent, backtrack="store", path=None,
             mem_rate=None, weight_bits=None, sequences=1, lm_head=True):
    """The program of one verification step over the tree `parent` (parent index per node,
    parents first), in program order. `backtrack` store | recompute | hybrid; `path` the
    number of nodes on the accepted path (root included: accepted draft tokens + 1), needed by
    recompute, which re-runs them on the conv and scan units after the host has accepted (the
    `host` unit's zero-cycle `accept`). The RTL co-simulation (`sim/tb_mamba_engine.py`) runs
    this very program, each RTL operation carrying its output word counts for the sequencer
    (`Op.outputs`). `mem_rate`, `weight_bits`: as `linear_cycles` takes them (the
    system model's board memory and weight format). `sequences`: the tree holds that many
    independent sequences (a batch), each with its own starting state to load per layer.
    `lm_head=False` leaves out the final norm, the LM head and the logits (a host that runs them,
    as LightMamba's measured accelerator does)."""
    from specmx.models.specdec import BACKTRACK, check_parents, live_states
    parent = check_parents(parent)
    if backtrack not in BACKTRACK:
        raise ValueError(f"backtrack: unknown {backtrack!r}; allowed: {', '.join(BACKTRACK)}")
    live = live_states(parent)
    if live > engine.state_slots:
        raise ValueError(f"tree: needs {live} live states per layer; engine.state_slots holds "
                         f"{engine.state_slots} (allowed: trees with at most that many)")
    n = len(parent)
    depth = [0] * n
    for i in range(1, n):
        depth[i] = depth[parent[i]] + 1
    path = max(depth) + 1 if path is None else path
    if not 1 <= path <= max(depth) + 1:
        raise ValueError(f"path: accepted nodes on the path must be 1..{max(depth) + 1}, got {path}")
    strategy = backtrack_strategy(engine, dims, n, backtrack)
    p = _Program(engine, mem_rate=mem_rate, weight_bits=weight_bits)
    d, di, N, L = dims.d_model, dims.d_inner, dims.d_state, dims.layers
    conv, ssm = unit_configs(engine, dims)
    tiles = [min(engine.tile, n - t0) for t0 in range(0, n, engine.tile)]
    nt = len(tiles)
    conv_beats, scan_beats = dims.conv_dim // conv.lanes, di * (N // ssm.lanes)
    dt_words = dims.heads if dims.family == "mamba2" else di
    conv_out = lambda T: (T * conv_beats, T * conv_beats)                 # outputs, windows
    scan_out = lambda T: (T * di, T * scan_beats)                         # outputs, states
    fu_out = lambda T: (ceil(T * dt_words / engine.lanes),)

    for t, T in enumerate(tiles):
        p.mem(f"embed[{t}]", "rd", T * d)                         # the residual stream starts in fp32
    p.mem("load_conv[0]", "rd", sequences * dims.conv_dim * (dims.kernel - 1))
    p.mem("load_ssm[0]", "rd", sequences * di * N)

    def pre(job):
        l, t = divmod(job, nt)
        T = tiles[t]
        if l == L:                                              # the LM head
            src = f"out[{L - 1},{t}]"
            p.add(f"norm_f[{t}]", "norm", rmsnorm_cycles(d, T).busy, [src], outputs=(T * d,))
            p.linear(f"lm_head[{t}]", T, d, dims.vocab, [f"norm_f[{t}]"])
            p.mem(f"logits[{t}]", "wr", T * dims.vocab, [f"lm_head[{t}]"])
            return
        j = f"{l},{t}"
        src = f"embed[{t}]" if l == 0 else f"out[{l - 1},{t}]"
        p.add(f"norm[{j}]", "norm", rmsnorm_cycles(d, T).busy, [src], outputs=(T * d,))
        p.linear(f"in_proj[{j}]", T, d, dims.in_proj, [f"norm[{j}]"])
        if t == 0 and l > 0:                                    # this layer's starting conv window
            p.mem(f"load_conv[{l}]", "rd", sequences * dims.conv_dim * (dims.kernel - 1), [f"conv[{l - 1},{nt - 1}]"])
        conv_deps = [f"in_proj[{j}]", f"load_conv[{l}]" if t == 0 else None]
        loads = 1 if t == 0 else 0                              # the starting window, as a token
        p.add(f"conv[{j}]", "conv", (T + loads) * conv_beats + conv_latency(conv), conv_deps, outputs=conv_out(T))
        dt = f"in_proj[{j}]"                                    # Mamba-2's dt comes from in_proj
        if dims.family == "mamba1":
            p.linear(f"x_proj[{j}]", T, di, dims.dt_rank + 2 * N, [f"conv[{j}]"])
            dt = p.linear(f"dt_proj[{j}]", T, dims.dt_rank, di, [f"x_proj[{j}]"])
        p.add(f"softplus[{j}]", "fu", DT_BIAS_ADD + function_unit_cycles("softplus", T * dt_words, lanes=engine.lanes).busy,
              [dt], outputs=fu_out(T))

    def post(job):
        l, t = divmod(job, nt)
        if l == L:
            return
        T, j = tiles[t], f"{l},{t}"
        scan_deps = [f"conv[{j}]", f"softplus[{j}]", f"load_ssm[{l}]" if t == 0 else None]
        loads = 1 if t == 0 else 0                              # the starting state, as a token
        p.add(f"scan[{j}]", "scan", (T + loads) * scan_beats + scan_latency(ssm), scan_deps, outputs=scan_out(T))
        y = f"scan[{j}]"
        if dims.family == "mamba2":
            G = dims.groups
            y = p.add(f"gated_norm[{j}]", "norm", rmsnorm_cycles(di // G, T * G).busy, [y], outputs=(T * di,), target=1)
        p.linear(f"out[{j}]", T, di, d, [y])
        if strategy == "store":
            p.mem(f"store[{j}]", "wr", T * dims.state_words, [f"scan[{j}]"])
        else:
            p.mem(f"cache[{j}]", "wr", T * dims.cache_words, [f"conv[{j}]", f"softplus[{j}]"])
        if t == nt - 1 and l + 1 < L:                           # the next layer's starting SSM state
            p.mem(f"load_ssm[{l + 1}]", "rd", sequences * di * N, [f"scan[{j}]"])

    jobs = (L + (1 if lm_head else 0)) * nt
    pre(0)
    for job in range(jobs):
        if job + 1 < jobs and nt > 1:
            pre(job + 1)
            post(job)
        else:
            post(job)
            if job + 1 < jobs:
                pre(job + 1)

    if strategy == "recompute":                                 # re-run the accepted path
        p.phase = "backtrack"
        p.add("accept", "host", 0, [f"logits[{t}]" if lm_head else f"out[{L - 1},{t}]" for t in range(nt)])
        for l in range(L):
            p.mem(f"reload[{l}]", "rd", dims.state_words + path * dims.cache_words, ["accept"])
            p.add(f"reconv[{l}]", "conv", (path + 1) * conv_beats + conv_latency(conv), [f"reload[{l}]"],
                  outputs=conv_out(path))
            dt = None                                           # Mamba-2 caches dt before its softplus
            if dims.family == "mamba2":
                dt = p.add(f"resoftplus[{l}]", "fu",
                           DT_BIAS_ADD + function_unit_cycles("softplus", path * dt_words, lanes=engine.lanes).busy,
                           [f"reload[{l}]"],
                           outputs=fu_out(path))
            p.add(f"rescan[{l}]", "scan", (path + 1) * scan_beats + scan_latency(ssm),
                  [f"reload[{l}]", f"reconv[{l}]", dt], outputs=scan_out(path))
            p.mem(f"restore[{l}]", "wr", dims.state_words, [f"rescan[{l}]"])
    return p.ops, {"strategy": strategy, "live_states": live, "tiles": nt, "nodes": n, "path": path}


def step_cycles(ops):
    """Closed form: one pass in program order, start = max(the unit's previous end, the ends of
    the inputs), end = start + cycles. Returns {op name: (start, end)}."""
    unit_free, span = {}, {}
    for op in ops:
        start = max([unit_free.get(op.unit, 0)] + [span[dep][1] for dep in op.deps])
        span[op.name] = (start, start + op.cycles)
        unit_free[op.unit] = start + op.cycles
    return span


def step_graph(ops):
    """The step as a networkx DiGraph: a node per operation (unit, cycles, words, order: its
    place in its unit's program), an edge per dependency."""
    import networkx as nx
    g = nx.DiGraph()
    order = {}
    for op in ops:
        g.add_node(op.name, unit=op.unit, cycles=op.cycles, words=op.words, order=order.get(op.unit, 0))
        order[op.unit] = order.get(op.unit, 0) + 1
        for dep in op.deps:
            g.add_edge(dep, op.name)
    return g


def list_schedule(g):
    """Event-driven list scheduling of the graph over its units: at each event time every idle
    unit starts its next operation in program order once all its graph predecessors are done.
    Returns dict: length, span {op: (start, end)}, critical_path (op names, first to last),
    overlap (cycles with the matrix engine and the scan unit both busy), busy per unit."""
    import heapq
    queues = {}
    for name, a in sorted(g.nodes(data=True), key=lambda na: na[1]["order"]):
        queues.setdefault(a["unit"], []).append(name)
    head = {u: 0 for u in queues}
    busy_until = {u: 0 for u in queues}
    waiting = {n: g.in_degree(n) for n in g}               # inputs not finished yet
    span, events = {}, [(0, "")]
    while events:
        now = events[0][0]
        while events and events[0][0] == now:                # every operation ending now
            name = heapq.heappop(events)[1]
            for succ in g.successors(name) if name else ():
                waiting[succ] -= 1
        for u, q in queues.items():
            if head[u] < len(q) and busy_until[u] <= now and waiting[q[head[u]]] == 0:
                name = q[head[u]]
                span[name] = (now, now + g.nodes[name]["cycles"])
                busy_until[u] = span[name][1]
                head[u] += 1
                heapq.heappush(events, (span[name][1], name))
                if g.nodes[name]["cycles"] == 0 or busy_until[u] == now:
                    heapq.heappush(events, (now, ""))
    stuck = [q[head[u]] for u, q in queues.items() if head[u] < len(q)]
    if stuck:
        raise ValueError(f"graph: deadlock, waiting at {stuck[0]}")
    length = max(e for _, e in span.values())
    return {"length": length, "span": span, "critical_path": _critical_path(g, span, queues),
            "overlap": _overlap(g, span, "mxu", "scan"),
            "busy": {u: sum(g.nodes[n]["cycles"] for n in q) for u, q in queues.items()}}


def _critical_path(g, span, queues):
    """Walk back from the last operation to end through whichever predecessor (an input, or the
    previous operation of the same unit) ended exactly when it started."""
    prev = {q[i]: q[i - 1] for q in queues.values() for i in range(1, len(q))}
    node = max(span, key=lambda n: (span[n][1], -span[n][0]))
    path = [node]
    while span[node][0] > 0:
        cands = list(g.predecessors(node)) + ([prev[node]] if node in prev else [])
        binding = [c for c in cands if span[c][1] == span[node][0]]
        if not binding:
            break
        node = binding[0]
        path.append(node)
    return path[::-1]


def _overlap(g, span, a, b):
    """Cycles in which some operation of unit a and some of unit b both run (each unit's
    operations are disjoint intervals: a two-pointer sweep)."""
    def cover(unit):
        return sorted(span[n] for n in span if g.nodes[n]["unit"] == unit and span[n][1] > span[n][0])
    x, y = cover(a), cover(b)
    i = k = total = 0
    while i < len(x) and k < len(y):
        total += max(0, min(x[i][1], y[k][1]) - max(x[i][0], y[k][0]))
        if x[i][1] <= y[k][1]:
            i += 1
        else:
            k += 1
    return total


def engine_perf(engine: EngineConfig, dims: ModelDims, parent, backtrack="store", path=None, clock_mhz=None):
    """The cycle model's answer for one verification step of tree `parent` and for plain decode
    (one token per step): cycles per verification (backtracking included), per token when
    `path` nodes are accepted (all of the deepest path by default), the overlap, the critical
    path, per-unit busy cycles and memory words."""
    ops, info = step_ops(engine, dims, parent, backtrack, path)
    span = step_cycles(ops)
    g = step_graph(ops)
    sched = list_schedule(g)
    cycles = max(e for _, e in span.values())
    decode_ops, _ = step_ops(engine, dims, [-1], "store")
    decode = max(e for _, e in step_cycles(decode_ops).values())
    verify_end = max(span[o.name][1] for o in ops if o.phase == "verify")
    out = {"nodes": info["nodes"], "tiles": info["tiles"], "live_states": info["live_states"],
           "strategy": info["strategy"], "accepted_path": info["path"],
           "cycles_per_verification": cycles, "verify_cycles": verify_end, "backtrack_cycles": cycles - verify_end,
           "cycles_per_token": cycles / info["path"], "decode_cycles_per_token": decode,
           "speedup_vs_decode": decode * info["path"] / cycles,
           "overlap": sched["overlap"], "overlap_fraction": sched["overlap"] / cycles,
           "critical_path": sched["critical_path"], "list_schedule_cycles": sched["length"],
           "busy": sched["busy"], "memory_words": {u: sum(o.words for o in ops if o.unit == u) for u in UNITS
                                                   if any(o.unit == u and o.words for o in ops)},
           "operations": len(ops)}
    # the RTL sequencer's program: written one instruction a cycle (and a start per phase) before
    # the step, not counted in its cycles
    from specmx.models.perf.engine_program import QUEUES
    phases = {o.phase for o in ops}
    out["program_instructions"] = sum(o.unit in QUEUES for o in ops)
    out["program_load_cycles"] = out["program_instructions"] + len(phases)
    if clock_mhz:
        out["tokens_per_s"] = clock_mhz * 1e6 / out["cycles_per_token"]
        out["decode_tokens_per_s"] = clock_mhz * 1e6 / decode
    return out
