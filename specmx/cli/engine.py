"""`specmx engine perf|check`: the Mamba engine's cycle model for one speculative verification
step and for plain decode, for any model size, in milliseconds; and speculative generation on
the RTL engine (`hdl.mamba_engine`) against the golden run and that cycle model."""

import json
import sys
from pathlib import Path

from specmx.cli.common import UsageError, add_spec_option, design, int_list, print_table, write_json
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


ENGINE_FLAGS = (("--rows", "matrix engine rows"), ("--cols", "matrix engine columns"),
                ("--stages", "FMA pipeline stages per PE"), ("--lanes", "conv/scan lanes"),
                ("--tile", "tree nodes per tile (M of each linear layer)"),
                ("--state-slots", "state buffer slots per layer"),
                ("--mem-latency", "memory latency in cycles"),
                ("--mem-words", "32-bit words per cycle per memory channel"))


def add_engine_flags(p, title, flags=ENGINE_FLAGS):
    """The engine override flags (`engine_from_args` applies them)."""
    g = p.add_argument_group(title)
    for flag, what in flags:
        g.add_argument(flag, type=int, default=None, metavar="N", help=what)


def engine_from_args(args, base=None):
    """The spec's `engine` section (or `base` when no --spec is given) with the flags that were
    given applied."""
    base = design(args).engine if base is None or args.spec else base
    return with_fields(base, rows=args.rows, cols=args.cols, pe_stages=args.stages, lanes=args.lanes,
                       tile=args.tile, state_slots=args.state_slots, mem_latency=getattr(args, "mem_latency", None),
                       mem_words=getattr(args, "mem_words", None), arrays=getattr(args, "arrays", None))


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
    out = write_json(result, Path(args.out) / f"engine_perf_{Path(args.model).name}.json")
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
    add_engine_flags(p, "engine (override the spec's engine section)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for the JSON result")
    p.set_defaults(func=cmd_perf)
    register_check(verbs, formatter)
    register_synth(verbs, formatter)


def cmd_check(args):
    """Speculative generation (or plain decode) on the RTL engine: linear layers on the matrix
    engine, conv and scan on the SSM units, the host as sequencer; against the golden run and
    the cycle model."""
    from specmx.cli.common import check_simulator
    from specmx.models.perf.engine import tree_parents
    from specmx.models.specdec import TreeShape, live_states
    from specmx.sim.engine_check import MICRO_ENGINE, check_engine
    if args.sim != "verilator":
        raise UsageError(f"sim: the engine co-simulation runs on verilator (Icarus would take hours); got {args.sim!r}")
    check_simulator(args.sim)
    if args.model not in ("micro", "tiny"):
        raise UsageError(f"model: the co-simulation runs a random model of each family; allowed: micro, tiny, "
                         f"got {args.model!r}")
    single = args.tree in ("single", "0", "")
    try:
        tree = None if single else TreeShape(args.tree)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for name, value in (("idle", args.idle), ("backpressure", args.backpressure)):
        if not 0 <= value < 1:
            raise UsageError(f"{name}: must be a probability in 0..1 (exclusive of 1), got {value}")
    if not 1 <= args.tokens <= 256:
        raise UsageError(f"tokens: must be 1..256, got {args.tokens}")
    engine = engine_from_args(args, MICRO_ENGINE)
    for name, value, high in (("engine.rows", engine.rows, 8), ("engine.cols", engine.cols, 8),
                              ("engine.lanes", engine.lanes, 8), ("engine.tile", engine.tile, 32),
                              ("engine.state_slots", engine.state_slots, 64)):
        if value > high:
            raise UsageError(f"{name}: the co-simulation takes at most {high}, got {value}")
    if engine.state_slots < 2:
        raise UsageError(f"engine.state_slots: tree mode needs at least 2, got {engine.state_slots}")
    if engine.fma.in_fmt != "bf16" or not engine.fma.exact:
        raise UsageError("engine.fma: the co-simulation runs the exact bf16 x bf16 + fp32 FMA of the hardware "
                         "numerics model; allowed: in_fmt bf16 without window")
    need = 1 if single else (tree["budget"] + 1 if isinstance(tree, dict) else live_states(tree_parents(tree)))
    if need > engine.state_slots:
        raise UsageError(f"tree: needs up to {need} live states per layer; engine.state_slots holds "
                         f"{engine.state_slots}")
    report = check_engine(args.family, tree="single" if single else
                          (f"budget={tree['budget']}" if isinstance(tree, dict) else tree),
                          backtrack=args.backtrack, tokens=args.tokens, engine=engine, seed=args.seed,
                          idle=args.idle, backpressure=args.backpressure, simulator=args.sim, size=args.model)
    if report.get("measured_cycles") is None:
        raise RuntimeError(f"sim: the co-simulation did not complete; log in {report['log_dir']}")
    out = Path(args.out) / f"engine_check_{args.family}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    mismatches = report["token_mismatches"] + report["logit_mismatches"] + report["state_mismatches"]
    timing = (f"{report['timing_mismatches']} operations off the list schedule" if report["timed"] else
              "timing unchecked under random stalls")
    print(f"{report['tokens']} tokens, {mismatches} mismatches, measured {report['measured_cycles']} cycles, "
          f"predicted {report['predicted_cycles']} ({report['verifications']} verifications, {report['nodes']} nodes, "
          f"overlap {report['overlap']} cycles measured, {report['predicted_overlap']} predicted; {timing})")
    return 0 if report["ok"] else 1


def register_check(verbs, formatter):
    from specmx.cli.common import add_sim_options
    p = verbs.add_parser("check", help="speculative generation on the RTL engine against the golden and the "
                         "cycle model", formatter_class=formatter)
    p.add_argument("--model", default="micro", metavar="micro|tiny",
                   help="random weights, unit-scale embeddings: micro (2 layers, d_model 32, vocab 16) or tiny "
                        "(2 layers, d_model 64 / 48, vocab 512)")
    p.add_argument("--family", choices=("mamba1", "mamba2"), default="mamba1")
    p.add_argument("--tree", default="3,2,1", metavar="W1,W2,...|budget=N|single",
                   help="the draft tree ('single': plain decode, one node per verification)")
    p.add_argument("--backtrack", choices=BACKTRACK, default="store")
    p.add_argument("--tokens", type=int, default=8, metavar="N")
    p.add_argument("--idle", type=float, default=0.0, metavar="P",
                   help="random gaps on the host's streams (then timing is not checked)")
    p.add_argument("--backpressure", type=float, default=0.0, metavar="P", help="random back-pressure, likewise")
    add_spec_option(p)
    p.add_argument("--out", default="out", metavar="DIR", help="folder for the JSON report (engine_check_<family>.json)")
    add_engine_flags(p, "engine (default: the micro engine, 4x4 WS, s = 3, 1 lane, tile 8, 8 slots, "
                     "memory 16 cycles / 1 word; a --spec file's engine section replaces it)")
    add_sim_options(p)
    p.set_defaults(func=cmd_check)


def cmd_synth(args):
    """ECP5 area (and, with --fmax, nextpnr's Fmax) of the engine built for a model: the matrix
    engine (its PE mapped once, counted R x C times) and the conv and scan units in tree mode."""
    from specmx.boards.ecp5 import ECP5_DEVICES
    from specmx.cli.common import save_result
    from specmx.hdl.mamba_engine import MambaEngine
    from specmx.hdl.systolic import PE_MODULE
    from specmx.models.perf.engine import model_dims
    from specmx.synth import synthesize
    from specmx.sim.engine_check import MICRO_ENGINE
    engine = engine_from_args(args, MICRO_ENGINE)
    if engine.state_slots < 2:
        raise UsageError(f"engine.state_slots: tree mode needs at least 2, got {engine.state_slots}")
    dims = model_dims(model_config(args.model))
    rtl = MambaEngine(engine, dims)
    result = {"model": args.model, "family": dims.family, "rows": engine.rows, "cols": engine.cols,
              "dataflow": engine.dataflow, "pe_stages": engine.pe_stages, "lanes": engine.lanes,
              "tile": engine.tile, "state_slots": engine.state_slots, "config": engine.fma.name}
    figures = synthesize(rtl, "mamba_engine", fmax=args.fmax, blocks={PE_MODULE: rtl.mxu.array.pe()},
                         generic=args.generic)
    result.update({k: v for k, v in figures.items() if not k.startswith("block_")})
    luts, dsps = figures["ecp5_lut"] + 2 * figures["ecp5_carry"], figures["ecp5_dsp"]
    lut_cap, dsp_cap = ECP5_DEVICES["85k"]
    result["fits_ecp5_85f"] = bool(luts <= lut_cap and dsps <= dsp_cap and figures["ecp5_bram"] <= 208)
    result["ecp5_85f_lut_share"] = round(luts / lut_cap, 3)
    if args.fmax and result.get("fmax_mhz") is None:
        print("note: no Fmax: the engine does not fit the largest ECP5 (85k) with 20% headroom for place and route",
              file=sys.stderr)
    name = f"synth_engine_{Path(args.model).name}_{engine.rows}x{engine.cols}_l{engine.lanes}.json"
    return save_result(result, Path(args.out) / name, args.json)


def register_synth(verbs, formatter):
    p = verbs.add_parser("synth", help="ECP5 area (and Fmax) of the engine built for a model",
                         formatter_class=formatter)
    p.add_argument("--model", default="micro", metavar="NAME|DIR", help="the model the engine is built for")
    add_spec_option(p)
    add_engine_flags(p, "engine (default: the co-simulation's micro engine; a --spec file's engine section "
                     "replaces it)", ENGINE_FLAGS[:6])
    p.add_argument("--fmax", action="store_true",
                   help="also place and route with nextpnr-ecp5 for Fmax (tens of minutes on 2 cores)")
    p.add_argument("--generic", action="store_true",
                   help="also the technology-neutral gate and LUT4 counts (ABC maps every multiplier to gates: "
                        "hours for the function units)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for the JSON result")
    p.set_defaults(func=cmd_synth)
