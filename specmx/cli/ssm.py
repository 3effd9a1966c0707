"""`specmx ssm check|synth`: the SSM datapath units (function units, conv1d, selective scan,
RMSNorm) against their hardware numerics model and cycle model, and their area/Fmax."""

import argparse
import time
from pathlib import Path

from specmx.cli.common import (UsageError, add_fma_options, add_sim_options, add_spec_option, bounded,
                               check_simulator, design, fma_from_args, report_simulation, save_result)
from specmx.cli.fma import add_synth_output_options
from specmx.models.config import FAMILIES
from specmx.models.function_units import FUNCTIONS
from specmx.spec import with_fields

__all__ = ["register", "UNITS"]

UNITS = FUNCTIONS + ("conv", "scan", "rmsnorm", "fadd")
FADD_ADDERS = 2          # the engine's result-stream add chain (hdl.fadd.FAddChain)


def ssm_from_args(args):
    """The spec's `ssm` section with the flags that were given applied."""
    base = design(args).ssm
    fma = fma_from_args(args, base.fma)
    return with_fields(base, fma=fma, family=args.family, d_inner=args.d_inner, d_state=args.d_state,
                       heads=args.heads, groups=args.groups, kernel=args.kernel, lanes=args.lanes)


def _probability(name, value):
    if not 0 <= value < 1:
        raise UsageError(f"{name}: must be a probability in 0..1 (exclusive of 1), got {value}")


def _unit_shape(args, ssm):
    """Limits of the RTL units (what a simulation can take), checked before anything runs."""
    bounded("lanes", ssm.lanes, 1, 16)
    if args.unit == "conv":
        if ssm.d_inner % ssm.lanes:
            raise UsageError(f"lanes: must divide d_inner={ssm.d_inner}, got {ssm.lanes}")
        if ssm.fma.in_fmt != "bf16":
            raise UsageError(f"in_fmt: the conv unit takes bf16 operands; allowed: bf16, got {ssm.fma.in_fmt}")
        bounded("d_inner", ssm.d_inner, 1, 4096)
        bounded("kernel", ssm.kernel, 1, 8)
    if args.unit == "scan":
        from specmx.hdl.scan import check_scan_shape
        bounded("d_inner", ssm.d_inner, 1, 4096)
        bounded("d_state", ssm.d_state, 1, 256)
        try:
            check_scan_shape(ssm)
        except ValueError as e:
            raise UsageError(str(e)) from None
    if args.unit == "rmsnorm":
        if args.lanes not in (None, 1):
            raise UsageError(f"lanes: the rmsnorm unit takes one element per cycle; allowed: 1, got {args.lanes}")
        if ssm.fma.in_fmt != "bf16":
            raise UsageError(f"in_fmt: the rmsnorm unit takes bf16 operands; allowed: bf16, got {ssm.fma.in_fmt}")
        bounded("d_inner", ssm.d_inner, 1, 8192)
        if not 0 <= args.eps < 1:
            raise UsageError(f"eps: must be a number in [0, 1), got {args.eps}")


def norm_length(ssm):
    """Vector length of the rmsnorm unit: d_inner / groups (Mamba-2's gated norm per group;
    Mamba-1: d_inner, so --d-inner D_MODEL gives a layer's norm)."""
    return ssm.d_inner // ssm.groups if ssm.family == "mamba2" else ssm.d_inner


def cmd_check(args):
    from specmx.sim.ssm_check import check_conv, check_fadd, check_function, check_rmsnorm, check_scan, function_vectors
    ssm = ssm_from_args(args)
    _unit_shape(args, ssm)
    bounded("vectors", args.vectors, 0, 10_000_000)
    bounded("tokens", args.tokens, 1, 100_000)
    _probability("idle", args.idle)
    _probability("backpressure", args.backpressure)
    check_simulator(args.sim)
    t0 = time.perf_counter()
    lanes = ssm.lanes
    if args.unit == "conv":
        report = check_conv(ssm, args.tokens, args.sim, args.seed, args.idle, args.backpressure,
                            waves=args.waves or None)
    elif args.unit == "scan":
        report = check_scan(ssm, args.tokens, args.sim, args.seed, args.idle, args.backpressure,
                            waves=args.waves or None)
    elif args.unit == "rmsnorm":
        lanes = 1
        report = check_rmsnorm(ssm.fma, norm_length(ssm), args.tokens, args.eps, args.sim, args.seed,
                               args.idle, args.backpressure, waves=args.waves or None)
    elif args.unit == "fadd":
        report = check_fadd(ssm.lanes, FADD_ADDERS, max(1, args.vectors), args.sim, args.seed, args.idle,
                            args.backpressure, waves=args.waves or None)
    else:
        words = function_vectors(random=args.vectors, seed=args.seed)
        report = check_function(args.unit, words, ssm.lanes, args.sim, args.seed, args.idle,
                                args.backpressure, waves=args.waves or None)
    if report.get("mismatches") is None:
        raise RuntimeError(f"sim: the simulation did not complete; log in {report['log_dir']}")
    print(f"{report['vectors']} vectors, {report['mismatches']} mismatches ({args.unit}, {lanes} lanes, "
          f"{args.sim}, {time.perf_counter() - t0:.1f} s)")
    print(f"cycles: measured {report['cycles']}, predicted {report['predicted_cycles']} "
          f"({report['starved']} starved, {report['held']} held) "
          + ("match" if report["cycles_match"] else "MISMATCH"))
    report_simulation(report)
    return 0 if report["ok"] else 1


def cmd_synth(args):
    from specmx.synth import synthesize
    ssm = ssm_from_args(args)
    _unit_shape(args, ssm)
    rtl = unit_rtl(args.unit, ssm, args.eps)
    lanes = 1 if args.unit == "rmsnorm" else ssm.lanes
    result = {"unit": args.unit, "family": ssm.family, "lanes": lanes, "config": ssm.fma.name}
    result.update(synthesize(rtl, args.unit, fmax=not args.no_fmax, generic=not args.ecp5_only,
                              split_multipliers=True))
    family = f"_{ssm.family}" if args.unit == "scan" else ""
    return save_result(result, Path(args.out) / f"synth_ssm_{args.unit}{family}_l{lanes}.json", args.json)


def unit_rtl(unit, ssm, eps=1e-5):
    """The RTL component of `unit` for the SSM datapath `ssm`."""
    if unit == "conv":
        from specmx.hdl.conv import ConvUnit
        return ConvUnit(ssm)
    if unit == "scan":
        from specmx.hdl.scan import ScanUnit
        return ScanUnit(ssm)
    if unit == "rmsnorm":
        from specmx.hdl.rmsnorm import RMSNormUnit
        return RMSNormUnit(ssm.fma, norm_length(ssm), eps)
    if unit == "fadd":
        from specmx.hdl.fadd import FAddChain
        return FAddChain(ssm.lanes, FADD_ADDERS)
    from specmx.hdl.function_unit import FunctionUnit
    return FunctionUnit(unit, ssm.lanes)


def _add_unit_options(p):
    p.add_argument("--unit", required=True, choices=UNITS, help="which unit")
    add_spec_option(p)
    g = p.add_argument_group("SSM datapath (override the spec's ssm section)")
    g.add_argument("--family", choices=FAMILIES, default=None, help="(default: mamba1)")
    for flag, what in (("--d-inner", "channels"), ("--d-state", "state size per channel"),
                       ("--heads", "Mamba-2 heads"), ("--groups", "Mamba-2 B/C groups"),
                       ("--kernel", "conv1d kernel"), ("--lanes", "elements per cycle")):
        g.add_argument(flag, type=int, default=None, metavar="N", help=what)
    g.add_argument("--eps", type=float, default=1e-5, help="rmsnorm: added to the mean square")
    add_fma_options(p, None, argparse.SUPPRESS)


def register(nouns, formatter):
    verbs = nouns.add_parser("ssm", help="the SSM datapath units").add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("check", help="simulate a unit against its hardware numerics and cycle model",
                         formatter_class=formatter)
    _add_unit_options(p)
    p.add_argument("--vectors", type=int, default=4000, metavar="N",
                   help="function units: random fp32 words on top of every bf16 input and the range edges; "
                        "fadd: operand groups of each kind (random, cancelling, subnormal, neighbours) on top "
                        "of every pair of range edges")
    p.add_argument("--tokens", type=int, default=24, metavar="N",
                   help="conv, scan: tokens in the stream (random values with corner tokens); "
                        "rmsnorm: vectors")
    p.add_argument("--idle", type=float, default=0.1, metavar="P", help="probability of a source gap")
    p.add_argument("--backpressure", type=float, default=0.1, metavar="P",
                   help="probability the sink is not ready")
    add_sim_options(p)
    p.set_defaults(func=cmd_check)
    p = verbs.add_parser("synth", help="synthesize a unit (gates, LUT4, ECP5, Fmax)", formatter_class=formatter)
    _add_unit_options(p)
    add_synth_output_options(p)
    p.add_argument("--ecp5-only", action="store_true",
                   help="skip the technology-neutral gates and LUT4 mappings (a minute or two per unit)")
    p.set_defaults(func=cmd_synth)
