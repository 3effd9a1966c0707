"""The Mamba engine's cycle model at full size (`make bench`): cycles per verification step and
per token for several token trees and tile sizes against plain decode, the overlap of the
matrix engine with the scan unit, what the critical path spends its cycles on, and how long a
query takes (closed form next to the list scheduler on the networkx graph, the same step).

Writes out/bench/engine_perf.{json,md} and out/bench/engine_perf.png.

    python bench/engine_perf.py
"""

import json
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from specmx.cli.engine import model_config  # noqa: E402
from specmx.models.config import EngineConfig  # noqa: E402
from specmx.models.perf.engine import (engine_perf, list_schedule, model_dims, step_cycles, step_graph,  # noqa: E402
                                       step_ops, tree_parents)

OUT = Path("out/bench")
ENGINES = {
    "4x4 (ECP5-85F)": EngineConfig(),
    "16x16, 16 lanes": EngineConfig(rows=16, cols=16, lanes=16, tile=32, state_slots=64, mem_words=16),
}
MODELS = ("130m", "mamba2-130m", "mamba2-2.7b")
TREES = {"decode": (), "chain 4": (1, 1, 1), "2,2": (2, 2), "3,2,1": (3, 2, 1), "2,2,2,2": (2, 2, 2, 2),
         "8 wide": (8,)}
TILES = (1, 2, 4, 8, 16, 32)


def critical_units(g, path):
    """Cycles of the critical path per unit."""
    out = {}
    for name in path:
        unit = g.nodes[name]["unit"]
        out[unit] = out.get(unit, 0) + g.nodes[name]["cycles"]
    return out


def main():
    rows = []
    for ename, engine in ENGINES.items():
        for model in MODELS:
            dims = model_dims(model_config(model))
            for tname, widths in TREES.items():
                parent = tree_parents(widths)
                t0 = time.perf_counter()
                ops, info = step_ops(engine, dims, parent, "store")
                closed = max(e for _, e in step_cycles(ops).values())
                t1 = time.perf_counter()
                g = step_graph(ops)
                sched = list_schedule(g)
                t2 = time.perf_counter()
                assert sched["length"] == closed, (ename, model, tname)
                r = engine_perf(engine, dims, parent, "store", clock_mhz=100)
                rows.append({"engine": ename, "model": model, "tree": tname, "nodes": r["nodes"],
                             "tiles": r["tiles"], "cycles_per_verification": r["cycles_per_verification"],
                             "cycles_per_token": r["cycles_per_token"], "decode_cycles_per_token": r["decode_cycles_per_token"],
                             "speedup_vs_decode": r["speedup_vs_decode"], "overlap_fraction": r["overlap_fraction"],
                             "tokens_per_s_100mhz": r["tokens_per_s"],
                             "critical_path_units": critical_units(g, sched["critical_path"]),
                             "closed_form_ms": 1e3 * (t1 - t0), "list_schedule_ms": 1e3 * (t2 - t1)})
                print(f"{ename:16s} {model:12s} {tname:8s} {r['nodes']:3d} nodes: {r['cycles_per_verification']:>12,} "
                      f"cycles/step, {r['cycles_per_token']:>14,.0f} cycles/token, x{r['speedup_vs_decode']:.2f} "
                      f"vs decode, overlap {r['overlap_fraction']:.3f}; closed form {1e3 * (t1 - t0):.1f} ms, "
                      f"list scheduler {1e3 * (t2 - t1):.1f} ms", flush=True)
    # tile sweep: 130m on the 16x16 engine, each tree
    sweep = []
    dims = model_dims(model_config("130m"))
    for tname, widths in TREES.items():
        for tile in TILES:
            engine = replace(ENGINES["16x16, 16 lanes"], tile=tile)
            r = engine_perf(engine, dims, tree_parents(widths))
            sweep.append({"tree": tname, "tile": tile, "cycles_per_token": r["cycles_per_token"],
                          "overlap_fraction": r["overlap_fraction"]})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "engine_perf.json").write_text(json.dumps({"steps": rows, "tile_sweep": sweep}, indent=1))
    lines = ["| engine | model | tree | nodes | tiles | cycles / step | cycles / token (all accepted) | "
             "decode cycles / token | speedup | overlap | tokens/s at 100 MHz | critical path (mxu share) | "
             "closed form ms | list scheduler ms |", "|---" * 14 + "|"]
    for r in rows:
        cp = r["critical_path_units"]
        share = cp.get("mxu", 0) / max(1, sum(cp.values()))
        lines.append(f"| {r['engine']} | {r['model']} | {r['tree']} | {r['nodes']} | {r['tiles']} | "
                     f"{r['cycles_per_verification']:,} | {r['cycles_per_token']:,.0f} | {r['decode_cycles_per_token']:,} | "
                     f"{r['speedup_vs_decode']:.2f} | {r['overlap_fraction']:.3f} | {r['tokens_per_s_100mhz']:.2f} | "
                     f"{share:.2f} | {r['closed_form_ms']:.1f} | {r['list_schedule_ms']:.1f} |")
    (OUT / "engine_perf.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tname in TREES:
        pts = [s for s in sweep if s["tree"] == tname]
        ax.plot([s["tile"] for s in pts], [s["cycles_per_token"] / 1e6 for s in pts], marker="o", label=tname)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tile (tree nodes per linear-layer batch)")
    ax.set_ylabel("Mcycles per token (every draft accepted)")
    ax.set_title("Mamba-130m on a 16x16 engine: cycles per token by tree and tile")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "engine_perf.png", dpi=120)
    print(f"saved {OUT / 'engine_perf.json'}, {OUT / 'engine_perf.md'} and {OUT / 'engine_perf.png'}")


if __name__ == "__main__":
    main()
