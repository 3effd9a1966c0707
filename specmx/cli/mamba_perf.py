"""`specmx mamba perf|sweep`: the system model (`models.perf.system`): tokens/s and joules/token
of a Mamba engine on a board, plain decode, speculative decoding or prefill."""

import json
import math
from pathlib import Path

from specmx.cli.common import UsageError, add_spec_option, design

__all__ = ["register_perf", "query_from_args", "perf_row"]

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


def _acceptance(text, label):
    """A probability, or ('measured', tokens per verification) read from a file."""
    from specmx.models.perf.system import measured_tokens
    try:
        p = float(text)
    except ValueError:
        try:
            return ("measured", measured_tokens(text, label))
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
            check_fit(board, replace(engine, rows=1, cols=1, lanes=1), dims, args.weights)   # names the resource
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
            acc = _acceptance(args.acceptance, label)
            if not isinstance(acc, tuple):
                raise UsageError("acceptance: a budget tree's expected tokens depend on the draft; give a measured FILE")
            kw["parent"] = tree_parents((1,) * budget)      # the node count's cost, as a chain (README)
        else:
            acc = _acceptance(args.acceptance, label)
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
              "engine": {"rows": engine.rows, "cols": engine.cols, "lanes": engine.lanes, "tile": engine.tile,
                         "state_slots": engine.state_slots, "pe_stages": engine.pe_stages,
                         "dataflow": engine.dataflow, "mem_latency": engine.mem_latency}, **result}
    out = Path(args.out) / f"mamba_perf_{result['board']}_{Path(args.model).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
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
        ("engine", f"{e['rows']}x{e['cols']} {e['dataflow']} s={e['pe_stages']}, {e['lanes']} lanes, tile {e['tile']}, "
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
    from specmx.models.perf.system import PHASES
    from specmx.models.specdec import BACKTRACK
    p.add_argument("--board", default="vck190", metavar="NAME|FILE", help="a shipped board or a board YAML file")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|DIR", help="the target model (a preset or directory)")
    p.add_argument("--weights", choices=tuple(WEIGHT_FORMATS), default="bf16", help="stored weight format")
    p.add_argument("--draft", default=None, metavar="NAME|DIR", help="draft model (default: plain decode)")
    p.add_argument("--tree", default="3,2,1", metavar="W1,W2,...|budget=N", help="draft tree")
    p.add_argument("--acceptance", default="0.7", metavar="P|FILE",
                   help="per-token acceptance probability, or a measured tokens-per-verification JSON")
    p.add_argument("--backtrack", choices=BACKTRACK, default="hybrid")
    p.add_argument("--phase", choices=PHASES, default="decode")
    p.add_argument("--prompt-len", type=int, default=128, metavar="N", help="prefill: prompt tokens")
    p.add_argument("--batch", type=int, default=1, metavar="B", help="independent sequences per step")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="engine clock (default: the spec's perf.clock_mhz with --spec, else the board's clock_mhz)")
    p.add_argument("--host-lm-head", action="store_true",
                   help="leave the final norm and LM head to the host (as LightMamba's measurement does)")
    p.add_argument("--fit", action="store_true",
                   help="grow the matrix engine's columns (rows kept), then its lanes, to the largest that fits the board")
    add_spec_option(p)
    add_engine_flags(p, "engine (override the spec's engine section)")


def register_perf(verbs, formatter):
    p = verbs.add_parser("perf", help="tokens/s and joules/token on a board (the system model)",
                         formatter_class=formatter)
    add_query_flags(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for the JSON result")
    p.set_defaults(func=cmd_perf)
