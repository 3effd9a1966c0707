"""System performance model: Mamba tokens/s and joules/token of a Mamba engine on a board,
plain decode, speculative decoding and prefill.

One query composes:
  - the engine's program for one verification step (`perf.engine.step_ops`), its weights
    streamed from the board's fastest memory that holds them, at the board's bandwidth and the
    query's clock (a rational number of 32-bit words per cycle), weights stored in the query's
    format (bf16, fp8, int8, int4);
  - layers composed in closed form: the step of 1, 2 and 3 layers is evaluated, and when the
    second difference is zero (every unit's cycles, busy time and words grow by the same amount
    per layer, which holds when a layer's schedule repeats), L layers cost
    c(1) + (L - 1) * (c(2) - c(1)); otherwise the whole program is evaluated;
  - the draft model on the same engine, one step per tree level (the nodes of level k-1,
    batched, propose level k), before the verification;
  - expected tokens per verification from an acceptance probability p (each draft token kept
    with probability p, independently): a full tree with widths w_1..w_D gives
        E = 1 + sum_{k=1..D} prod_{j=1..k} (1 - (1 - p)^{w_j})
    (level k is reached when some child at every level up to k is accepted; the 1 is the
    target's own token), or measured tokens per verification from a file;
  - a memory-bandwidth bound: the verification takes at least (all off-chip bytes) /
    (bandwidth), because the engine's channels share the board's memory;
  - the energy model of `perf.energy` (static power from the board file).

`system_perf` answers in a few milliseconds at full model size.
"""

import json
from dataclasses import replace
from functools import lru_cache
from fractions import Fraction
from pathlib import Path

from specmx.boards.board import BoardError
from specmx.boards.costs import WEIGHT_FORMATS, estimate
from specmx.models.perf.energy import OFFCHIP_PJ_PER_BIT, ONCHIP_PJ_PER_BIT, SSM_PJ_PER_OP, mac_pj
from specmx.models.perf.engine import UNITS, backtrack_strategy, step_cycles, step_ops, tree_parents

__all__ = ["system_perf", "expected_tokens", "composed_step", "measured_tokens", "tokens_per_pass", "ACCEPTANCE_MODES", "PHASES"]

PHASES = ("decode", "prefill")


def expected_tokens(widths, p):
    """Expected tokens per verification of a full tree with `widths` children per depth when
    each draft token is accepted with probability p, independently (module docstring)."""
    if not 0 <= p <= 1:
        raise ValueError(f"acceptance: must be a probability in 0..1, got {p}")
    total, reach = 1.0, 1.0
    for w in widths:
        reach *= 1 - (1 - p) ** w
        total += reach
    return total


ACCEPTANCE_MODES = ("greedy", "T=0.7", "T=1.0")


def measured_tokens(path, tree_label, model=None, mode="greedy"):
    """Tokens per verification measured for `tree_label` (e.g. '3,2,1'): from `specmx mamba
    generate --json` output (stats.tokens_per_target_pass) or bench/acceptance.py's JSON (the
    row of that tree and acceptance `mode`, in the family whose target is `model` (a name or
    directory), else the first family listed)."""
    if mode not in ACCEPTANCE_MODES:
        raise ValueError(f"acceptance-mode: unknown {mode!r}; allowed: {', '.join(ACCEPTANCE_MODES)}")
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"acceptance: no such file {str(path)!r}") from None
    except json.JSONDecodeError:
        raise ValueError(f"acceptance: {path} is not JSON (a `mamba generate --json` output or "
                         f"bench/acceptance.py's acceptance.json)") from None
    return tokens_per_pass(data, tree_label, model, mode, source=path)


def tokens_per_pass(data, tree_label, model=None, mode="greedy", source="the acceptance data"):
    """`measured_tokens` on already parsed JSON `data` (`source` names it in errors)."""
    if mode not in ACCEPTANCE_MODES:
        raise ValueError(f"acceptance-mode: unknown {mode!r}; allowed: {', '.join(ACCEPTANCE_MODES)}")
    if isinstance(data, dict) and isinstance(data.get("stats"), dict) and "tokens_per_target_pass" in data["stats"]:
        return float(data["stats"]["tokens_per_target_pass"])
    if isinstance(data, dict):
        families = [f for f in data.values() if isinstance(f, dict)]
        name = Path(str(model)).name if model is not None else None
        families.sort(key=lambda f: f.get("target") != name)         # the model's own family first
        for family in families:
            for row in family.get("rows", []):
                if row.get("tree") == tree_label and row.get("acceptance") == mode:
                    return float(row["tokens_per_target_pass"])
    raise ValueError(f"acceptance: {source} has no tokens per verification for tree {tree_label} ({mode}) "
                     f"(expected stats.tokens_per_target_pass or a {mode} row for that tree)")


def _program(engine, dims, parent, strategy, path, rate, bits, sequences, lm_head):
    ops, info = step_ops(engine, dims, parent, strategy, path, mem_rate=rate, weight_bits=bits,
                         sequences=sequences, lm_head=lm_head)
    span = step_cycles(ops)
    busy = {u: sum(o.cycles for o in ops if o.unit == u) for u in UNITS}
    words = {u: sum(o.words for o in ops if o.unit == u) for u in UNITS}
    stall = sum(o.stall for o in ops)
    return {"cycles": max(e for _, e in span.values()), "busy": busy, "words": words, "stall": stall, "info": info}


def composed_step(engine, dims, parent, backtrack="store", path=None, rate=None, bits=None, sequences=1,
                  lm_head=True):
    """One step of the whole model with layers composed in closed form (module docstring).
    Returns cycles, per-unit busy cycles and words, the strategy, and `composed` (False when
    the program had to be evaluated whole). The RTL co-simulation runs the same program, so its
    measured cycles compare with this directly."""
    strategy = backtrack_strategy(engine, dims, len(parent), backtrack)

    def run(layers):
        return _program(engine, replace(dims, layers=layers), parent, strategy, path, rate, bits, sequences, lm_head)

    if dims.layers <= 3:
        out = run(dims.layers)
        return {**out, "strategy": strategy, "composed": False}
    c1, c2, c3 = run(1), run(2), run(3)

    def linear(key, sub=None):
        a, b, c = (x[key] if sub is None else x[key][sub] for x in (c1, c2, c3))
        return c - b == b - a, a + (dims.layers - 1) * (b - a)

    parts = [linear("cycles"), linear("stall")] + [linear(k, u) for k in ("busy", "words") for u in UNITS]
    if not all(ok for ok, _ in parts):
        out = run(dims.layers)
        return {**out, "strategy": strategy, "composed": False}
    values = [v for _, v in parts]
    n = len(UNITS)
    return {"cycles": values[0], "stall": values[1], "busy": dict(zip(UNITS, values[2:2 + n])),
            "words": dict(zip(UNITS, values[2 + n:])), "info": c1["info"], "strategy": strategy, "composed": True}


@lru_cache(maxsize=1 << 14)
def _cached_step(*args):
    """`composed_step`, remembered: a sweep asks for the same draft steps over and over."""
    return composed_step(*args)


def _macs_per_node(dims, lm_head=True):
    d, di, N = dims.d_model, dims.d_inner, dims.d_state
    layer = d * dims.in_proj + di * d
    if dims.family == "mamba1":
        layer += di * (dims.dt_rank + 2 * N) + dims.dt_rank * di
    return dims.layers * layer + (d * dims.vocab if lm_head else 0)


def _ssm_ops_per_node(dims):
    """Elementwise SSM operations per node: the scan's 4 per state element (exp(dt A), dt B x,
    the update, C h) and the conv's K per channel."""
    return dims.layers * (4 * dims.d_inner * dims.d_state + dims.kernel * dims.conv_dim)


def weight_bytes(dims, bits):
    """Bytes of the model's weights in `bits`-bit storage (linear layers, embedding, LM head)."""
    return _macs_per_node(dims) * bits / 8 + dims.vocab * dims.d_model * bits / 8


def _levels(parent):
    depth = [0] * len(parent)
    for i in range(1, len(parent)):
        depth[i] = depth[parent[i]] + 1
    return [depth.count(k) for k in range(max(depth) + 1)]


def system_perf(board, engine, dims, weights="bf16", clock_mhz=None, draft=None, widths=None, parent=None,
                acceptance=None, backtrack="hybrid", phase="decode", prompt_len=128, batch=1, lm_head=True):
    """The system model's answer (module docstring). `widths` (children per depth) or `parent`
    give the tree; no `draft` means plain decode. `acceptance`: a probability (float) or the
    measured tokens per verification (`("measured", value)`). Raises ValueError / BoardError
    with one-line messages."""
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights: unknown format {weights!r}; allowed: {', '.join(WEIGHT_FORMATS)}")
    if phase not in PHASES:
        raise ValueError(f"phase: unknown {phase!r}; allowed: {', '.join(PHASES)}")
    if batch < 1 or batch > 4096:
        raise ValueError(f"batch: must be 1..4096, got {batch}")
    clock = float(clock_mhz or board.clock_mhz)
    if not clock > 0:
        raise ValueError(f"clock: must be > 0 MHz, got {clock}")
    bits = WEIGHT_FORMATS[weights]
    total_weights = weight_bytes(dims, bits) + (weight_bytes(draft, bits) if draft is not None else 0)
    memory = board.weight_memory(total_weights)
    bytes_per_cycle = memory.gbps * 1e9 / (clock * 1e6)
    rate = Fraction(bytes_per_cycle / 4).limit_denominator(1 << 12)
    if rate <= 0:
        raise ValueError(f"clock: {clock} MHz leaves less than one bit per cycle of {memory.name}")

    assumptions = [f"{k} = {v}" for k, v in board.assumed.items()]
    if phase == "prefill":
        if draft is not None:
            raise ValueError("phase: prefill runs the target alone; leave out --draft")
        if not 1 <= prompt_len <= 1 << 16:
            raise ValueError(f"prompt-len: must be 1..65536, got {prompt_len}")
        parent, tokens, path = [-1] + list(range(prompt_len - 1)), float(prompt_len), None
    elif draft is None:
        parent, tokens, path = [-1], 1.0, None
    else:
        if parent is None:
            parent = tree_parents(widths)
        if isinstance(acceptance, tuple):
            tokens = float(acceptance[1])
        else:
            if widths is None:
                raise ValueError("acceptance: a probability needs a full tree (--tree widths); give a measured FILE")
            tokens = expected_tokens(widths, float(acceptance))
        depth = len(_levels(parent))
        if not 1 <= tokens <= depth:
            raise ValueError(f"acceptance: {tokens:.2f} tokens per verification is outside 1..{depth} for this tree")
        path = max(1, min(depth, round(tokens)))
    if batch > 1:
        if backtrack == "recompute":
            raise ValueError("backtrack: recompute with --batch > 1 is not modeled; allowed: store, hybrid")
        single = parent
        parent = list(single)
        for _ in range(batch - 1):                  # each further sequence's tree, rooted under node 0
            base = len(parent)
            parent += [0 if p < 0 else base + p for p in single]
        backtrack = "store" if backtrack == "hybrid" else backtrack
    target = _cached_step(engine, dims, tuple(parent), backtrack if draft is not None else "store", path, rate,
                          bits, batch, lm_head)

    draft_cycles, draft_words, draft_macs = 0, 0, 0
    if draft is not None:
        for n in _levels(parent)[:-1]:               # the draft steps over each level but the last
            step = _cached_step(engine, draft, (-1,) + (0,) * (n - 1), "store", None, rate, bits, 1, True)
            draft_cycles += step["cycles"]
            draft_words += sum(step["words"].values())
            draft_macs += n * _macs_per_node(draft)

    nodes = len(parent)
    cycles = target["cycles"] + draft_cycles
    words = sum(target["words"].values()) + draft_words
    offchip_bytes = 4 * words
    memory_cycles = offchip_bytes / bytes_per_cycle
    step_cycles_ = max(cycles, memory_cycles)
    seconds = step_cycles_ / (clock * 1e6)
    per_step_tokens = tokens * batch
    mxu_compute = target["busy"]["mxu"] - target["stall"]
    limits = {"memory": memory_cycles, "matrix engine": mxu_compute, "scan unit": target["busy"]["scan"],
              "draft": draft_cycles}
    bottleneck = max(limits, key=limits.get)

    macs = nodes * _macs_per_node(dims, lm_head) + draft_macs
    ssm_ops = nodes * _ssm_ops_per_node(dims)
    onchip_bits = nodes * dims.layers * (2 * dims.state_words + 4 * dims.d_inner) * 32
    e_mac, e_off, e_ssm = mac_pj(board.dsp_kind, weights), OFFCHIP_PJ_PER_BIT[memory.kind], SSM_PJ_PER_OP[board.dsp_kind]
    energy = []
    for i in (0, 1):
        dynamic = (macs * e_mac[i] + offchip_bytes * 8 * e_off[i] + onchip_bits * ONCHIP_PJ_PER_BIT[i]
                   + ssm_ops * e_ssm[i]) * 1e-12
        energy.append(board.static_w[i] * seconds + dynamic)
    strategy = target["strategy"]
    state_words = dims.state_words if strategy == "store" else dims.cache_words
    state_bytes = batch * (nodes // batch) * dims.layers * state_words * 4 if draft is not None else 0

    try:
        est = estimate(board, engine, dims, weights)
        fits = all(n <= h for n, h in est["resources"].values())
        resources = {k: {"needed": n, "available": h, "share": round(n / h, 3) if h else None}
                     for k, (n, h) in est["resources"].items()}
    except BoardError as exc:
        fits, resources = None, {"error": str(exc)}
    return {
        "board": board.name, "clock_mhz": clock, "weights": weights, "phase": phase, "batch": batch,
        "memory": f"{memory.name} ({memory.kind}, {memory.gbps:g} GB/s)",
        "nodes_per_verification": nodes // batch, "tokens_per_verification": round(tokens, 4),
        "tokens_per_s": per_step_tokens / seconds,
        "joules_per_token": {"low": energy[0] / per_step_tokens, "high": energy[1] / per_step_tokens},
        "power_w": {"low": energy[0] / seconds, "high": energy[1] / seconds},
        "verification_ms": seconds * 1e3, "cycles_per_verification": round(step_cycles_),
        "target_cycles": target["cycles"], "draft_cycles": draft_cycles,
        "memory_bound_cycles": round(memory_cycles), "bottleneck": bottleneck,
        "bottleneck_cycles": {k: round(v) for k, v in limits.items()},
        "busy": {u: round(target["busy"][u] / step_cycles_, 4) for u in ("mxu", "conv", "scan", "norm", "fu", "rd", "wr")
                 if target["busy"][u]},
        "bytes_per_token": offchip_bytes / per_step_tokens,
        "macs_per_s": macs / seconds, "peak_macs_per_s": engine.arrays * engine.rows * engine.cols * clock * 1e6,
        "bandwidth_gbps": memory.gbps,
        "weight_bytes": total_weights,
        "backtrack": strategy if draft is not None else None,
        "state_memory_bytes": state_bytes,
        "layers_composed": target["composed"],
        "fits": fits, "resources": resources,
        "assumptions": assumptions,
    }
