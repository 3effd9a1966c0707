"""The Mamba engine measured on the RTL (`make bench`): speculative generation of the micro models
on the composed engine (`sim/engine_check.py`: the RTL sequencer starting every operation; linear
layers on the matrix engine with weights from the memory model, conv and scan on the tree-mode
units, embeddings, states and logits through the memory channels), for several token trees and
tile sizes against plain decode. Per run: cycles per verification, cycles per generated token,
the overlap of the matrix engine with the scan unit, the program's length (instructions, and the
cycles to write it into the sequencer before the step), and the cycle model's prediction of the
same passes (equal, or the run fails).

Writes out/bench/engine_rtl.{json,md} and out/bench/engine_rtl.png.

    python bench/engine_rtl.py [--tokens 8]
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from specmx.sim.engine_check import MICRO_ENGINE, check_engine  # noqa: E402

OUT = Path("out/bench")
TREES = {"decode": "single", "chain 4": (1, 1, 1), "2,2": (2, 2), "3,2,1": (3, 2, 1)}
RUNS = [("mamba1", tree, tile) for tile in (4, 8) for tree in TREES] + \
       [("mamba2", tree, 8) for tree in ("decode", "3,2,1")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=8)
    args = ap.parse_args()
    rows = []
    for i, (family, tname, tile) in enumerate(RUNS):
        t0 = time.perf_counter()
        r = check_engine(family, tree=TREES[tname], backtrack="store", tokens=args.tokens,
                         engine=replace(MICRO_ENGINE, tile=tile))
        if not r["ok"]:
            raise SystemExit(f"{family} {tname} tile {tile}: the co-simulation failed; log in {r['log_dir']}")
        verify = sum(r["verify_cycles"])
        rows.append({"family": family, "tree": tname, "tile": tile, "tokens": r["tokens"],
                     "verifications": r["verifications"], "nodes_per_verification": r["nodes"] / r["verifications"],
                     "cycles_per_verification": verify / r["verifications"],
                     "cycles_per_token": r["measured_cycles"] / r["tokens"],
                     "predicted_cycles": r["predicted_cycles"], "measured_cycles": r["measured_cycles"],
                     "overlap_fraction": r["overlap"] / verify,
                     "program_words": sum(r["program_words"]) / len(r["program_words"]),
                     "load_cycles": sum(r["load_cycles"]) / len(r["load_cycles"]), "seconds": time.perf_counter() - t0})
        print(f"[{i + 1}/{len(RUNS)}] {family} {tname:8s} tile {tile}: {rows[-1]['cycles_per_token']:,.0f} cycles/token "
              f"(measured {r['measured_cycles']:,} = predicted {r['predicted_cycles']:,}), overlap "
              f"{rows[-1]['overlap_fraction']:.3f}, {rows[-1]['seconds']:.0f} s", flush=True)
    for r in rows:
        decode = next(d for d in rows if d["family"] == r["family"] and d["tree"] == "decode" and d["tile"] == r["tile"])
        r["speedup_vs_decode"] = decode["cycles_per_token"] / r["cycles_per_token"]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "engine_rtl.json").write_text(json.dumps({"engine": str(MICRO_ENGINE), "runs": rows}, indent=1))
    lines = ["| family | tree | tile | nodes / verification | verifications | cycles / verification | "
             "cycles / token | speedup vs decode | overlap | program (load cycles) | measured = predicted |",
             "|---" * 11 + "|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['tree']} | {r['tile']} | {r['nodes_per_verification']:.0f} | "
                     f"{r['verifications']} | {r['cycles_per_verification']:,.0f} | {r['cycles_per_token']:,.0f} | "
                     f"{r['speedup_vs_decode']:.2f} | {r['overlap_fraction']:.3f} | "
                     f"{r['program_words']:.0f} ({r['load_cycles']:.0f}) | "
                     f"{r['measured_cycles']:,} = {r['predicted_cycles']:,} |")
    (OUT / "engine_rtl.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    mamba1 = [r for r in rows if r["family"] == "mamba1"]
    for k, tile in enumerate((4, 8)):
        pts = [r for r in mamba1 if r["tile"] == tile]
        xs = [i + 0.38 * k for i in range(len(pts))]
        ax.bar(xs, [r["cycles_per_token"] / 1e3 for r in pts], width=0.38, label=f"tile {tile}")
        for x, r in zip(xs, pts):
            ax.text(x, r["cycles_per_token"] / 1e3, f"{r['overlap_fraction']:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks([i + 0.19 for i in range(len(TREES))], list(TREES))
    ax.set_ylabel("kcycles per generated token (RTL)")
    ax.set_title("Mamba-1 micro on the RTL engine: cycles per token (labels: overlap fraction)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "engine_rtl.png", dpi=120)
    print(f"saved {OUT / 'engine_rtl.json'}, {OUT / 'engine_rtl.md'} and {OUT / 'engine_rtl.png'}")


if __name__ == "__main__":
    main()
