"""`specmx study minilm|power`: approximate normalization on a real transformer
(all-MiniLM-L6-v2): accuracy against the float32 reference on specmx's evaluation set, and
switching activity of the FMA's gate-level netlist on the model's operands."""

import json
from pathlib import Path

from specmx.cli.common import UsageError, bounded, write_json

__all__ = ["register"]


def _fma_config(args):
    from specmx.models.config import FMAConfig
    try:
        norm = FMAConfig.parse_norm(args.norm)
        return FMAConfig(in_fmt=getattr(args, "in_fmt", "bf16"), acc_fmt=args.acc, rounding=args.rounding, **norm)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _run(args, study, name):
    """Run a study (a missing model package is a usage error), save its JSON under --out as
    `name`, print it when --json. Returns (result, saved path)."""
    try:
        result = study()
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    out = write_json(result, Path(args.out) / name)
    if args.json:
        print(json.dumps(result))
    return result, out


def cmd_minilm(args):
    from specmx.models.minilm_eval import DOMAINS, TOPICS
    from specmx.study_minilm import run_minilm
    cfg = _fma_config(args)
    bounded("topics", args.topics, 1, TOPICS)
    bounded("domains", args.domains, 1, DOMAINS)
    bounded("jobs", args.jobs, 1, 64)
    result, out = _run(args, lambda: run_minilm(cfg, args.topics, args.jobs, quiet=args.json, domains=args.domains),
                       f"study_minilm_{cfg.slug}_d{args.domains}t{args.topics}.json")
    if args.json:
        return 0
    print(f"all-MiniLM-L6-v2, every matmul {cfg.name}; {result['sentences']} sentences, "
          f"{result['pairs']} pairs, {result['queries']} queries")
    print(f"  spearman {result['spearman']:.4f} (float32 {result['spearman_ref']:.4f}), "
          f"relative loss {result['relative_loss']:+.2%}")
    print(f"  cosine to float32: mean {result['cosine_mean']:.6f}, min {result['cosine_min']:.6f}")
    print(f"  retrieval top-1: agreement {result['top1_agreement']:.2%}, accuracy {result['top1_accuracy']:.2%} "
          f"(float32 {result['top1_accuracy_ref']:.2%})")
    print(f"  {result['macs'] / 1e9:.2f} G multiply-adds in {result['seconds']:.1f} s "
          f"({result['macs_per_s'] / 1e6:.0f} M/s on {result['jobs']} processes)")
    print(f"saved {out}")
    return 0


def cmd_power(args):
    from specmx.power import power_study
    cfg = _fma_config(args)
    bounded("streams", args.streams, 1, 256)
    bounded("sentences", args.sentences, 1, 50)
    result, out = _run(args, lambda: power_study(cfg, Path(args.out) / "power", args.streams, args.sentences,
                                                 quiet=args.json), f"study_power_{cfg.slug}.json")
    if args.json:
        return 0
    print(f"FMA {cfg.name} against {result['exact']}, {result['macs']:,} multiply-adds of MiniLM operands "
          f"({result['layers']} layers x {result['streams_per_layer']} PE streams)")
    print(f"  weighted toggles per MAC {result['toggles_per_mac']:.1f} vs {result['exact_toggles_per_mac']:.1f}: "
          f"ratio {result['ratio_vs_exact']:.3f} (unweighted {result['toggles_per_mac_unweighted']:.1f} vs "
          f"{result['exact_toggles_per_mac_unweighted']:.1f})")
    print(f"  gates {result['gates']:,} vs {result['exact_gates']:,}: ratio {result['gates_vs_exact']:.3f}")
    print(f"saved {out}")
    return 0


def _arith_flags(p):
    p.add_argument("--norm", default="exact", metavar="SPEC",
                   help="'exact' or window=N,step=1|2|4|8,policy=round|flush|internal")
    p.add_argument("--acc", choices=("fp32", "bf16"), default="fp32", help="accumulator format")
    p.add_argument("--rounding", choices=("rne", "rtz"), default="rne")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for the JSON result")


def register(nouns, formatter):
    verbs = nouns.add_parser("study", help="approximate normalization on real workloads") \
        .add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("minilm", help="all-MiniLM-L6-v2 accuracy with every matmul on the engine's arithmetic",
                         formatter_class=formatter)
    _arith_flags(p)
    p.add_argument("--topics", type=int, default=5, metavar="K",
                   help="topics per domain of the evaluation set (5: all 250 sentences; 1: 50)")
    p.add_argument("--domains", type=int, default=10, metavar="D", help="domains of the evaluation set (10: all)")
    p.add_argument("--jobs", type=int, default=2, metavar="N", help="worker processes")
    p.set_defaults(func=cmd_minilm)
    p = verbs.add_parser("power", help="toggles per multiply-add of the FMA's gate netlist on MiniLM operands",
                         formatter_class=formatter)
    _arith_flags(p)
    p.add_argument("--in", dest="in_fmt", choices=("bf16", "fp16", "e4m3", "e5m2"), default="bf16",
                   help="multiplicand format")
    p.add_argument("--streams", type=int, default=8, metavar="N", help="PE streams per captured layer")
    p.add_argument("--sentences", type=int, default=1, metavar="N", help="sentences whose operands are taken")
    p.set_defaults(func=cmd_power)
