"""The `specmx` command line: simulation checks, synthesis and the demo.

Every bad argument ends in one line `specmx: error: <field>: <what is allowed>` and exit code 2,
before anything is written.
"""

import argparse
import json
import sys
import time
from pathlib import Path


__all__ = ["main"]


class UsageError(Exception):
    """Bad user input: reported as one line, exit code 2."""


def _fma_config(args):
    from specmx.models.fma import FMAConfig
    try:
        return FMAConfig(in_fmt=args.in_fmt, acc_fmt=args.acc_fmt, rounding=args.rounding,
                         subnormals=args.subnormals, **FMAConfig.parse_norm(args.norm))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _add_fma_options(p):
    from specmx.models.fma import ACC_FORMATS, IN_FORMATS, ROUNDINGS, SUBNORMAL_MODES
    p.add_argument("--in", dest="in_fmt", default="bf16", metavar="FMT",
                   help=f"multiplicand format: {', '.join(IN_FORMATS)} (default: %(default)s)")
    p.add_argument("--acc", dest="acc_fmt", default="fp32", metavar="FMT",
                   help=f"accumulator format: {', '.join(ACC_FORMATS)} (default: %(default)s)")
    p.add_argument("--norm", default="exact", metavar="SPEC",
                   help="'exact' or window=N,step=1|2|4|8,policy=round|flush|internal "
                        "(default: %(default)s)")
    p.add_argument("--rounding", default="rne", metavar="MODE",
                   help=f"{', '.join(ROUNDINGS)} (default: %(default)s)")
    p.add_argument("--subnormals", default="ieee", metavar="MODE",
                   help=f"{', '.join(SUBNORMAL_MODES)} (default: %(default)s)")
    p.add_argument("--stages", type=int, default=2, metavar="N",
                   help="pipeline stages 0..5 (default: %(default)s)")


def _positive(name, value, low=1, high=None):
    if value < low or (high is not None and value > high):
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise UsageError(f"{name}: must be {rng}, got {value}")
    return value


def cmd_fma_check(args):
    from specmx.sim.fma_check import check_fma
    from specmx.sim.runner import SIMULATORS, available_simulators
    cfg = _fma_config(args)
    _positive("vectors", args.vectors, 1, 10_000_000)
    _positive("stages", args.stages, 0, 5)
    if args.sim not in SIMULATORS:
        raise UsageError(f"sim: unknown simulator {args.sim!r}; allowed: {', '.join(SIMULATORS)}")
    if args.sim not in available_simulators():
        raise UsageError(f"sim: {args.sim} is not installed here; available: "
                         f"{', '.join(available_simulators()) or 'none'}")
    t0 = time.perf_counter()
    report = check_fma(cfg, args.vectors, args.stages, args.sim, args.seed, stall=args.stall)
    if not report.get("vectors"):
        print(f"specmx: error: simulation did not complete; log in {report['log_dir']}", file=sys.stderr)
        return 1
    print(f"{report['vectors']} vectors, {report['mismatches']} mismatches "
          f"({cfg.name}, {args.sim}, {args.stages} stages, {time.perf_counter() - t0:.1f} s)")
    for mm in report["first_mismatches"]:
        print(f"  mismatch: {mm}")
    return 0 if report["passed"] and report["mismatches"] == 0 else 1


def _slug(cfg):
    return cfg.name.replace(":", "_").replace(",", "_").replace("=", "")


def _save_result(result, path, as_json):
    """Write a result as JSON (creating its folder) and print it as JSON or a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    if as_json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:>{width}}: {value}")
        print(f"saved {path}")
    return 0


def _add_synth_output_options(p):
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--no-fmax", action="store_true", help="skip nextpnr place and route")
    p.add_argument("--out", default="out", metavar="DIR", help="(default: %(default)s)")


def cmd_synth_fma(args):
    from specmx.hdl.fma import FMA
    from specmx.synth import synthesize
    cfg = _fma_config(args)
    _positive("stages", args.stages, 0, 5)
    result = {"config": cfg.name, "stages": args.stages}
    result.update(synthesize(FMA(cfg, args.stages), "fma", fmax=not args.no_fmax))
    return _save_result(result, Path(args.out) / f"synth_fma_{_slug(cfg)}.json", args.json)


def _triple(name, text):
    try:
        parts = [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"{name}: expected three integers M,N,K, got {text!r}") from None
    if len(parts) != 3:
        raise UsageError(f"{name}: expected three integers M,N,K, got {text!r}")
    for label, v in zip("MNK", parts):
        if v < 1:
            raise UsageError(f"{name}: {label} must be >= 1, got {v}")
    return tuple(parts)


def _int_list(name, text, low=1, high=None):
    try:
        values = [int(x) for x in str(text).split(",")]
    except ValueError:
        raise UsageError(f"{name}: expected comma-separated integers, got {text!r}") from None
    for v in values:
        _positive(name, v, low, high)
    return values


def _dataflows(text, allowed):
    values = text.split(",")
    for v in values:
        if v not in allowed:
            raise UsageError(f"dataflow: unknown {v!r}; allowed: {', '.join(allowed)}")
    return values


def cmd_gemm_check(args):
    from specmx.sim.gemm_check import check_gemm
    from specmx.sim.runner import SIMULATORS, available_simulators
    cfg = _fma_config(args)
    rows, = _int_list("rows", args.rows, 1, 64)
    cols, = _int_list("cols", args.cols, 1, 64)
    _positive("stages", args.stages, 1, 5)
    dataflow, = _dataflows(args.dataflow, ("os", "ws"))
    shape = _triple("shape", args.shape)
    buffers = _triple("buffers", args.buffers) if args.buffers else shape
    for label, v, cap in zip("MNK", shape, buffers):
        if v > cap:
            raise UsageError(f"shape: {label}={v} overflows the generated buffers (allowed 1..{cap}; "
                             f"raise --buffers)")
    if max(buffers) > 4096:
        raise UsageError(f"buffers: each size must be 1..4096, got {args.buffers}")
    if args.sim not in SIMULATORS or args.sim not in available_simulators():
        raise UsageError(f"sim: {args.sim!r} is not available; allowed: {', '.join(available_simulators())}")
    report = check_gemm(cfg, rows, cols, dataflow, shape, args.stages, args.sim, args.seed,
                        backpressure=args.backpressure, max_size=buffers)
    if report.get("mismatches") is None:
        print(f"specmx: error: simulation did not complete; log in {report['log_dir']}", file=sys.stderr)
        return 1
    print(f"{shape[0]}x{shape[1]}x{shape[2]} on {rows}x{cols} {dataflow}: {report['mismatches']} mismatches, "
          f"measured {report['cycles']} cycles, predicted {report['predicted_cycles']} "
          f"(incl. {report['backpressure_cycles']} back-pressure cycles)")
    for mm in report["first_mismatches"]:
        print(f"  mismatch: {mm}")
    ok = report["passed"] and report["mismatches"] == 0 and report["cycles"] == report["predicted_cycles"]
    return 0 if ok else 1


def cmd_perf_gemm(args):
    from specmx.models.perf.gemm import gemm_cycles, scalesim_compute_cycles
    rows, = _int_list("rows", args.rows)
    cols, = _int_list("cols", args.cols)
    dataflow, = _dataflows(args.dataflow, ("os", "ws"))
    M, N, K = _triple("shape", args.shape)
    if args.clock <= 0:
        raise UsageError(f"clock: must be > 0 MHz, got {args.clock}")
    if args.bandwidth is not None and args.bandwidth <= 0:
        raise UsageError(f"bandwidth: must be > 0 bytes/cycle, got {args.bandwidth}")
    _positive("stages", args.stages, 1, 5)
    t0 = time.perf_counter()
    result = gemm_cycles(M, N, K, rows, cols, dataflow, args.stages, args.clock, args.bandwidth).as_dict()
    result["query_ms"] = (time.perf_counter() - t0) * 1e3
    if args.compare == "scalesim":
        from specmx.scalesim import run_scalesim
        cycles, seconds = run_scalesim([(M, N, K)], rows, cols, dataflow)
        result["scalesim_compute_cycles"] = cycles[0]
        result["scalesim_seconds"] = seconds
        result["specmx_scalesim_mode_cycles"] = scalesim_compute_cycles(M, N, K, rows, cols, dataflow)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value:.4g}" if isinstance(value, float) else f"{key:>28}: {value}")
    return 0


def cmd_perf_sweep(args):
    from tqdm import tqdm
    from specmx.models.perf.gemm import gemm_cycles
    rows_list = _int_list("rows", args.rows)
    cols_list = _int_list("cols", args.cols) if args.cols else None
    dataflows = _dataflows(args.dataflow, ("os", "ws"))
    shapes = [_triple("shapes", s) for s in args.shapes.split(";")]
    points = [(r, c, df, sh) for r in rows_list for c in (cols_list or [r]) for df in dataflows for sh in shapes]
    out = Path(args.out)
    results = []
    t0 = time.perf_counter()
    for r, c, df, (M, N, K) in tqdm(points, desc="design points", unit="pt", mininterval=0.5):
        res = gemm_cycles(M, N, K, r, c, df, args.stages, args.clock, args.bandwidth).as_dict()
        results.append({"rows": r, "cols": c, "dataflow": df, "M": M, "N": N, "K": K, **res})
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps({"seconds": seconds, "points": results}, indent=1))
    _plot_sweep(results, out / "sweep.png")
    print(f"{len(results)} design points in {seconds:.3f} s; saved {out / 'sweep.json'} and {out / 'sweep.png'}")
    return 0


def _plot_sweep(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = sorted({(r["dataflow"], r["M"], r["N"], r["K"]) for r in results})
    for df, M, N, K in keys[:12]:
        best = {}                    # PE count -> best utilization over array aspect ratios
        for r in results:
            if (r["dataflow"], r["M"], r["N"], r["K"]) == (df, M, N, K):
                pes = r["rows"] * r["cols"]
                best[pes] = max(best.get(pes, 0.0), r["utilization"])
        pts = sorted(best.items())
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{df} {M}x{N}x{K}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("PEs (rows x cols)")
    ax.set_ylabel("utilization, best aspect ratio\n(ideal MAC cycles / total cycles)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_synth_gemm(args):
    from specmx.synth import ECP5_DEVICES, synthesize_array
    cfg = _fma_config(args)
    rows, = _int_list("rows", args.rows, 1, 16)
    cols, = _int_list("cols", args.cols, 1, 16)
    dataflow, = _dataflows(args.dataflow, ("os", "ws"))
    _positive("stages", args.stages, 1, 5)
    if args.device is not None and args.device not in ECP5_DEVICES:
        raise UsageError(f"device: unknown {args.device!r}; allowed: {', '.join(ECP5_DEVICES)}")
    result = synthesize_array(cfg, rows, cols, dataflow, args.stages, fmax=not args.no_fmax, device=args.device)
    if not args.no_fmax and result.get("array_fmax_mhz") is None:
        print("note: no Fmax: the array does not fit the largest ECP5 (85k) with 20% headroom", file=sys.stderr)
    path = Path(args.out) / f"synth_gemm_{rows}x{cols}_{dataflow}_s{args.stages}_{_slug(cfg)}.json"
    return _save_result(result, path, args.json)


def _load_model(spec, field):
    from pathlib import Path as _P
    from specmx.models.mamba import MambaLM, get_preset
    if _P(spec).is_dir():
        try:
            return MambaLM.from_pretrained(spec)
        except ValueError as exc:
            raise UsageError(f"{field}: {exc}") from None
    try:
        return MambaLM.random(get_preset(spec), seed=0)
    except ValueError:
        from specmx.models.mamba import PRESETS
        raise UsageError(f"{field}: unknown preset {spec!r} and no such directory; allowed presets: "
                         f"{', '.join(PRESETS)}") from None


def cmd_mamba_generate(args):
    from specmx.models.specdec import BACKTRACK, TreeShape, make_draft, speculative_generate
    target = _load_model(args.model, "model")
    try:
        prompt = [int(x) for x in args.prompt.split(",")]
    except ValueError:
        raise UsageError(f"prompt: expected comma-separated token ids, got {args.prompt!r}") from None
    if min(prompt) < 0 or max(prompt) >= target.cfg.vocab_size:
        raise UsageError(f"prompt: token ids must be in 0..{target.cfg.vocab_size - 1}, got {args.prompt}")
    _positive("tokens", args.tokens, 1, 100000)
    if args.backtrack not in BACKTRACK:
        raise UsageError(f"backtrack: unknown {args.backtrack!r}; allowed: {', '.join(BACKTRACK)}")
    try:
        tree = TreeShape(args.tree)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    t0 = time.perf_counter()
    if args.draft is None:
        tokens, stats = target.greedy(prompt, args.tokens), {"mode": "greedy (no draft)"}
    else:
        from pathlib import Path as _P
        try:
            draft = _load_model(args.draft, "draft") if _P(args.draft).is_dir() else \
                make_draft(target, args.draft, seed=args.seed)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if draft.cfg.vocab_size != target.cfg.vocab_size:
            raise UsageError(f"draft: vocabulary {draft.cfg.vocab_size} differs from the target's "
                             f"{target.cfg.vocab_size}")
        tokens, st = speculative_generate(target, draft, prompt, args.tokens, tree, args.backtrack,
                                          args.memory_budget, args.sample, args.temperature, args.seed)
        stats = st.summary()
    stats["seconds"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"tokens": tokens, "stats": stats}))
    else:
        print("tokens:", ",".join(map(str, tokens)))
        if "verifications" in stats:
            stats = dict(stats, verifications=f"{len(stats['verifications'])} records (--json lists them)")
        for key, value in stats.items():
            print(f"{key:>24}: {value:.4g}" if isinstance(value, float) else f"{key:>24}: {value}")
    return 0


def cmd_demo(args):
    from specmx.demo import run_demo
    return run_demo()


def build_parser():
    parser = argparse.ArgumentParser(prog="specmx", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    fma = sub.add_parser("fma", help="FMA unit").add_subparsers(dest="action", required=True)
    p = fma.add_parser("check", help="simulate the FMA RTL against the golden model")
    _add_fma_options(p)
    p.add_argument("--vectors", type=int, default=20000, metavar="N",
                   help="number of operand sets (default: %(default)s)")
    p.add_argument("--sim", default="verilator", metavar="SIM",
                   help="verilator or icarus (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="(default: %(default)s)")
    p.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="probability of a clock-enable-low cycle (default: %(default)s)")
    p.set_defaults(func=cmd_fma_check)

    synth = sub.add_parser("synth", help="area and timing").add_subparsers(dest="target", required=True)
    p = synth.add_parser("fma", help="synthesize a registered FMA (gates, LUT4, ECP5, Fmax)")
    _add_fma_options(p)
    _add_synth_output_options(p)
    p.set_defaults(func=cmd_synth_fma)

    p = synth.add_parser("gemm", help="synthesize a systolic array: gates/LUT4 per PE and array, ECP5 Fmax")
    _add_fma_options(p)
    p.add_argument("--rows", default="4", metavar="R", help="(default: %(default)s)")
    p.add_argument("--cols", default="4", metavar="C", help="(default: %(default)s)")
    p.add_argument("--dataflow", default="os", metavar="DF", help="os or ws (default: %(default)s)")
    p.add_argument("--device", default=None, metavar="PART",
                   help="ECP5 part for place and route: 25k, 45k, 85k (default: the smallest that fits)")
    _add_synth_output_options(p)
    p.set_defaults(func=cmd_synth_gemm)

    gemm = sub.add_parser("gemm", help="matrix engine").add_subparsers(dest="action", required=True)
    p = gemm.add_parser("check", help="simulate one GEMM on the engine RTL: bits and cycles")
    _add_fma_options(p)
    p.set_defaults(stages=1)
    p.add_argument("--rows", default="4", metavar="R", help="array rows 1..64 (default: %(default)s)")
    p.add_argument("--cols", default="4", metavar="C", help="array columns 1..64 (default: %(default)s)")
    p.add_argument("--dataflow", default="os", metavar="DF", help="os or ws (default: %(default)s)")
    p.add_argument("--shape", default="16,16,32", metavar="M,N,K", help="(default: %(default)s)")
    p.add_argument("--buffers", default=None, metavar="M,N,K",
                   help="buffer capacity generated into the RTL (default: the shape)")
    p.add_argument("--sim", default="verilator", metavar="SIM", help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="(default: %(default)s)")
    p.add_argument("--backpressure", type=float, default=0.0, metavar="P",
                   help="probability the result sink is not ready (default: %(default)s)")
    p.set_defaults(func=cmd_gemm_check)

    perf = sub.add_parser("perf", help="cycle-model queries").add_subparsers(dest="action", required=True)
    p = perf.add_parser("gemm", help="cycles, utilization and throughput of one GEMM")
    p.add_argument("--rows", default="32", metavar="R", help="(default: %(default)s)")
    p.add_argument("--cols", default="32", metavar="C", help="(default: %(default)s)")
    p.add_argument("--dataflow", default="ws", metavar="DF", help="os or ws (default: %(default)s)")
    p.add_argument("--shape", default="512,512,512", metavar="M,N,K", help="(default: %(default)s)")
    p.add_argument("--stages", type=int, default=1, metavar="N", help="PE pipeline stages (default: %(default)s)")
    p.add_argument("--clock", type=float, default=300.0, metavar="MHZ", help="(default: %(default)s)")
    p.add_argument("--bandwidth", type=float, default=None, metavar="B",
                   help="interface bytes/cycle (default: the engine's stream rate)")
    p.add_argument("--compare", choices=["scalesim"], default=None, help="also run SCALE-Sim 3.0.0")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_perf_gemm)
    p = perf.add_parser("sweep", help="sweep array sizes x dataflows x shapes: JSON + plot")
    p.add_argument("--rows", default="2,4,8,16,32,64", metavar="LIST", help="(default: %(default)s)")
    p.add_argument("--cols", default=None, metavar="LIST", help="(default: square arrays)")
    p.add_argument("--dataflow", default="os,ws", metavar="LIST", help="(default: %(default)s)")
    p.add_argument("--shapes", default="512,512,512;128,4096,64;1,2048,2048", metavar="M,N,K;...",
                   help="(default: %(default)s)")
    p.add_argument("--stages", type=int, default=1, metavar="N", help="(default: %(default)s)")
    p.add_argument("--clock", type=float, default=300.0, metavar="MHZ", help="(default: %(default)s)")
    p.add_argument("--bandwidth", type=float, default=None, metavar="B", help="(default: none)")
    p.add_argument("--out", default="out/perf", metavar="DIR", help="(default: %(default)s)")
    p.set_defaults(func=cmd_perf_sweep)

    mamba = sub.add_parser("mamba", help="Mamba golden model").add_subparsers(dest="action", required=True)
    p = mamba.add_parser("generate", help="greedy or speculative decoding")
    p.add_argument("--model", default="tiny", metavar="NAME|DIR", help="preset or saved directory (default: %(default)s)")
    p.add_argument("--draft", default=None, metavar="SPEC",
                   help="self, noise<sigma>, layers<N> or a saved directory (default: plain greedy)")
    p.add_argument("--tree", default="3,2,1", metavar="W,W,...", help="tree widths per depth, or budget=N nodes (default: %(default)s)")
    p.add_argument("--backtrack", default="hybrid", metavar="MODE", help="store, recompute, hybrid (default: %(default)s)")
    p.add_argument("--memory-budget", type=int, default=1 << 20, metavar="BYTES",
                   help="hybrid: store states when they fit (default: %(default)s)")
    p.add_argument("--tokens", type=int, default=64, metavar="N", help="(default: %(default)s)")
    p.add_argument("--prompt", default="1,2,3", metavar="IDS", help="(default: %(default)s)")
    p.add_argument("--sample", action="store_true", help="rejection sampling instead of greedy")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="(default: %(default)s)")
    p.add_argument("--json", action="store_true", help='print {"tokens": [...], "stats": {...}}')
    p.set_defaults(func=cmd_mamba_generate)

    p = sub.add_parser("demo", help="run the main flow end to end")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"specmx: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:              # a tool (yosys, nextpnr, a simulator build) failed
        print(f"specmx: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
