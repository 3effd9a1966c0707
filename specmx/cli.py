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
    from .models.fma import FMAConfig
    try:
        return FMAConfig(in_fmt=args.in_fmt, acc_fmt=args.acc_fmt, rounding=args.rounding,
                         subnormals=args.subnormals, **FMAConfig.parse_norm(args.norm))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _add_fma_options(p):
    from .models.fma import ACC_FORMATS, IN_FORMATS, ROUNDINGS, SUBNORMAL_MODES
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
    from .sim.fma_check import check_fma
    from .sim.runner import SIMULATORS, available_simulators
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


def cmd_synth_fma(args):
    from .hdl.fma import FMA
    from .synth import synthesize
    cfg = _fma_config(args)
    _positive("stages", args.stages, 0, 5)
    result = {"config": cfg.name, "stages": args.stages}
    result.update(synthesize(FMA(cfg, args.stages), "fma", fmax=not args.no_fmax))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"synth_fma_{cfg.name.replace(':', '_').replace(',', '_').replace('=', '')}.json"
    path.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>10}: {value}")
        print(f"saved {path}")
    return 0


def cmd_demo(args):
    from .demo import run_demo
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
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--no-fmax", action="store_true", help="skip nextpnr place and route")
    p.add_argument("--out", default="out", metavar="DIR", help="(default: %(default)s)")
    p.set_defaults(func=cmd_synth_fma)

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


if __name__ == "__main__":
    sys.exit(main())
