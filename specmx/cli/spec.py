"""`specmx spec show|check`: read a design spec file."""

import yaml

from specmx.cli.common import design

__all__ = ["register"]


def cmd_show(args):
    from specmx.spec import spec_to_dict
    print(yaml.safe_dump(spec_to_dict(design(args)), sort_keys=False), end="")
    return 0


def cmd_check(args):
    spec = design(args)
    print(f"{args.spec}: valid (fma {spec.fma.name}; gemm {spec.gemm.name}; "
          f"perf {spec.perf.clock_mhz} MHz)")
    return 0


def register(nouns, formatter):
    verbs = nouns.add_parser("spec", help="design spec files (YAML)").add_subparsers(dest="verb", required=True)
    for name, func, text in (("show", cmd_show, "print the normalized spec: every section, every field"),
                             ("check", cmd_check, "validate a spec file")):
        p = verbs.add_parser(name, help=text, formatter_class=formatter)
        p.add_argument("spec", metavar="FILE.yaml", help="the spec file")
        p.set_defaults(func=func)
