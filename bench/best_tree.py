"""The draft tree with the best modeled tokens/s per board, from the acceptance measured on
held-out text (bench/acceptance.py's JSON) and the system performance model.

For every board, family (the trained Mamba-1 and Mamba-2 pairs) and acceptance mode (greedy,
sampling at T=0.7 and T=1.0), every measured tree (chains of depth 1-8, 2,2,1, 3,2,1, 4,2,2,1
and, greedy only, node budgets 4-32, costed as a chain of that many nodes like `specmx mamba
perf`) is modeled with its measured tokens per target pass, next to plain decode on the same
board. The engine: the array geometry (rows x cols from a short list) whose largest fit
(`largest_fit`: most arrays, then lanes) decodes fastest plainly, grown again for each tree with
state slots sized for it. Two model sizes:

1. the trained pairs themselves (py-mamba1 + draft, py-mamba2 + draft; bf16 weights);
2. a full-size proxy: Mamba2-2.7B with the Mamba2-130M draft (int4 weights, the VCK190/VHK158/
   U280 only) at the acceptance of the trained Mamba-2 pair. The real 2.7B/130M pair's
   acceptance is not measured here (no checkpoints can be downloaded), so these rows say how
   the best tree moves with the measured acceptance curve, not what that pair would reach.

Writes out/bench/best_tree.{json,md}.

    python bench/best_tree.py [--acceptance out/bench/acceptance.json]
"""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from specmx.boards.board import board_names, load_board
from specmx.boards.costs import largest_fit
from specmx.cli.engine import model_config
from specmx.models.config import EngineConfig
from specmx.models.perf.engine import model_dims, tree_parents
from specmx.models.perf.system import ACCEPTANCE_MODES, system_perf, tokens_per_pass
from specmx.models.specdec import live_states

OUT = Path("out/bench")
BASE = EngineConfig(rows=16, cols=128, lanes=32, tile=16, state_slots=2, mem_latency=40)
GEOMETRIES = ((4, 4), (4, 8), (8, 8), (8, 16), (16, 16), (8, 64), (16, 64), (16, 128), (32, 128))
# Full size: arrays of at least 64 columns. The cost table has no per-array overhead, so with
# narrow arrays `largest_fit` would copy a 4x4 array a thousand times.
WIDE_GEOMETRIES = tuple(g for g in GEOMETRIES if g[1] >= 64)
FULL_SIZE_BOARDS = ("vck190", "vhk158", "u280")


def tree_parent(label):
    """Parent indices of an acceptance row's tree label ('3,2,1', 'budget=8' as a chain)."""
    if label.startswith("budget="):
        return tree_parents((1,) * int(label.split("=")[1]))
    return tree_parents(tuple(int(w) for w in label.split(",")))


def fitted(board, base, dims, weights, slots):
    """The board's largest engine of `base`'s geometry with `slots` state slots (None: none fits)."""
    return largest_fit(board, replace(base, state_slots=max(2, slots)), dims, weights)


def board_engine(board, dims, weights, geometries):
    """The geometry whose largest fit decodes `dims` fastest plainly: (engine, plain result)."""
    best = None
    for rows, cols in geometries:
        e = fitted(board, replace(BASE, rows=rows, cols=cols), dims, weights, 2)
        if e is not None:
            r = system_perf(board, e, dims, weights)
            if best is None or r["tokens_per_s"] > best[1]["tokens_per_s"]:
                best = (e, r)
    return best


def best_per_board(acceptance, measured, target, draft, boards, weights, geometries=GEOMETRIES):
    """Rows: for each board and acceptance mode, plain decode of `target` and its best tree with
    `draft`, at the tokens per pass measured (`acceptance`, bench/acceptance.py's parsed JSON)
    for the pair whose target is `measured`."""
    dims, ddims = model_dims(model_config(target)), model_dims(model_config(draft))
    family = next(f for f in acceptance.values() if f["target"] == measured)
    labels = sorted({r["tree"] for r in family["rows"]}, key=lambda t: (t.startswith("budget"), len(t), t))
    out = []
    for name in boards:
        board = load_board(name)
        found = board_engine(board, dims, weights, geometries)
        if found is None:
            out.append({"board": name, "target": target, "fits": False})
            continue
        base, plain = found
        for mode in ACCEPTANCE_MODES:
            trees = []
            for label in labels:
                try:
                    tokens = tokens_per_pass(acceptance, label, measured, mode)
                except ValueError:
                    continue                                   # budgets are measured greedy only
                parent = tree_parent(label)
                engine = fitted(board, base, dims, weights, live_states(parent))
                if engine is None:
                    continue
                r = system_perf(board, engine, dims, weights, draft=ddims, parent=parent,
                                acceptance=("measured", tokens))
                trees.append({"tree": label, "tokens_per_pass": tokens, "tokens_per_s": r["tokens_per_s"],
                              "bottleneck": r["bottleneck"],
                              "engine": f"{engine.arrays} x {engine.rows}x{engine.cols}, {engine.lanes} lanes"})
            trees.append({"tree": "plain", "tokens_per_pass": 1.0, "tokens_per_s": plain["tokens_per_s"],
                          "bottleneck": plain["bottleneck"],
                          "engine": f"{base.arrays} x {base.rows}x{base.cols}, {base.lanes} lanes"})
            best = max(trees, key=lambda t: t["tokens_per_s"])           # plain decode may win
            out.append({"board": name, "assumed": bool(plain["assumptions"]), "target": target, "draft": draft,
                        "weights": weights, "mode": mode, "fits": True, "plain_tokens_per_s": plain["tokens_per_s"],
                        "best": best, "speedup": best["tokens_per_s"] / plain["tokens_per_s"], "trees": trees})
            print(f"  {name:>15} {target} {mode:>6}: best {best['tree']:>15} {best['tokens_per_s']:,.1f} tokens/s "
                  f"({best['tokens_per_s'] / plain['tokens_per_s']:.2f}x plain)", flush=True)
    return out


def table(rows, title):
    lines = [f"### {title}", "",
             "| board | target | mode | plain tokens/s | best tree | tokens/pass | tokens/s | vs plain | bottleneck | engine |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["fits"]:
            lines.append(f"| {r['board']} | {r['target']} | - | does not fit | | | | | | |")
            continue
        b = r["best"]
        lines.append(f"| {r['board']}{'*' if r['assumed'] else ''} | {r['target']} | {r['mode']} | "
                     f"{r['plain_tokens_per_s']:,.1f} | {b['tree']} | {b['tokens_per_pass']:.2f} | "
                     f"{b['tokens_per_s']:,.1f} | {r['speedup']:.2f}x | {b['bottleneck']} | {b['engine']} |")
    return lines + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--acceptance", default=str(OUT / "acceptance.json"), metavar="FILE")
    args = ap.parse_args()
    try:
        acceptance = json.loads(Path(args.acceptance).read_text())
    except FileNotFoundError:
        sys.exit(f"acceptance: no such file {args.acceptance!r}; run bench/acceptance.py first")
    boards = board_names()
    trained, proxy = [], []
    for family in acceptance.values():
        target, draft = family["target"], family["draft"]
        print(f"trained pair {target} + {draft} on {len(boards)} boards", flush=True)
        trained += best_per_board(acceptance, target, target, draft, boards, "bf16")
    if "mamba2" in acceptance:
        measured = acceptance["mamba2"]["target"]
        print(f"full-size proxy mamba2-2.7b + mamba2-130m at {measured}'s acceptance", flush=True)
        proxy = best_per_board(acceptance, measured, "mamba2-2.7b", "mamba2-130m", FULL_SIZE_BOARDS, "int4",
                               WIDE_GEOMETRIES)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "best_tree.json").write_text(json.dumps({"trained": trained, "full_size_proxy": proxy}, indent=1))
    lines = table(trained, "Trained pairs (bf16 weights), measured acceptance on held-out code")
    if proxy:
        lines += table(proxy, "Full-size proxy: Mamba2-2.7B + Mamba2-130M (int4), at the trained Mamba-2 pair's "
                              "measured acceptance")
    (OUT / "best_tree.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"saved {OUT / 'best_tree.json'} and {OUT / 'best_tree.md'}")


if __name__ == "__main__":
    main()
