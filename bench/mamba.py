"""Mamba benchmarks: decode tokens/s of the numpy model next to transformers' CPU step (same
random 130m-preset weights, same run), the acceptance table of derived drafts, and the
backtracking cost table. Writes out/bench/mamba.json and out/bench/mamba.md."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # one thread each, like torch below
import json  # noqa: E402
import tempfile
import time
from pathlib import Path

import numpy as np  # noqa: E402

from specmx.models.mamba import MambaLM, get_preset
from specmx.models.specdec import make_draft, speculative_generate

OUT = Path("out/bench")


def decode_speed(preset="130m", steps=32):
    import torch
    from transformers import MambaForCausalLM
    torch.set_num_threads(1)
    model = MambaLM.random(get_preset(preset), seed=0)
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        hf = MambaForCausalLM.from_pretrained(d).eval()
    state = model.initial_state()
    model.step(1, state)
    t0 = time.perf_counter()
    for i in range(steps):
        _, state = model.step(i % 1000, state)
    ours = steps / (time.perf_counter() - t0)
    with torch.no_grad():
        prompt = torch.tensor([[1, 2, 3]])
        hf.generate(prompt, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        t0 = time.perf_counter()
        hf.generate(prompt, max_new_tokens=steps, min_new_tokens=steps, do_sample=False)
        theirs = steps / (time.perf_counter() - t0)
    print(f"\nMamba {preset} decode, one thread: specmx numpy {ours:.1f} tok/s, transformers "
          f"{theirs:.1f} tok/s ({ours / theirs:.2f}x)")
    return {"preset": preset, "specmx_tok_s": ours, "transformers_tok_s": theirs, "ratio": ours / theirs}


def acceptance_table(tree=(3, 2, 1), tokens=96):
    target = MambaLM.random(get_preset("small"), seed=1)
    rows = []
    print(f"\nDraft acceptance (target: 'small' preset, tree {tree}, {tokens} tokens, greedy)")
    print(f"  {'draft':10s} {'acceptance':>10s} {'tokens/pass':>11s} {'== greedy':>9s}")
    ref = target.greedy([1, 2, 3], tokens)
    for spec in ("self", "noise0.02", "noise0.05", "noise0.1", "noise0.2", "layers2", "layers1"):
        toks, st = speculative_generate(target, make_draft(target, spec, seed=2), [1, 2, 3], tokens, tree)
        s = st.summary()
        rows.append({"draft": spec, **s, "equal_to_greedy": toks == ref})
        print(f"  {spec:10s} {s['acceptance_rate']:10.2f} {s['tokens_per_target_pass']:11.2f} {str(toks == ref):>9s}")
    return rows


def backtracking_table(tree=(3, 2, 1), tokens=64):
    target = MambaLM.random(get_preset("small"), seed=1)
    draft = make_draft(target, "noise0.05", seed=2)
    rows = []
    print(f"\nBacktracking cost ('small' target, noise0.05 draft, tree {tree}, {tokens} tokens)")
    print(f"  {'strategy':10s} {'held bytes':>12s} {'peak state B':>12s} {'extra FLOPs':>12s} {'seconds':>8s}")
    for bt, budget in (("store", 1 << 30), ("recompute", 0), ("hybrid", 1 << 20)):
        t0 = time.perf_counter()
        toks, st = speculative_generate(target, draft, [1, 2, 3], tokens, tree, bt, memory_budget=budget)
        s = st.summary()
        rows.append({"strategy": bt, "seconds": time.perf_counter() - t0, "tokens": toks, **s})
        print(f"  {bt:10s} {s['backtrack_bytes']:12d} {s['peak_state_bytes']:12d} "
              f"{s['backtrack_flops']:12d} {rows[-1]['seconds']:8.2f}")
    assert len({tuple(r["tokens"]) for r in rows}) == 1
    return rows


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"decode": decode_speed(), "acceptance": acceptance_table(), "backtracking": backtracking_table()}
    (OUT / "mamba.json").write_text(json.dumps(result, indent=2, default=str))
    lines = ["| draft | acceptance | tokens / target pass | == greedy |", "|---|---|---|---|"]
    lines += [f"| {r['draft']} | {r['acceptance_rate']:.2f} | {r['tokens_per_target_pass']:.2f} | "
              f"{r['equal_to_greedy']} |" for r in result["acceptance"]]
    lines += ["", "| backtracking | bytes held | peak state bytes | extra FLOPs |", "|---|---|---|---|"]
    lines += [f"| {r['strategy']} | {r['backtrack_bytes']} | {r['peak_state_bytes']} | {r['backtrack_flops']} |"
              for r in result["backtracking"]]
    (OUT / "mamba.md").write_text("\n".join(lines) + "\n")
    print(f"\nsaved {OUT / 'mamba.json'} and {OUT / 'mamba.md'}")


if __name__ == "__main__":
    main()
