"""Approximate normalization on a real transformer: all-MiniLM-L6-v2 with every matmul on the
matrix engine's arithmetic (bf16 operands, fp32 or bf16 accumulation, every normalization
knob), against the float32 reference on specmx's evaluation set.

1. Sweep: nineteen configurations on the subset (first topic of each domain: 50 sentences,
   30 pairs, 20 queries), both cores.
2. Full set (250 sentences, 200 pairs, 100 queries) for the exact configurations, the first
   `--full` approximate ones on the Pareto front of subset loss against FMA gates
   (out/bench/fma_gates.json from bench/fma_gates.py), and the design point window 4, step 4,
   internal words, 30-bit sum register, and the same with a bf16 accumulator.
3. Speed of the arithmetic routes, side by side in this run: numpy float32 a*b+c, the native
   exact route, the vectorised golden and the compiled datapath, in multiply-adds per second
   on one core, element-wise on bit patterns and as the GEMM chain the studies run.

Gates per configuration join from `fma synth` results when out/bench/fma_gates.json exists
(`python bench/fma_gates.py`). Writes out/bench/minilm_study.{json,md}.

    python bench/minilm_study.py [--full 2] [--jobs 2] [--quick]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from specmx.models.config import FMAConfig
from specmx.study_minilm import run_minilm

OUT = Path("out/bench")


# (accumulator, window, step, policy, rounding, sum register bits or None)
SWEEP = [("fp32", None, 1, "round", "rne", None), ("bf16", None, 1, "round", "rne", None),
         ("fp32", 4, 4, "internal", "rne", None), ("fp32", 4, 4, "internal", "rtz", None),
         ("fp32", 4, 4, "round", "rne", None), ("fp32", 8, 2, "round", "rne", None),
         ("fp32", 8, 8, "round", "rne", None), ("fp32", 8, 1, "flush", "rne", None),
         ("fp32", 4, 1, "flush", "rne", None), ("fp32", 2, 2, "round", "rne", None),
         ("fp32", 16, 8, "internal", "rne", None), ("bf16", 8, 2, "round", "rne", None),
         ("bf16", 4, 4, "internal", "rne", None),
         # the narrow sum register (`sum_bits`), exact and approximate normalization
         ("fp32", None, 1, "round", "rne", 28), ("fp32", 4, 4, "round", "rne", 26),
         ("fp32", 8, 2, "round", "rne", 28), ("fp32", 4, 4, "internal", "rne", 33),
         ("fp32", 4, 4, "internal", "rne", 30), ("fp32", 4, 4, "internal", "rne", 29)]


def config(row):
    acc, w, s, pol, rnd, sum_bits = row
    return FMAConfig("bf16", acc, window=w, step=s, policy=pol, rounding=rnd, sum_bits=sum_bits)


def sweep_configs(quick=False):
    """Exact fp32 and bf16 accumulation, then windows 2-16, steps 1-8, the three policies, both
    roundings and both accumulators around the area design point (window 4, step 4, internal),
    and narrow sum registers; `quick`: the two exact ones and two approximate ones."""
    rows = SWEEP[:3] + SWEEP[5:6] if quick else SWEEP
    return [config(r) for r in rows]


def speed():
    """One-core multiply-add rates of each route for bf16 x bf16 + fp32, same operands."""
    import ml_dtypes
    from specmx.models.fma import fma
    from specmx.models.fma_kernel import fma_fast
    from specmx.models.native_fma import fma_native
    rng = np.random.default_rng(0)
    n = 1_000_000
    af, bf = (rng.standard_normal(n).astype(ml_dtypes.bfloat16) for _ in range(2))
    cf = rng.standard_normal(n).astype(np.float32)
    a, b = (x.view(np.uint16).astype(np.int64) for x in (af, bf))
    c = cf.view(np.uint32).astype(np.int64)
    exact, approx = FMAConfig(), FMAConfig(window=8, step=2, policy="round")
    fma_fast(a[:10], b[:10], c[:10], approx)                      # compile (cached on disk)
    a32, b32 = af.astype(np.float32), bf.astype(np.float32)
    rows = []
    for name, fn in [("numpy float32 a*b+c (values, not words)", lambda: a32 * b32 + cf),
                     ("native exact route (fma_native)", lambda: fma_native(a, b, c, exact)),
                     ("golden, exact (fma.fma)", lambda: fma(a, b, c, exact)),
                     ("golden, window=8,step=2,policy=round", lambda: fma(a, b, c, approx)),
                     ("compiled datapath, window=8,step=2,policy=round (fma_fast)", lambda: fma_fast(a, b, c, approx))]:
        t0 = time.perf_counter()
        fn()
        rows.append({"route": name, "m_per_s": n / (time.perf_counter() - t0) / 1e6})
    from specmx.models.gemm import gemm_chain
    A = rng.standard_normal((64, 384)).astype(ml_dtypes.bfloat16).view(np.uint16).astype(np.int64)
    B = rng.standard_normal((384, 384)).astype(ml_dtypes.bfloat16).view(np.uint16).astype(np.int64)
    C0 = np.zeros((64, 384), np.int64)
    macs = A.shape[0] * A.shape[1] * B.shape[1]
    paper, narrow = FMAConfig(window=4, step=4, policy="internal"), FMAConfig(window=4, step=4, policy="internal", sum_bits=30)
    for cfg in (approx, paper, narrow):
        gemm_chain(cfg, A[:1], B[:, :2], C0[:1, :2], compiled=True)                   # compile (cached on disk)
    for name, fn, share in [("GEMM 64x384x384, exact: native route (gemm_chain)", lambda: gemm_chain(exact, A, B, C0), 1),
                            ("GEMM 64x384x384, window=8,step=2,policy=round: golden chain",
                             lambda: gemm_chain(approx, A[:8], B, C0[:8]), 8),
                            ("GEMM 64x384x384, window=8,step=2,policy=round: compiled (gemm_fast)",
                             lambda: gemm_chain(approx, A, B, C0, compiled=True), 1),
                            ("GEMM 64x384x384, window=4,step=4,policy=internal: compiled",
                             lambda: gemm_chain(paper, A, B, C0, compiled=True), 1),
                            ("GEMM 64x384x384, window=4,step=4,policy=internal,sum=30: compiled",
                             lambda: gemm_chain(narrow, A, B, C0, compiled=True), 1)]:
        t0 = time.perf_counter()
        fn()
        rows.append({"route": name, "m_per_s": macs / share / (time.perf_counter() - t0) / 1e6})
    golden = rows[3]["m_per_s"]
    for r in rows:
        r["vs_golden_approx"] = r["m_per_s"] / golden
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", type=int, default=2, metavar="K", help="approximate configs run on the full set")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a few configurations only")
    ap.add_argument("--fresh", action="store_true", help="rerun configurations an earlier run measured")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    earlier = {"subset": {}, "full": {}}
    if not args.fresh and (OUT / "minilm_study.json").exists():
        old = json.loads((OUT / "minilm_study.json").read_text())
        earlier = {k: {r["config"]: r for r in old.get(k, [])} for k in ("subset", "full")}
    result = {"speed": speed(), "subset": [], "full": []}
    for r in result["speed"]:
        print(f"  {r['route']:<70} {r['m_per_s']:8.1f} M/s ({r['vs_golden_approx']:.1f}x golden approx)", flush=True)
    fast = min(r["m_per_s"] for r in result["speed"] if r["route"].endswith("compiled") or "(gemm_fast)" in r["route"])
    print(f"  slowest compiled approximate bf16 x bf16 + fp32 GEMM: {fast:.1f} M/s on one core "
          f"(target >= 50: {'met' if fast >= 50 else 'NOT met'})", flush=True)
    cfgs = sweep_configs(args.quick)
    for i, cfg in enumerate(cfgs, 1):
        r = earlier["subset"].get(cfg.name) or run_minilm(cfg, topics=1, jobs=args.jobs, quiet=True)
        result["subset"].append(r)
        print(f"[subset {i}/{len(cfgs)}] {cfg.name:<50} spearman {r['spearman']:.4f} "
              f"(loss {r['relative_loss']:+.2%}), cos {r['cosine_mean']:.5f}, top-1 {r['top1_agreement']:.0%}, "
              f"{r['seconds']:.0f} s", flush=True)
        _save(result)
    by_name = {c.name: c for c in sweep_configs()}
    full = [r["config"] for r in result["subset"] if "exact" in r["config"]] + \
        [name for name in _front(result["subset"], _gates()) if "exact" not in name][:args.full]
    full += [name for name in (FMAConfig(window=4, step=4, policy="internal", sum_bits=30).name,
                               FMAConfig("bf16", "bf16", window=4, step=4, policy="internal").name) if name not in full]
    for i, name in enumerate(full, 1):
        r = earlier["full"].get(name) or run_minilm(by_name[name], topics=5, jobs=args.jobs, quiet=True)
        result["full"].append(r)
        print(f"[full {i}/{len(full)}] {name:<50} spearman {r['spearman']:.4f} (loss {r['relative_loss']:+.2%}), "
              f"cos {r['cosine_mean']:.5f}, top-1 {r['top1_agreement']:.0%}, {r['seconds']:.0f} s", flush=True)
        _save(result)
    print((OUT / "minilm_study.md").read_text())


def _gates():
    """FMA gates relative to exact per config name, from out/bench/fma_gates.json if present."""
    path = OUT / "fma_gates.json"
    return {r["config"]: r["gates_vs_exact"] for r in json.loads(path.read_text())} if path.exists() else {}


def _front(rows, gates):
    """Config names on the Pareto front of (relative loss, gates), fewest gates first; without
    gate figures, the design point (window 4, step 4, internal) and the most aggressive config
    within 0.5% loss."""
    if gates:
        pts = sorted((gates[r["config"]], r["relative_loss"], r["config"]) for r in rows if r["config"] in gates)
        front, best = [], float("inf")
        for g, loss, name in pts:
            if loss < best:
                front.append(name)
                best = loss
        return front
    ok = [r["config"] for r in rows if r["relative_loss"] <= 0.005]
    point = [n for n in ok if "window=4,step=4,policy=internal:rne" in n and n.startswith("bf16xbf16+fp32")]
    return point + [n for n in reversed(ok) if n not in point]


def _table(rows, gates):
    lines = ["| config | spearman | float32 | relative loss | cosine mean | cosine min | top-1 agreement | "
             "top-1 accuracy | FMA gates vs exact | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g = gates.get(r["config"])
        lines.append(f"| {r['config']} | {r['spearman']:.4f} | {r['spearman_ref']:.4f} | {r['relative_loss']:+.2%} | "
                     f"{r['cosine_mean']:.6f} | {r['cosine_min']:.6f} | {r['top1_agreement']:.0%} | "
                     f"{r['top1_accuracy']:.0%} | {'-' if g is None else f'{g:.3f}'} | {r['seconds']:.0f} |")
    return lines


def _save(result):
    gates = _gates()
    (OUT / "minilm_study.json").write_text(json.dumps(result, indent=1))
    lines = ["| arithmetic route (one core) | M multiply-adds/s | vs golden (approximate) |", "|---|---|---|"]
    lines += [f"| {r['route']} | {r['m_per_s']:.1f} | {r['vs_golden_approx']:.1f}x |" for r in result["speed"]]
    lines += ["", "Subset (50 sentences, 30 pairs, 20 queries):", ""] + _table(result["subset"], gates)
    if result["full"]:
        lines += ["", "Full set (250 sentences, 200 pairs, 100 queries):", ""] + _table(result["full"], gates)
    (OUT / "minilm_study.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
