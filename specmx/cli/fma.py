"""`specmx fma check|synth`: the FMA unit on its own."""

import sys
import time
from pathlib import Path

from specmx.models.config import MAX_FMA_STAGES
from specmx.cli.common import (UsageError, add_fma_options, add_sim_options, add_spec_option, bounded,
                               check_simulator, design, fma_from_args, report_simulation, save_result)

__all__ = ["register", "cmd_check", "cmd_synth", "add_synth_output_options"]


def _fma(args):
    return fma_from_args(args, design(args).fma)


def cmd_check(args):
    from specmx.sim.fma_check import check_fma
    cfg = _fma(args)
    bounded("vectors", args.vectors, 1, 10_000_000)
    bounded("stages", args.stages, 0, MAX_FMA_STAGES)
    if not 0 <= args.stall < 1:
        raise UsageError(f"stall: must be a probability in 0..1 (exclusive of 1), got {args.stall}")
    check_simulator(args.sim)
    t0 = time.perf_counter()
    report = check_fma(cfg, args.vectors, args.stages, args.sim, args.seed, stall=args.stall,
                       bubble=args.stall, waves=args.waves or None)
    if not report.get("vectors"):
        print(f"specmx: error: simulation did not complete; log in {report['log_dir']}", file=sys.stderr)
        return 1
    print(f"{report['vectors']} vectors, {report['mismatches']} mismatches "
          f"({cfg.name}, {args.sim}, {args.stages} stages, {time.perf_counter() - t0:.1f} s)")
    report_simulation(report)
    return 0 if report["passed"] and report["mismatches"] == 0 else 1


def add_synth_output_options(p):
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--no-fmax", action="store_true", help="skip nextpnr place and route")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for the JSON result")


def cmd_synth(args):
    from specmx.hdl.fma import FMA
    from specmx.synth import synthesize
    cfg = _fma(args)
    bounded("stages", args.stages, 0, MAX_FMA_STAGES)
    result = {"config": cfg.name, "stages": args.stages}
    result.update(synthesize(FMA(cfg, args.stages), "fma", fmax=not args.no_fmax))
    return save_result(result, Path(args.out) / f"synth_fma_{cfg.slug}.json", args.json)


def add_check_parser(verbs, formatter):
    p = verbs.add_parser("check", help="simulate the FMA RTL against the golden model",
                         formatter_class=formatter)
    add_spec_option(p)
    add_fma_options(p, 2, "pipeline stages 0..12")
    p.add_argument("--vectors", type=int, default=20000, metavar="N", help="number of operand sets")
    p.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="probability of an idle input cycle and, separately, of a clock-enable-low cycle")
    add_sim_options(p)
    p.set_defaults(func=cmd_check)


def add_synth_parser(verbs, formatter, name="synth"):
    p = verbs.add_parser(name, help="synthesize a registered FMA (gates, LUT4, ECP5, Fmax)",
                         formatter_class=formatter)
    add_spec_option(p)
    add_fma_options(p, 2, "pipeline stages 0..12")
    add_synth_output_options(p)
    p.set_defaults(func=cmd_synth)
    return p


def register(nouns, formatter):
    verbs = nouns.add_parser("fma", help="the FMA unit").add_subparsers(dest="verb", required=True)
    add_check_parser(verbs, formatter)
    add_synth_parser(verbs, formatter)
