"""`specmx mamba generate`: the numpy Mamba model, greedy or speculative."""

import json
import time
from pathlib import Path

from specmx.cli.common import UsageError, bounded

__all__ = ["register", "cmd_generate", "load_model"]


def load_model(spec, field):
    """A trained model's name, a preset name (random weights, seed 0; Mamba-1 or Mamba-2) or a
    saved model directory (the family comes from config.json's model_type)."""
    from specmx.models import mamba2
    from specmx.models.mamba import PRESETS, PRETRAINED, MambaLM, get_preset, load_pretrained
    if spec in PRESETS:
        return MambaLM.random(get_preset(spec), seed=0)
    if spec in mamba2.PRESETS:
        return mamba2.Mamba2LM.random(mamba2.get_preset(spec), seed=0)
    if spec not in PRETRAINED and not Path(spec).exists():
        raise UsageError(f"{field}: unknown model {spec!r} and no such directory; allowed: "
                         f"{', '.join(PRETRAINED + tuple(PRESETS) + tuple(mamba2.PRESETS))}")
    try:
        if spec not in PRETRAINED and not Path(spec).is_dir():
            return MambaLM.from_pretrained(spec)           # its own error names what is wrong
        return load_pretrained(spec)
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"{field}: {exc}") from None


def cmd_generate(args):
    from specmx.models.corpus import ids_to_text, text_to_ids
    from specmx.models.specdec import TreeShape, make_draft, speculative_generate
    try:
        tree = TreeShape(args.tree)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.prompt_text is not None:
        if not args.prompt_text:
            raise UsageError("prompt-text: must not be empty")
        prompt = text_to_ids(args.prompt_text)
    else:
        try:
            prompt = [int(x) for x in args.prompt.split(",")]
        except ValueError:
            raise UsageError(f"prompt: expected comma-separated token ids, got {args.prompt!r}") from None
    bounded("tokens", args.tokens, 1, 100000)
    if not args.temperature > 0:
        raise UsageError(f"temperature: must be > 0, got {args.temperature}")
    target = load_model(args.model, "model")
    if args.prompt_text is not None and target.cfg.vocab_size != 256:
        raise UsageError(f"prompt-text: needs a byte-level model (vocabulary 256), {args.model!r} has "
                         f"{target.cfg.vocab_size}")
    if min(prompt) < 0 or max(prompt) >= target.cfg.vocab_size:
        raise UsageError(f"prompt: token ids must be in 0..{target.cfg.vocab_size - 1}, got {args.prompt}")
    t0 = time.perf_counter()
    if args.draft is None:
        tokens, stats = target.greedy(prompt, args.tokens), {"mode": "greedy (no draft)"}
    else:
        from specmx.models.mamba import PRETRAINED
        if Path(args.draft).exists() or args.draft in PRETRAINED:
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
    text = ids_to_text(tokens) if target.cfg.vocab_size == 256 else None
    if args.json:
        print(json.dumps({"tokens": tokens, "stats": stats, **({"text": text} if text is not None else {})}))
    else:
        if text is not None:
            print((args.prompt_text or "") + text)
            print("-" * 40)
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
    p.add_argument("--model", default="tiny", metavar="NAME|DIR",
                   help="trained model (py-mamba1, py-mamba1-draft, py-mamba2, py-mamba2-draft), random-weight preset or saved model directory")
    p.add_argument("--draft", default=None, metavar="SPEC",
                   help="a trained model, self, noise<sigma>, layers<N> or a saved directory (default: plain greedy)")
    p.add_argument("--tree", default="3,2,1", metavar="W,W,...",
                   help="tree widths per depth, or budget=N nodes")
    p.add_argument("--backtrack", choices=BACKTRACK, default="hybrid", help="state backtracking")
    p.add_argument("--memory-budget", type=int, default=1 << 20, metavar="BYTES",
                   help="hybrid: store states when they fit")
    p.add_argument("--tokens", type=int, default=64, metavar="N", help="tokens to generate")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default="1,2,3", metavar="IDS", help="comma-separated token ids")
    prompt.add_argument("--prompt-text", default=None, metavar="TEXT",
                        help="text prompt (UTF-8 bytes) for a byte-level model; the output is decoded to text")
    p.add_argument("--sample", action="store_true", help="rejection sampling instead of greedy")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help="sampling temperature")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed")
    p.add_argument("--json", action="store_true", help='print {"tokens": [...], "stats": {...}}')
    p.set_defaults(func=cmd_generate)
    from specmx.cli.mamba_perf import register_perf, register_sweep
    register_perf(verbs, formatter)
    register_sweep(verbs, formatter)
