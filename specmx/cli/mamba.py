"""`specmx mamba generate`: the numpy Mamba model, greedy or speculative."""

import json
import time
from pathlib import Path

from specmx.cli.common import UsageError, bounded

__all__ = ["register", "cmd_generate", "load_model"]


def load_model(spec, field):
    """A preset name (random weights, seed 0) or a saved model directory."""
    from specmx.models.mamba import PRESETS, MambaLM, get_preset
    if spec in PRESETS:
        return MambaLM.random(get_preset(spec), seed=0)
    if not Path(spec).exists():
        raise UsageError(f"{field}: unknown preset {spec!r} and no such directory; allowed presets: "
                         f"{', '.join(PRESETS)}")
    try:
        return MambaLM.from_pretrained(spec)
    except ValueError as exc:
        raise UsageError(f"{field}: {exc}") from None


def cmd_generate(args):
    from specmx.models.specdec import TreeShape, make_draft, speculative_generate
    try:
        tree = TreeShape(args.tree)
        prompt = [int(x) for x in args.prompt.split(",")]
    except ValueError as exc:
        msg = str(exc) if str(exc).startswith("tree:") else \
            f"prompt: expected comma-separated token ids, got {args.prompt!r}"
        raise UsageError(msg) from None
    bounded("tokens", args.tokens, 1, 100000)
    if not args.temperature > 0:
        raise UsageError(f"temperature: must be > 0, got {args.temperature}")
    target = load_model(args.model, "model")
    if min(prompt) < 0 or max(prompt) >= target.cfg.vocab_size:
        raise UsageError(f"prompt: token ids must be in 0..{target.cfg.vocab_size - 1}, got {args.prompt}")
    t0 = time.perf_counter()
    if args.draft is None:
        tokens, stats = target.greedy(prompt, args.tokens), {"mode": "greedy (no draft)"}
    else:
        if Path(args.draft).exists():
            draft = load_model(args.draft, "draft")
        else:
            try:
                draft = make_draft(target, args.draft, seed=args.seed)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if draft.cfg.vocab_size != target.cfg.vocab_size:
            raise UsageError(f"draft: vocabulary {draft.cfg.vocab_size} differs from the target's "
                             f"{target.cfg.vocab_size}")
        try:
            tokens, st = speculative_generate(target, draft, prompt, args.tokens, tree, args.backtrack,
                                              args.memory_budget, args.sample, args.temperature, args.seed)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
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


def register(nouns, formatter):
    from specmx.models.specdec import BACKTRACK
    verbs = nouns.add_parser("mamba", help="the Mamba golden model").add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("generate", help="greedy or speculative decoding", formatter_class=formatter)
    p.add_argument("--model", default="tiny", metavar="NAME|DIR", help="preset or saved model directory")
    p.add_argument("--draft", default=None, metavar="SPEC",
                   help="self, noise<sigma>, layers<N> or a saved directory (default: plain greedy)")
    p.add_argument("--tree", default="3,2,1", metavar="W,W,...",
                   help="tree widths per depth, or budget=N nodes")
    p.add_argument("--backtrack", choices=BACKTRACK, default="hybrid", help="state backtracking")
    p.add_argument("--memory-budget", type=int, default=1 << 20, metavar="BYTES",
                   help="hybrid: store states when they fit")
    p.add_argument("--tokens", type=int, default=64, metavar="N", help="tokens to generate")
    p.add_argument("--prompt", default="1,2,3", metavar="IDS", help="comma-separated token ids")
    p.add_argument("--sample", action="store_true", help="rejection sampling instead of greedy")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help="sampling temperature")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed")
    p.add_argument("--json", action="store_true", help='print {"tokens": [...], "stats": {...}}')
    p.set_defaults(func=cmd_generate)
