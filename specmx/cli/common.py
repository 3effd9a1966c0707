"""What every `specmx` command shares: the one way to report bad input, option groups, the
spec file (`--spec FILE.yaml`, flags override its keys) and saving results."""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from specmx.models.config import (ACC_FORMATS, IN_FORMATS, ROUNDINGS, SUBNORMAL_MODES, FMAConfig)
from specmx.spec import Spec, load_spec, with_fields

__all__ = ["UsageError", "Parser", "add_fma_options", "add_spec_option", "add_sim_options", "design",
           "print_table", "report_simulation",
           "fma_from_args", "int_list", "triple", "bounded", "save_result", "write_json", "check_simulator"]


class UsageError(Exception):
    """Bad user input: reported as one line `specmx: error: <field>: <what is allowed>`, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): `specmx: error: argument --rows: ...`."""

    def error(self, message):
        print(f"specmx: error: {message}", file=sys.stderr)
        sys.exit(2)


def add_spec_option(p):
    p.add_argument("--spec", metavar="FILE.yaml", default=None,
                   help="design spec (YAML); flags given on the command line override its keys")


def add_fma_options(p, stages_default=None, stages_help="pipeline stages"):
    """FMA arithmetic flags. Their defaults are None: a flag not given leaves the spec's value
    (or the FMAConfig default) in place."""
    g = p.add_argument_group("FMA arithmetic (override the spec's fma section)")
    g.add_argument("--in", dest="in_fmt", choices=IN_FORMATS, default=None,
                   help="multiplicand format (default: bf16)")
    g.add_argument("--acc", dest="acc_fmt", choices=ACC_FORMATS, default=None,
                   help="accumulator format (default: fp32)")
    g.add_argument("--norm", default=None, metavar="SPEC",
                   help="'exact' or window=N,step=1|2|4|8,policy=round|flush|internal[,sum=N] (default: exact)")
    g.add_argument("--rounding", choices=ROUNDINGS, default=None, help="(default: rne)")
    g.add_argument("--subnormals", choices=SUBNORMAL_MODES, default=None, help="(default: ieee)")
    g.add_argument("--stages", type=int, default=stages_default, metavar="N", help=stages_help)


def add_sim_options(p):
    from specmx.sim.runner import SIMULATORS
    p.add_argument("--sim", choices=SIMULATORS, default="verilator", help="simulator")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed")
    p.add_argument("--waves", action="store_true",
                   help="record a waveform (VCD/FST) and print where it is")


def design(args):
    """The Spec of `--spec` (or all defaults). A bad spec raises SpecError naming the key path,
    which `main` reports like any bad input."""
    if getattr(args, "spec", None) is None:
        return Spec()
    return load_spec(args.spec)


def fma_from_args(args, base: FMAConfig):
    """`base` with the FMA flags that were given applied (`--norm` replaces window, step,
    policy and sum bits together: `--norm exact` clears a spec's window)."""
    cfg = with_fields(base, in_fmt=args.in_fmt, acc_fmt=args.acc_fmt, rounding=args.rounding,
                      subnormals=args.subnormals)
    if args.norm is None:
        return cfg
    try:
        norm = {"window": None, "step": 1, "policy": "round", "sum_bits": None, **FMAConfig.parse_norm(args.norm)}
        return replace(cfg, **norm)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def bounded(name, value, low=1, high=None):
    """A command's own limit (what its simulator, buffer or tool can take)."""
    if value < low or (high is not None and value > high):
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise UsageError(f"{name}: must be {rng}, got {value}")
    return value


def int_list(name, text, low=1, high=None):
    """'2,4,8' -> [2, 4, 8], each within low..high."""
    try:
        values = [int(x) for x in str(text).split(",")]
    except ValueError:
        raise UsageError(f"{name}: expected comma-separated integers, got {text!r}") from None
    for v in values:
        bounded(name, v, low, high)
    return values


def triple(name, text):
    """'M,N,K' -> (M, N, K), each >= 1."""
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


def check_simulator(name):
    from specmx.sim.runner import available_simulators
    found = available_simulators()
    if name not in found:
        raise UsageError(f"sim: {name} is not installed here; available: {', '.join(found) or 'none'}")


def write_json(result, path):
    """Write a result as indented JSON, creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return path


def save_result(result, path, as_json):
    """Write a result as JSON (creating its folder) and print it as JSON or a table."""
    path = write_json(result, path)
    if as_json:
        print(json.dumps(result))
    else:
        print_table(result)
        print(f"saved {path}")
    return 0


def print_table(result):
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:>{width}}: {value:.4g}" if isinstance(value, float) else f"{key:>{width}}: {value}")


def report_simulation(report):
    """Print what a check's report says beyond its summary line; the exit code it deserves."""
    for mm in report.get("first_mismatches", []):
        print(f"  mismatch: {mm}")
    for err in report.get("protocol_errors", []):
        print(f"  protocol: {err}")
    if report.get("waves"):
        print(f"waveform: {report['waves']}")
