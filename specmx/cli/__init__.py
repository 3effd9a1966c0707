"""The `specmx` command line: `specmx <noun> <verb>`, one module per noun.

Every bad argument ends in one line `specmx: error: <field>: <what is allowed>` and exit code 2,
before anything is written; a failing tool (simulator build, yosys, nextpnr) ends in one line
and exit code 1. The verb-noun forms of earlier releases (`perf gemm`, `perf sweep`,
`synth fma`, `synth gemm`, `perf mamba`) still work and print one line naming the new form.
"""

import argparse
import sys

from specmx.boards.board import BoardError
from specmx.cli import bitstream, boards, engine, fma, gemm, mamba, mamba_perf, spec, ssm, study
from specmx.cli.common import Parser, UsageError
from specmx.spec import SpecError

__all__ = ["main", "build_parser"]

# old form -> (new form, function adding the same parser under the old verb)
ALIASES = {
    ("perf", "gemm"): ("gemm perf", gemm.add_perf_parser),
    ("perf", "sweep"): ("gemm sweep", gemm.add_sweep_parser),
    ("synth", "fma"): ("fma synth", fma.add_synth_parser),
    ("synth", "gemm"): ("gemm synth", gemm.add_synth_parser),
    ("perf", "mamba"): ("mamba perf", mamba_perf.register_perf),
}


def _demo(args):
    from specmx.demo import run_demo
    return run_demo()


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except where the help text states it (flags that default to the spec)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser():
    formatter = _Help
    parser = Parser(prog="specmx", description=__doc__.splitlines()[0], formatter_class=formatter)
    nouns = parser.add_subparsers(dest="noun", required=True, metavar="NOUN")
    for module in (bitstream, boards, engine, fma, gemm, mamba, spec, ssm, study):
        module.register(nouns, formatter)
    old = {}
    for (noun, verb), (new, add) in ALIASES.items():
        if noun not in old:
            old[noun] = nouns.add_parser(noun, help=f"old verb-noun forms ({noun} gemm, ...)") \
                .add_subparsers(dest="verb", required=True)
        add(old[noun], formatter, name=verb)
        old[noun].choices[verb].set_defaults(renamed=new)
    nouns.add_parser("demo", help="run the main flow end to end").set_defaults(func=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if getattr(args, "renamed", None):
        print(f"specmx: note: 'specmx {args.noun} {args.verb}' is now 'specmx {args.renamed}'", file=sys.stderr)
    try:
        return args.func(args)
    except (UsageError, SpecError, BoardError) as exc:   # bad input: a flag, a spec or board file, a field
        print(f"specmx: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:              # a tool (yosys, nextpnr, a simulator build) failed
        print(f"specmx: error: {exc}", file=sys.stderr)
        return 1
