"""`specmx engine perf|check`: the Mamba engine's cycle model for one speculative verification
step and for plain decode, for any model size, in milliseconds; and speculative generation with
the SSM in series on the RTL (tree-mode conv and scan units) against the golden run."""

import json
from pathlib import Path

from specmx.cli.common import UsageError, add_spec_option, design, int_list, print_table
from specmx.models.specdec import BACKTRACK
from specmx.spec import with_fields

__all__ = ["register", "engine_from_args", "model_config"]


def model_config(name):
    """The dimensions of a preset (either family), a shipped trained model or a model directory,
    without loading weights."""
    from specmx.models import mamba2
    from specmx.models.mamba import PRESETS, PRETRAINED, MambaConfig, get_preset, pretrained_dir, read_config_json
    if name in PRESETS:
        return get_preset(name)
    if name in mamba2.PRESETS:
        return mamba2.get_preset(name)
    path = pretrained_dir(name) if name in PRETRAINED else Path(name)
    if not path.is_dir():
        raise UsageError(f"model: unknown model {name!r} and no such directory; allowed: "
                         f"{', '.join(PRETRAINED + tuple(PRESETS) + tuple(mamba2.PRESETS))} or a directory")
    try:
        cfg = read_config_json(path)
        if cfg.get("model_type", "mamba") == "mamba2":
            return mamba2.Mamba2Config.from_hf(cfg)
        return MambaConfig.from_hf(cfg)
    except ValueError as exc:
        raise UsageError(f"model: {exc}") from None


def engine_from_args(args):
    """The spec's `engine` section with the flags that were given applied."""
    return with_fields(design(args).engine, rows=args.rows, cols=args.cols, pe_stages=args.stages,
                       lanes=args.lanes, tile=args.tile, state_slots=args.state_slots,
                       mem_latency=args.mem_latency, mem_words=args.mem_words)


def tree_from_args(args):
    """Parent indices from --parents, or the full tree of --tree widths ('1' chains: '1,1,1')."""
    from specmx.models.perf.engine import tree_parents
    from specmx.models.specdec import TreeShape, check_parents
    if args.parents is not None:
        try:
            return check_parents(int_list("parents", args.parents, low=-1))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.tree in ("", "single", "0"):
        return [-1]
    try:
        widths = TreeShape(args.tree)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if isinstance(widths, dict):
        raise UsageError("tree: a budget tree's shape depends on the draft's probabilities; give widths "
                         "per depth (3,2,1), 'single' or --parents")
    return tree_parents(widths)


def cmd_perf(args):
    from specmx.models.perf.engine import engine_perf, model_dims
    engine = engine_from_args(args)
    dims = model_dims(model_config(args.model))
    parent = tree_from_args(args)
    if args.clock is not None and not args.clock > 0:
        raise UsageError(f"clock: must be > 0 MHz, got {args.clock}")
    try:
        result = engine_perf(engine, dims, parent, args.backtrack, args.accepted, args.clock)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = {"model": args.model, "family": dims.family, **result}
    out = Path(args.out) / f"engine_perf_{Path(args.model).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return 0
    path = result["critical_path"]
    shown = dict(result, critical_path=" -> ".join(path if len(path) <= 8 else path[:4] + ["..."] + path[-3:])
                 + f" ({len(path)} operations)")
    print_table(shown)
    print(f"saved {out}")
    return 0


def register(nouns, formatter):
    verbs = nouns.add_parser("engine", help="the Mamba engine (speculative tree verification)") \
        .add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("perf", help="cycles per verification and per token from the cycle model",
                         formatter_class=formatter)
    p.add_argument("--model", default="130m", metavar="NAME|DIR",
                   help="a preset (130m, mamba2-2.7b, micro, ...), a shipped model or a model directory")
    p.add_argument("--tree", default="3,2,1", metavar="W1,W2,...",
                   help="children per depth of a full tree ('single': plain decode)")
    p.add_argument("--parents", default=None, metavar="P0,P1,...",
                   help="the tree as parent indices (-1 for the root, parents first); overrides --tree")
    p.add_argument("--backtrack", choices=BACKTRACK, default="store")
    p.add_argument("--accepted", type=int, default=None, metavar="N",
                   help="nodes on the accepted path, root included (default: the deepest path)")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ", help="also tokens/s at this clock")
    add_spec_option(p)
    g = p.add_argument_group("engine (override the spec's engine section)")
    for flag, what in (("--rows", "matrix engine rows"), ("--cols", "matrix engine columns"),
                       ("--stages", "FMA pipeline stages per PE"), ("--lanes", "conv/scan lanes"),
                       ("--tile", "tree nodes per tile (M of each linear layer)"),
                       ("--state-slots", "state buffer slots per layer"),
                       ("--mem-latency", "memory latency in cycles"),
                       ("--mem-words", "32-bit words per cycle per memory channel")):
        g.add_argument(flag, type=int, default=None, metavar="N", help=what)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for the JSON result")
    p.set_defaults(func=cmd_perf)
    register_check(verbs, formatter)


def cmd_check(args):
    """Speculative generation with the SSM in series on the RTL (tree-mode conv and scan units)
    and the linear layers on the host, against the golden run."""
    from specmx.cli.common import check_simulator
    from specmx.models.specdec import TreeShape
    from specmx.sim.tree_ssm_check import check_tree_ssm
    check_simulator(args.sim)
    try:
        tree = TreeShape(args.tree)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for name, value in (("idle", args.idle), ("backpressure", args.backpressure)):
        if not 0 <= value < 1:
            raise UsageError(f"{name}: must be a probability in 0..1 (exclusive of 1), got {value}")
    for name, value, high in (("tokens", args.tokens, 256), ("lanes", args.lanes, 8), ("slots", args.slots, 64),
                              ("tile", args.tile, 64)):
        if not 1 <= value <= high:
            raise UsageError(f"{name}: must be 1..{high}, got {value}")
    from specmx.models.perf.engine import tree_parents
    from specmx.models.specdec import live_states
    if not isinstance(tree, dict) and live_states(tree_parents(tree)) > args.slots:
        raise UsageError(f"tree: needs {live_states(tree_parents(tree))} live states per layer; --slots is {args.slots}")
    if isinstance(tree, dict) and tree["budget"] + 1 > args.slots:
        raise UsageError(f"tree: a budget of {tree['budget']} nodes can need {tree['budget'] + 1} slots; --slots is {args.slots}")
    if args.model != "micro":
        raise UsageError(f"model: the co-simulation runs the random micro model of each family; allowed: micro, "
                         f"got {args.model!r}")
    report = check_tree_ssm(args.family, tree=f"budget={tree['budget']}" if isinstance(tree, dict) else tree,
                            backtrack=args.backtrack, tokens=args.tokens, lanes=args.lanes, slots=args.slots,
                            tile=args.tile, seed=args.seed, idle=args.idle, backpressure=args.backpressure,
                            simulator=args.sim)
    if report.get("measured_cycles") is None:
        raise RuntimeError(f"sim: the co-simulation did not complete; log in {report['log_dir']}")
    mismatches = report["token_mismatches"] + report["logit_mismatches"] + report["state_mismatches"]
    print(f"{report['tokens']} tokens, {mismatches} mismatches, measured {report['measured_cycles']} cycles, "
          f"predicted {report['predicted_cycles']} ({report['verifications']} verifications, {report['nodes']} nodes, "
          f"{report['unit_runs']} conv/scan runs on the RTL; linear layers on the host)")
    return 0 if report["ok"] else 1


def register_check(verbs, formatter):
    from specmx.cli.common import add_sim_options
    p = verbs.add_parser("check", help="speculative generation with the SSM units on the RTL against the golden",
                         formatter_class=formatter)
    p.add_argument("--model", default="micro", help="micro (random weights, unit-scale embeddings)")
    p.add_argument("--family", choices=("mamba1", "mamba2"), default="mamba1")
    p.add_argument("--tree", default="3,2,1", metavar="W1,W2,...|budget=N")
    p.add_argument("--backtrack", choices=BACKTRACK, default="store")
    p.add_argument("--tokens", type=int, default=8, metavar="N")
    p.add_argument("--lanes", type=int, default=1, metavar="N", help="conv/scan lanes")
    p.add_argument("--slots", type=int, default=8, metavar="N", help="state slots per unit")
    p.add_argument("--tile", type=int, default=8, metavar="N")
    p.add_argument("--idle", type=float, default=0.1, metavar="P")
    p.add_argument("--backpressure", type=float, default=0.1, metavar="P")
    add_sim_options(p)
    p.set_defaults(func=cmd_check)
