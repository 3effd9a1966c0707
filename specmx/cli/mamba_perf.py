"""`specmx mamba perf|sweep`: the system model (`models.perf.system`): tokens/s and joules/token
of a Mamba engine on a board, plain decode, speculative decoding or prefill."""

import json
from pathlib import Path

from specmx.cli.common import UsageError, add_spec_option, design, write_json

__all__ = ["register_perf", "query_from_args"]

DEFAULT_MODEL = "mamba2-2.7b"


def _tree(text):
    """(widths, budget, label) of --tree: '3,2,1', '1,1,1' (a chain), or 'budget=N' (widths None)."""
    from specmx.models.specdec import TreeShape
    try:
        shape = TreeShape(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if isinstance(shape, dict):
        return None, shape["budget"], f"budget={shape['budget']}"
    return tuple(shape), None, ",".join(map(str, shape))


def _acceptance(text, label, model=None, mode="greedy"):
    """A probability, or ('measured', tokens per verification) read from a file."""
    from specmx.models.perf.system import measured_tokens
    try:
        p = float(text)
    except ValueError:
        try:
            return ("measured", measured_tokens(text, label, model, mode))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not 0 <= p <= 1:
        raise UsageError(f"acceptance: a probability must be in 0..1, got {text}")
    return p


def query_from_args(args):
    """(board, engine, target dims, keyword arguments of `system_perf`) from the flags."""
    from specmx.boards.board import load_board
    from specmx.boards.costs import largest_fit
    from specmx.cli.engine import engine_from_args, model_config
    from specmx.models.perf.engine import model_dims
    board = load_board(args.board)
    dims = model_dims(model_config(args.model))
    engine = engine_from_args(args)
    if args.fit:
        fitted = largest_fit(board, engine, dims, args.weights)
        if fitted is None:
            from dataclasses import replace
            from specmx.boards.costs import check_fit
            check_fit(board, replace(engine, arrays=1, lanes=1), dims, args.weights)   # names the resource
        engine = fitted
    clock = args.clock if args.clock is not None else (design(args).perf.clock_mhz if args.spec else None)
    if clock is not None and not clock > 0:
        raise UsageError(f"clock: must be > 0 MHz, got {clock}")
    kw = {"weights": args.weights, "clock_mhz": clock, "backtrack": args.backtrack, "phase": args.phase,
          "prompt_len": args.prompt_len, "batch": args.batch, "lm_head": not args.host_lm_head}
    label = "single"
    if args.draft is not None:
        draft = model_dims(model_config(args.draft))
        if draft.vocab != dims.vocab:
            raise UsageError(f"draft: vocabulary {draft.vocab} differs from the target's {dims.vocab}")
        widths, budget, label = _tree(args.tree)
        if budget is not None:
            from specmx.models.perf.engine import tree_parents
            acc = _acceptance(args.acceptance, label, args.model, args.acceptance_mode)
            if not isinstance(acc, tuple):
                raise UsageError("acceptance: a budget tree's expected tokens depend on the draft; give a measured FILE")
            kw["parent"] = tree_parents((1,) * budget)      # the node count's cost, as a chain (README)
        else:
            acc = _acceptance(args.acceptance, label, args.model, args.acceptance_mode)
        kw.update(draft=draft, widths=widths, acceptance=acc)
    return board, engine, dims, kw, label


def cmd_perf(args):
    from specmx.models.perf.system import system_perf
    board, engine, dims, kw, label = query_from_args(args)
    try:
        result = system_perf(board, engine, dims, **kw)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = {"model": args.model, "draft": args.draft, "tree": label if args.draft else "single",
              "engine": {"arrays": engine.arrays, "rows": engine.rows, "cols": engine.cols, "lanes": engine.lanes, "tile": engine.tile,
                         "state_slots": engine.state_slots, "pe_stages": engine.pe_stages,
                         "dataflow": engine.dataflow, "mem_latency": engine.mem_latency}, **result}
    out = write_json(result, Path(args.out) / f"mamba_perf_{result['board']}_{Path(args.model).name}.json")
    if args.json:
        print(json.dumps(result))
        return 0
    print_report(result)
    print(f"saved {out}")
    return 0


def print_report(r):
    e = r["engine"]
    j, pw = r["joules_per_token"], r["power_w"]
    spec = f"draft {r['draft']}, tree {r['tree']}" if r["draft"] else f"{r['phase']}"
    lines = [
        ("board", f"{r['board']} at {r['clock_mhz']:g} MHz, weights {r['weights']} in {r['memory']}"),
        ("model", f"{r['model']} ({spec}, batch {r['batch']})"),
        ("engine", f"{e['arrays']} x {e['rows']}x{e['cols']} {e['dataflow']} s={e['pe_stages']}, {e['lanes']} lanes, "
                   f"tile {e['tile']}, "
                   f"{e['state_slots']} state slots"),
        ("tokens/s", f"{r['tokens_per_s']:,.2f}"),
        ("joules/token", f"{j['low']:.3g} .. {j['high']:.3g} (power {pw['low']:.3g} .. {pw['high']:.3g} W)"),
        ("per verification", f"{r['verification_ms']:,.3f} ms, {r['cycles_per_verification']:,} cycles, "
                             f"{r['tokens_per_verification']:.3g} tokens, {r['nodes_per_verification']} nodes"),
        ("bottleneck", f"{r['bottleneck']} ("
                       + ", ".join(f"{k} {v:,}" for k, v in r["bottleneck_cycles"].items()) + " cycles)"),
        ("busy", ", ".join(f"{k} {v:.1%}" for k, v in r["busy"].items())),
        ("bytes/token", f"{r['bytes_per_token']:,.0f} (weights {r['weight_bytes']:,.0f} B)"),
    ]
    if r["backtrack"]:
        lines.append(("state memory", f"{r['state_memory_bytes']:,} B for {r['backtrack']} backtracking"))
    res = r["resources"]
    if "error" in res:
        lines.append(("resources", res["error"]))
    else:
        lines.append(("resources", ("fits" if r["fits"] else "DOES NOT FIT") + ": " + ", ".join(
            f"{k} {v['needed']:,}/{v['available']:,} ({v['share']:.0%})" for k, v in res.items())))
    for a in r["assumptions"]:
        lines.append(("assumed", a))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:>{width}}: {v}")


def add_query_flags(p):
    from specmx.cli.engine import add_engine_flags
    from specmx.boards.costs import WEIGHT_FORMATS
    from specmx.models.perf.system import ACCEPTANCE_MODES, PHASES
    from specmx.models.specdec import BACKTRACK
    p.add_argument("--board", default="vck190", metavar="NAME|FILE", help="a shipped board or a board YAML file")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|DIR", help="the target model (a preset or directory)")
    p.add_argument("--weights", choices=tuple(WEIGHT_FORMATS), default="bf16", help="stored weight format")
    p.add_argument("--draft", default=None, metavar="NAME|DIR", help="draft model (default: plain decode)")
    p.add_argument("--tree", default="3,2,1", metavar="W1,W2,...|budget=N", help="draft tree")
    p.add_argument("--acceptance", default="0.7", metavar="P|FILE",
                   help="per-token acceptance probability, or a measured tokens-per-verification JSON")
    p.add_argument("--acceptance-mode", choices=ACCEPTANCE_MODES, default="greedy",
                   help="which row of bench/acceptance.py's JSON: greedy or sampling at a temperature")
    p.add_argument("--backtrack", choices=BACKTRACK, default="hybrid")
    p.add_argument("--phase", choices=PHASES, default="decode")
    p.add_argument("--prompt-len", type=int, default=128, metavar="N", help="prefill: prompt tokens")
    p.add_argument("--batch", type=int, default=1, metavar="B", help="independent sequences per step")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="engine clock (default: the spec's perf.clock_mhz with --spec, else the board's clock_mhz)")
    p.add_argument("--host-lm-head", action="store_true",
                   help="leave the final norm and LM head to the host (as LightMamba's measurement does)")
    p.add_argument("--fit", action="store_true",
                   help="grow the number of matrix arrays, then the lanes, to the largest that fits the board")
    add_spec_option(p)
    add_engine_flags(p, "engine (override the spec's engine section)")
    p.add_argument("--arrays", type=int, default=None, metavar="N",
                   help="matrix arrays side by side, each with 1/N of every layer's outputs (model only)")


def register_perf(verbs, formatter, name="perf"):
    p = verbs.add_parser(name, help="tokens/s and joules/token on a board (the system model)",
                         formatter_class=formatter)
    add_query_flags(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for the JSON result")
    p.set_defaults(func=cmd_perf)


def _csv(name, text, cast=int):
    try:
        values = [cast(v) for v in str(text).split(",") if v != ""]
    except ValueError:
        raise UsageError(f"{name}: expected comma-separated values, got {text!r}") from None
    if not values:
        raise UsageError(f"{name}: give at least one value")
    return values


def sweep_points(args):
    """Every (board, weights, tree, engine) of the sweep's grid."""
    from dataclasses import replace
    from specmx.boards.board import load_board
    from specmx.boards.costs import WEIGHT_FORMATS
    from specmx.cli.engine import engine_from_args
    boards = [load_board(b) for b in _csv("board", args.board, str)]
    weights = _csv("weights", args.weights, str)
    for w in weights:
        if w not in WEIGHT_FORMATS:
            raise UsageError(f"weights: unknown format {w!r}; allowed: {', '.join(WEIGHT_FORMATS)}")
    trees = [t.strip() for t in args.trees.split(";") if t.strip()]
    if not trees:
        raise UsageError("trees: give at least one tree ('single;1,1;3,2,1')")
    from specmx.models.perf.engine import tree_parents
    from specmx.models.specdec import live_states
    parsed = []                                        # (label, widths or None, live states), parsed once
    for t in trees:
        if t == "single":
            parsed.append((t, None, 1))
            continue
        widths, budget, _ = _tree(t)
        if budget is not None:
            raise UsageError("trees: a sweep needs full trees (widths), not budget=N")
        parsed.append((t, widths, live_states(tree_parents(widths))))
    base = engine_from_args(args)
    engines = []
    for arrays in _csv("arrays", args.arrays_list):
        for rows in _csv("rows", args.rows_list):
            for cols in _csv("cols", args.cols_list):
                for lanes in _csv("lanes", args.lanes_list):
                    for tile in _csv("tiles", args.tiles):
                        try:
                            engines.append(replace(base, rows=rows, cols=cols, lanes=lanes, tile=tile, arrays=arrays))
                        except ValueError as exc:
                            raise UsageError(f"engine.{exc}") from None
    return [(b, w, t, e) for b in boards for w in weights for t in parsed for e in engines]


def cmd_sweep(args):
    from dataclasses import replace
    from tqdm import tqdm
    from specmx.models.perf.engine import model_dims
    from specmx.cli.engine import model_config
    from specmx.models.perf.system import system_perf
    points = sweep_points(args)
    if len(points) > 200_000:
        raise UsageError(f"sweep: {len(points):,} points; at most 200,000 per run")
    dims = model_dims(model_config(args.model))
    draft = model_dims(model_config(args.draft)) if args.draft else None
    p = float(args.acceptance)
    if not 0 <= p <= 1:
        raise UsageError(f"acceptance: a probability must be in 0..1, got {args.acceptance}")
    rows, skipped = [], 0
    for board, weights, (tree, widths, slots), engine in tqdm(points, desc="sweep", unit="point", mininterval=1.0):
        kw = {"weights": weights, "clock_mhz": args.clock, "backtrack": args.backtrack}
        if widths is not None:
            kw.update(draft=draft, widths=widths, acceptance=p)
        if args.state_slots is None:                    # the state buffer sized to the tree
            engine = replace(engine, state_slots=max(2, slots))
        try:
            r = system_perf(board, engine, dims, **kw)
        except ValueError:
            skipped += 1                                   # e.g. a tree with more live states than slots
            continue
        rows.append({"board": board.name, "weights": weights, "tree": tree, "arrays": engine.arrays,
                     "rows": engine.rows, "cols": engine.cols,
                     "lanes": engine.lanes, "tile": engine.tile, "nodes": r["nodes_per_verification"],
                     "tokens_per_verification": r["tokens_per_verification"], "tokens_per_s": r["tokens_per_s"],
                     "joules_per_token_low": r["joules_per_token"]["low"],
                     "joules_per_token_high": r["joules_per_token"]["high"], "bottleneck": r["bottleneck"],
                     "fits": r["fits"], "bytes_per_token": r["bytes_per_token"],
                     "macs_per_s": r["macs_per_s"], "peak_macs_per_s": r["peak_macs_per_s"],
                     "bandwidth_gbps": r["bandwidth_gbps"]})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "draft": args.draft, "acceptance": p, "points": len(points), "skipped": skipped,
              "rows": rows}
    (out / "mamba_sweep.json").write_text(json.dumps(result, indent=1))
    lines = [f"Sweep of {args.model}" + (f" with draft {args.draft}, acceptance {p}" if args.draft else "")
             + f": {len(rows):,} points evaluated, {skipped:,} refused (for example more live states than slots).", "",
             "Best fitting configuration per board and weight format:", "",
             "| board | weights | tree | engine | tile | tokens/s | J/token | bottleneck |", "|---|---|---|---|---|---|---|---|"]
    best = {}
    for r in rows:
        key = (r["board"], r["weights"])
        if r["fits"] and (key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]):
            best[key] = r
    for (b, w), r in sorted(best.items()):
        lines.append(f"| {b} | {w} | {r['tree']} | {r['arrays']} x {r['rows']}x{r['cols']}, {r['lanes']} lanes | {r['tile']} | "
                     f"{r['tokens_per_s']:,.2f} | {r['joules_per_token_low']:.3g} .. {r['joules_per_token_high']:.3g} | "
                     f"{r['bottleneck']} |")
    (out / "mamba_sweep.md").write_text("\n".join(lines) + "\n")
    _plots(rows, out)
    print("\n".join(lines))
    print(f"saved {out / 'mamba_sweep.json'}, {out / 'mamba_sweep.md'}, {out / 'mamba_roofline.png'}, "
          f"{out / 'mamba_tokens_vs_tree.png'}")
    return 0


def _plots(rows, out):
    """A roofline per board (achieved MAC/s against MACs per off-chip byte, under the memory
    roof and the engines' peak) and tokens/s against tree size per board (best fitting engine)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    boards = sorted({r["board"] for r in rows})
    if not boards:
        return
    fig, axes = plt.subplots(1, len(boards), figsize=(4.5 * len(boards), 4), squeeze=False)
    for ax, b in zip(axes[0], boards):
        pts = [r for r in rows if r["board"] == b]
        x = [r["macs_per_s"] / (r["tokens_per_s"] * r["bytes_per_token"]) for r in pts]
        y = [r["macs_per_s"] for r in pts]
        ax.scatter(x, y, s=6, c=["tab:blue" if r["fits"] else "tab:gray" for r in pts])
        lo, hi = min(x) / 2, max(x) * 2
        bw = pts[0]["bandwidth_gbps"] * 1e9
        peak = max(r["peak_macs_per_s"] for r in pts if r["fits"]) if any(r["fits"] for r in pts) else max(y)
        ax.plot([lo, hi], [min(bw * lo, peak), min(bw * hi, peak)], "k-", lw=1)
        ax.axhline(peak, color="k", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", title=f"{b}", xlabel="MACs per off-chip byte", ylabel="MAC/s")
    fig.suptitle("Roofline: each point one engine, tree and format (gray: does not fit)")
    fig.tight_layout()
    fig.savefig(out / "mamba_roofline.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for b in boards:
        by_nodes = {}
        for r in rows:
            if r["board"] == b and r["fits"]:
                by_nodes[r["nodes"]] = max(by_nodes.get(r["nodes"], 0), r["tokens_per_s"])
        if by_nodes:
            n = sorted(by_nodes)
            ax.plot(n, [by_nodes[k] for k in n], "o-", label=b)
    ax.set(xscale="log", yscale="log", xlabel="tree nodes per verification", ylabel="tokens/s (best fitting engine)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "mamba_tokens_vs_tree.png", dpi=110)
    plt.close(fig)


def register_sweep(verbs, formatter):
    from specmx.cli.engine import add_engine_flags
    from specmx.models.specdec import BACKTRACK
    p = verbs.add_parser("sweep", help="the system model over boards, trees, engines and formats",
                         formatter_class=formatter)
    p.add_argument("--board", default="vck190,vhk158,u280", metavar="B1,B2,...", help="boards (names or files)")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|DIR")
    p.add_argument("--draft", default="mamba2-130m", metavar="NAME|DIR", help="draft model for the trees")
    p.add_argument("--trees", default="single;1;1,1;1,1,1,1;2,2;3,2,1", metavar="T1;T2;...",
                   help="trees separated by ';' ('single': plain decode)")
    p.add_argument("--weights", default="bf16,int8,int4", metavar="F1,F2,...")
    p.add_argument("--rows-list", default="4,8,16", metavar="R1,R2,...", help="matrix engine rows")
    p.add_argument("--cols-list", default="64,128,256", metavar="C1,C2,...", help="matrix engine columns")
    p.add_argument("--arrays-list", default="1,2,4,8", metavar="A1,A2,...", help="matrix arrays side by side")
    p.add_argument("--lanes-list", default="8,32", metavar="L1,L2,...", help="SSM lanes")
    p.add_argument("--tiles", default="8,16", metavar="T1,T2,...", help="tree nodes per tile")
    p.add_argument("--acceptance", default="0.7", metavar="P", help="per-token acceptance probability")
    p.add_argument("--backtrack", choices=BACKTRACK, default="hybrid")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ", help="(default: each board's clock_mhz)")
    add_spec_option(p)
    add_engine_flags(p, "engine fields the grid keeps (override the spec's engine section)", (
        ("--rows", "unused by the grid (see --rows-list)"), ("--cols", "unused (see --cols-list)"),
        ("--stages", "FMA pipeline stages per PE"), ("--lanes", "unused (see --lanes-list)"),
        ("--tile", "unused (see --tiles)"),
        ("--state-slots", "state buffer slots per layer (default: the live states each tree needs)"),
        ("--mem-latency", "memory latency in cycles"), ("--mem-words", "unused by the system model")))
    p.add_argument("--out", default="out/sweep", metavar="DIR", help="folder for JSON, table and plots")
    p.set_defaults(func=cmd_sweep)
