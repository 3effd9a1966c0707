"""`specmx gemm check|perf|sweep|synth`: the systolic matrix engine."""

import json
import sys
import time
from pathlib import Path

from specmx.cli.common import (UsageError, add_fma_options, add_sim_options, add_spec_option, bounded,
                               check_simulator, design, fma_from_args, int_list, print_table,
                               report_simulation, save_result, triple)
from specmx.cli.fma import add_synth_output_options
from specmx.models.config import DATAFLOWS, SCHEDULES
from specmx.spec import with_fields

__all__ = ["register", "cmd_check", "cmd_perf", "cmd_sweep", "cmd_synth", "engine_from_args"]


def engine_from_args(args, spec=None):
    """The spec's GemmConfig with the engine and FMA flags that were given applied."""
    spec = spec or design(args)
    fma = fma_from_args(args, spec.gemm.fma)
    return with_fields(spec.gemm, fma=fma, rows=getattr(args, "rows", None), cols=getattr(args, "cols", None),
                       dataflow=getattr(args, "dataflow", None), pe_stages=args.stages,
                       schedule=getattr(args, "schedule", None))


def perf_from_args(args, spec):
    return with_fields(spec.perf, clock_mhz=args.clock, bandwidth=args.bandwidth)


def cmd_check(args):
    from specmx.hdl.gemm import GEMMEngine
    from specmx.hdl.stream_gemm import MAX_SIZE
    from specmx.sim.gemm_check import check_gemm
    spec = design(args)
    engine = engine_from_args(args, spec)
    bounded("rows", engine.rows, 1, 64)
    bounded("cols", engine.cols, 1, 64)
    shape = triple("shape", args.shape)
    if args.buffers:
        buffers = triple("buffers", args.buffers)
    elif args.spec:
        buffers = engine.buffers
    else:
        buffers = shape
    limit = MAX_SIZE if engine.schedule == "streaming" else GEMMEngine.MAX_BUFFER
    for label, v in zip("mnk", buffers):
        bounded(f"max_{label}", v, 1, limit)
    for label, v, cap in zip("MNK", shape, buffers):
        if v > cap:
            raise UsageError(f"shape: {label}={v} exceeds the engine's limit (allowed 1..{cap}; "
                             f"raise --buffers or gemm.max_{label.lower()})")
    engine = with_fields(engine, max_m=buffers[0], max_n=buffers[1], max_k=buffers[2])
    for name in ("backpressure", "idle"):
        if not 0 <= getattr(args, name) < 1:
            raise UsageError(f"{name}: must be a probability in 0..1 (exclusive of 1), got {getattr(args, name)}")
    check_simulator(args.sim)
    report = check_gemm(engine, shape, args.sim, args.seed, backpressure=args.backpressure, idle=args.idle,
                        waves=args.waves or None)
    if report.get("mismatches") is None:
        print(f"specmx: error: simulation did not complete; log in {report['log_dir']}", file=sys.stderr)
        return 1
    M, N, K = shape
    if engine.schedule == "streaming":
        accounted = f"incl. {report['stall_cycles']} stall cycles"
    else:
        accounted = f"incl. {report['backpressure_cycles']} back-pressure cycles, source gaps {report['source_gaps']}"
    print(f"{M}x{N}x{K} on {engine.rows}x{engine.cols} {engine.dataflow} {engine.schedule}: "
          f"{report['mismatches']} mismatches, measured {report['cycles']} cycles, "
          f"predicted {report['predicted_cycles']} ({accounted})")
    report_simulation(report)
    return 0 if report["ok"] else 1


def cmd_perf(args):
    from specmx.models.perf.gemm import gemm_cycles, scalesim_compute_cycles
    spec = design(args)
    if args.topology or args.scalesim_config:
        return _perf_scalesim_files(args, spec)
    engine = engine_from_args(args, spec)
    perf = perf_from_args(args, spec)
    M, N, K = triple("shape", args.shape)
    t0 = time.perf_counter()
    result = gemm_cycles(engine, M, N, K, perf).as_dict()
    result["query_ms"] = (time.perf_counter() - t0) * 1e3
    if args.compare == "scalesim":
        from specmx.scalesim import run_scalesim
        cycles, seconds = run_scalesim(engine.rows, engine.cols, engine.dataflow, [(M, N, K)])
        result["scalesim_compute_cycles"] = cycles[0]
        result["scalesim_seconds"] = seconds
        result["specmx_scalesim_mode_cycles"] = scalesim_compute_cycles(engine.rows, engine.cols,
                                                                        engine.dataflow, M, N, K)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


def _perf_scalesim_files(args, spec):
    """Per-layer and total cycles of a SCALE-Sim GEMM topology on the array its .cfg describes."""
    from specmx.models.perf.gemm import gemm_cycles, scalesim_compute_cycles
    from specmx.scalesim import read_config, read_topology
    if not (args.topology and args.scalesim_config):
        raise UsageError("scalesim-config: --scalesim-config and --topology go together; give both")
    try:
        arch = read_config(args.scalesim_config)
        layers = read_topology(args.topology)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if arch["dataflow"] not in DATAFLOWS:
        raise UsageError(f"scalesim-config: Dataflow {arch['dataflow']!r} has no specmx engine; "
                         f"allowed: {', '.join(DATAFLOWS)}")
    engine = with_fields(engine_from_args(args, spec), rows=arch["rows"], cols=arch["cols"],
                         dataflow=arch["dataflow"])          # the .cfg describes the array
    bandwidth = None if arch["words_per_cycle"] is None else arch["words_per_cycle"] * engine.in_bytes
    perf = with_fields(perf_from_args(args, spec), bandwidth=bandwidth)
    rows = []
    for name, M, N, K in layers:
        c = gemm_cycles(engine, M, N, K, perf)
        rows.append({"layer": name, "M": M, "N": N, "K": K, "total_cycles": c.total_cycles,
                     "array_cycles": c.array_cycles, "utilization": c.utilization, "runtime_us": c.runtime_us,
                     "scalesim_mode_cycles": scalesim_compute_cycles(engine.rows, engine.cols, engine.dataflow, M, N, K)})
    if args.compare == "scalesim":
        from specmx.scalesim import run_scalesim
        cycles, _ = run_scalesim(engine.rows, engine.cols, engine.dataflow, [r[1:] for r in layers])
        for row, cyc in zip(rows, cycles):
            row["scalesim_compute_cycles"] = cyc
    total = {"layer": "total", **{k: sum(r[k] for r in rows) for k in
                                   ("total_cycles", "array_cycles", "runtime_us", "scalesim_mode_cycles")}}
    result = {"array": f"{engine.rows}x{engine.cols} {engine.dataflow}", "bandwidth_bytes_per_cycle": bandwidth,
              "clock_mhz": perf.clock_mhz, "layers": rows, "total": total}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{len(rows)} layers on {result['array']} at {perf.clock_mhz} MHz, "
          f"bandwidth {bandwidth if bandwidth else 'unlimited'} bytes/cycle")
    keys = [k for k in rows[0] if k != "layer"]
    print("| layer | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for r in rows + [total]:
        cells = [f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        print(f"| {r['layer']} | " + " | ".join(cells) + " |")
    return 0


def cmd_sweep(args):
    from tqdm import tqdm
    from specmx.models.perf.gemm import gemm_cycles
    spec = design(args)
    base = engine_from_args(args, spec)
    perf = perf_from_args(args, spec)
    rows_list = int_list("rows", args.rows_list)
    cols_list = int_list("cols", args.cols_list) if args.cols_list else None
    dataflows = args.dataflows.split(",")
    for df in dataflows:
        if df not in DATAFLOWS:
            raise UsageError(f"dataflow: unknown {df!r}; allowed: {', '.join(DATAFLOWS)}")
    shapes = [triple("shapes", s) for s in args.shapes.split(";")]
    engines = [with_fields(base, rows=r, cols=c, dataflow=df)
               for r in rows_list for c in (cols_list or [r]) for df in dataflows]
    points = [(e, sh) for e in engines for sh in shapes]
    out = Path(args.out)
    results = []
    t0 = time.perf_counter()
    for e, (M, N, K) in tqdm(points, desc="design points", unit="pt", mininterval=0.5):
        res = gemm_cycles(e, M, N, K, perf).as_dict()
        results.append({"rows": e.rows, "cols": e.cols, "dataflow": e.dataflow, "M": M, "N": N, "K": K, **res})
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps({"seconds": seconds, "fma": base.fma.name,
                                                 "points": results}, indent=1))
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


def cmd_synth(args):
    from specmx.synth import synthesize_array
    engine = engine_from_args(args)
    bounded("rows", engine.rows, 1, 16)
    bounded("cols", engine.cols, 1, 16)
    result = synthesize_array(engine, fmax=not args.no_fmax, device=args.device)
    if not args.no_fmax and result.get("array_fmax_mhz") is None:
        print("note: no Fmax: the array does not fit the largest ECP5 (85k) with 20% headroom", file=sys.stderr)
    return save_result(result, Path(args.out) / f"synth_gemm_{engine.name}.json", args.json)


def _add_engine_options(p, stages_help="PE pipeline stages 1..12 (default: 1)"):
    add_spec_option(p)
    g = p.add_argument_group("engine (override the spec's gemm section)")
    g.add_argument("--rows", type=int, default=None, metavar="R", help="array rows (default: 4)")
    g.add_argument("--cols", type=int, default=None, metavar="C", help="array columns (default: 4)")
    g.add_argument("--dataflow", choices=DATAFLOWS, default=None, help="(default: os)")
    g.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="phased: whole-matrix buffers, load/compute/drain in turn; streaming: vector "
                        "streams in tile order, load/compute/drain overlapped (default: phased)")
    add_fma_options(p, None, stages_help)


def _add_perf_options(p):
    g = p.add_argument_group("operating point (override the spec's perf section)")
    g.add_argument("--clock", type=float, default=None, metavar="MHZ", help="engine clock (default: 300)")
    g.add_argument("--bandwidth", type=float, default=None, metavar="B",
                   help="interface bytes/cycle (default: the engine's stream rate)")


def add_perf_parser(verbs, formatter, name="perf"):
    p = verbs.add_parser(name, help="cycles, utilization and throughput of one GEMM (cycle model)",
                         formatter_class=formatter)
    _add_engine_options(p)
    _add_perf_options(p)
    p.add_argument("--shape", default="512,512,512", metavar="M,N,K", help="GEMM size")
    p.add_argument("--compare", choices=["scalesim"], default=None, help="also run SCALE-Sim 3.0.0")
    p.add_argument("--scalesim-config", default=None, metavar="X.cfg",
                   help="SCALE-Sim architecture file: array size, dataflow and bandwidth come from it")
    p.add_argument("--topology", default=None, metavar="T.csv",
                   help="SCALE-Sim GEMM topology (Layer, M, N, K per row): report per layer and in total")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_perf)


def add_sweep_parser(verbs, formatter, name="sweep"):
    p = verbs.add_parser(name, help="sweep array sizes x dataflows x shapes: JSON + plot",
                         formatter_class=formatter)
    add_spec_option(p)
    add_fma_options(p, None, "PE pipeline stages 1..12 (default: 1)")
    _add_perf_options(p)
    p.add_argument("--rows", dest="rows_list", default="2,4,8,16,32,64", metavar="LIST", help="array rows")
    p.add_argument("--cols", dest="cols_list", default=None, metavar="LIST", help="(default: square arrays)")
    p.add_argument("--dataflow", dest="dataflows", default="os,ws", metavar="LIST", help="os, ws or os,ws")
    p.add_argument("--shapes", default="512,512,512;128,4096,64;1,2048,2048", metavar="M,N,K;...",
                   help="GEMM sizes")
    p.add_argument("--out", default="out/perf", metavar="DIR", help="folder for sweep.json and sweep.png")
    p.set_defaults(func=cmd_sweep)


def add_synth_parser(verbs, formatter, name="synth"):
    from specmx.boards.ecp5 import ECP5_DEVICES
    p = verbs.add_parser(name, help="synthesize a systolic array: gates/LUT4 per PE and array, ECP5 Fmax",
                         formatter_class=formatter)
    _add_engine_options(p)
    p.add_argument("--device", choices=tuple(ECP5_DEVICES), default=None,
                   help="ECP5 part for place and route (default: the smallest that fits)")
    add_synth_output_options(p)
    p.set_defaults(func=cmd_synth)


def register(nouns, formatter):
    verbs = nouns.add_parser("gemm", help="the systolic matrix engine").add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("check", help="simulate one GEMM on the engine RTL: bits and cycles",
                         formatter_class=formatter)
    _add_engine_options(p)
    p.add_argument("--shape", default="16,16,32", metavar="M,N,K", help="GEMM size")
    p.add_argument("--buffers", default=None, metavar="M,N,K",
                   help="buffer capacity generated into the RTL (default: the spec's max_m,max_n,max_k "
                        "with --spec, else the shape)")
    p.add_argument("--backpressure", type=float, default=0.0, metavar="P",
                   help="probability the result sink is not ready")
    p.add_argument("--idle", type=float, default=0.0, metavar="P",
                   help="probability of a gap between operand words")
    add_sim_options(p)
    p.set_defaults(func=cmd_check)
    add_perf_parser(verbs, formatter)
    add_sweep_parser(verbs, formatter)
    add_synth_parser(verbs, formatter)
