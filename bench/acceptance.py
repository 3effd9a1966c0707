"""Speculative decoding of the trained byte-level models on held-out Python source: bits per
byte of target and draft, acceptance and tokens per target pass for chains, trees and node
budgets under greedy and sampling acceptance, and wall-clock tokens/s of specmx's numpy decode,
plain next to speculative, in the same run, for the Mamba-1 pair (py-mamba1 + draft) and the
Mamba-2 pair (py-mamba2 + draft). Writes out/bench/acceptance.json ({family: results}) and .md.

    python bench/acceptance.py [--family mamba1|mamba2|both] [--prompts 6] [--tokens 48]
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from specmx.models.corpus import bits_per_byte, heldout_windows  # noqa: E402
from specmx.models.mamba import load_pretrained  # noqa: E402
from specmx.models.specdec import speculative_generate  # noqa: E402

OUT = Path("out/bench")
TREES = [("chain", (1,) * d) for d in range(1, 9)] + [("tree", (2, 2, 1)), ("tree", (3, 2, 1)),
                                                      ("tree", (4, 2, 2, 1))]
BUDGETS = [4, 8, 16, 32]


def run(target, draft, prompts, tokens, tree, sample=False, temperature=1.0):
    acc = depth = emitted = passes = 0
    t0 = time.perf_counter()
    for i, p in enumerate(prompts):
        _, st = speculative_generate(target, draft, p, tokens, tree, sample=sample, temperature=temperature, seed=i)
        acc += st.accepted_draft_tokens
        depth += st.tree_depth_sum
        emitted += st.emitted
        passes += st.target_passes
    seconds = time.perf_counter() - t0
    return {"acceptance_rate": acc / max(1, depth), "tokens_per_target_pass": emitted / passes,
            "tokens_per_s": len(prompts) * tokens / seconds}


def measure(family, n_prompts, tokens):
    """One target/draft pair: bits per byte, plain decode speed, then every tree and mode."""
    names = (f"py-{family}", f"py-{family}-draft")
    target, draft = load_pretrained(names[0]), load_pretrained(names[1])
    result = {"target": names[0], "draft": names[1], "prompts": n_prompts, "tokens": tokens}
    windows = heldout_windows(16, 257, skip=512)
    result["bits_per_byte"] = {name: bits_per_byte(m, windows) for name, m in zip(names, (target, draft))}
    print(f"[{family}] held-out bits/byte: target {result['bits_per_byte'][names[0]]:.3f}, "
          f"draft {result['bits_per_byte'][names[1]]:.3f}", flush=True)
    prompts = [w[:64] for w in heldout_windows(n_prompts, 64, skip=1024)]
    t0 = time.perf_counter()
    for p in prompts:
        target.greedy(p, tokens)
    result["plain_tokens_per_s"] = len(prompts) * tokens / (time.perf_counter() - t0)
    rows = []
    modes = [("greedy", False, 1.0), ("T=0.7", True, 0.7), ("T=1.0", True, 1.0)]
    jobs = [(kind, ",".join(map(str, t)), t, m) for kind, t in TREES for m in modes] + \
           [("budget", f"budget={b}", {"budget": b}, modes[0]) for b in BUDGETS]
    for i, (kind, label, tree, (mode, sample, temp)) in enumerate(jobs, 1):
        r = run(target, draft, prompts, tokens, tree, sample, temp)
        rows.append({"shape": kind, "tree": label, "acceptance": mode, **r})
        print(f"[{family} {i}/{len(jobs)}] {label:>10} {mode:>6}: acceptance {r['acceptance_rate']:.2f}, "
              f"{r['tokens_per_target_pass']:.2f} tokens/pass, {r['tokens_per_s']:.1f} tokens/s", flush=True)
    result["rows"] = rows
    return result


def table(result):
    t, d = result["target"], result["draft"]
    lines = [f"Held-out bits/byte: {t} {result['bits_per_byte'][t]:.3f}, {d} {result['bits_per_byte'][d]:.3f}. "
             f"Plain greedy numpy decode: {result['plain_tokens_per_s']:.1f} tokens/s "
             f"({result['prompts']} prompts x {result['tokens']} bytes).", "",
             "| tree | acceptance | acceptance rate | tokens / target pass | tokens/s (numpy) | vs plain |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['tree']} | {r['acceptance']} | {r['acceptance_rate']:.2f} | {r['tokens_per_target_pass']:.2f} "
                     f"| {r['tokens_per_s']:.1f} | {r['tokens_per_s'] / result['plain_tokens_per_s']:.2f}x |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=("mamba1", "mamba2", "both"), default="both")
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=48)
    args = ap.parse_args()
    families = ("mamba1", "mamba2") if args.family == "both" else (args.family,)
    results = {f: measure(f, args.prompts, args.tokens) for f in families}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "acceptance.json").write_text(json.dumps(results, indent=1))
    lines = []
    for family, result in results.items():
        lines += [f"### {family}", ""] + table(result) + [""]
    (OUT / "acceptance.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"saved {OUT / 'acceptance.json'} and {OUT / 'acceptance.md'}")


if __name__ == "__main__":
    main()
