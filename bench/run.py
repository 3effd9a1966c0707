"""specmx benchmarks (`make bench`): golden-model speed next to the MPFR oracle, and the area /
timing table of exact vs approximate-normalization FMAs, with the normalization parts broken out.

Prints tables and writes bench JSON + a markdown table to out/bench/.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from oracle import oracle_fma  # noqa: E402

from specmx.hdl.fma import FMA  # noqa: E402
from specmx.hdl.fma_parts import PARTS, FMAPart  # noqa: E402
from specmx.models.fma import FMAConfig, fma  # noqa: E402
from specmx.models.formats import encode  # noqa: E402
from specmx.synth import synthesize  # noqa: E402

OUT = Path("out/bench")
AREA_CONFIGS = [
    FMAConfig("bf16", "fp32"),
    FMAConfig("bf16", "fp32", window=8, step=1, policy="flush"),
    FMAConfig("bf16", "fp32", window=8, step=2, policy="round"),
    FMAConfig("bf16", "fp32", window=8, step=1, policy="internal"),
    FMAConfig("bf16", "fp32", window=4, step=4, policy="internal"),
    FMAConfig("bf16", "fp32", rounding="rtz"),
    FMAConfig("bf16", "fp32", window=4, step=4, policy="internal", rounding="rtz"),
]


def _best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def golden_speed():
    cfg = FMAConfig("bf16", "fp32")
    rng = np.random.default_rng(0)
    n = 2_000_000
    normal = [encode(rng.standard_normal(n), f) for f in ("bf16", "bf16", "fp32")]
    patterns = [rng.integers(0, 1 << 16, n), rng.integers(0, 1 << 16, n), rng.integers(0, 1 << 32, n)]
    m = 20_000
    t_oracle = _best(lambda: oracle_fma(*(x[:m] for x in normal), "bf16", "fp32"), 1)
    rows = {
        "golden_normal_values": n / _best(lambda: fma(*normal, cfg)),
        "golden_random_bit_patterns": n / _best(lambda: fma(*patterns, cfg)),
        "oracle_gmpy2": m / t_oracle,
    }
    print("\nGolden FMA speed, bf16 x bf16 + fp32, one core (FMAs/s)")
    for k, v in rows.items():
        print(f"  {k:28s} {v / 1e6:8.2f} M/s   {v / rows['oracle_gmpy2']:7.1f}x oracle")
    return rows


def area_table():
    rows = []
    base = {}
    print("\nArea and timing, registered FMA (gates: abc -g, flops excluded; Fmax: ECP5-25k OOC)")
    head = f"  {'config':52s} {'gates':>6s} {'ratio':>6s} {'lut4':>5s} {'ecp5':>5s} {'dsp':>3s} " \
           f"{'fmax':>6s} | {'lzd':>4s} {'shift':>5s} {'round':>5s}"
    print(head)
    for cfg in AREA_CONFIGS:
        t = time.perf_counter()
        r = {"config": cfg.name}
        r.update(synthesize(FMA(cfg, 0), "fma"))
        for part in PARTS:
            r[f"{part}_gates"] = synthesize(FMAPart(cfg, part), "part", ecp5=False)["gates"]
        if cfg.exact:
            base[cfg.rounding] = r    # approximate points compare with exact at equal rounding
        ref = base[cfg.rounding]
        r["gate_ratio"] = r["gates"] / ref["gates"]
        r["fmax_ratio"] = r["fmax_mhz"] / ref["fmax_mhz"]
        rows.append(r)
        print(f"  {cfg.name:52s} {r['gates']:6d} {r['gate_ratio']:6.3f} {r['lut4']:5d} {r['ecp5_lut']:5d} "
              f"{r['ecp5_dsp']:3d} {r['fmax_mhz']:6.1f} | {r['lzd_gates']:4d} {r['shifter_gates']:5d} "
              f"{r['round_gates']:5d}   ({time.perf_counter() - t:.0f} s)", flush=True)
    return rows


def cycle_model_speed():
    """One query, 10,000 design points, and SCALE-Sim's time per GEMM on the same shapes."""
    from specmx.models.config import GemmConfig
    from specmx.models.perf.gemm import gemm_cycles
    from specmx.scalesim import run_scalesim
    big = GemmConfig(rows=32, cols=32, dataflow="ws")
    one = _best(lambda: [gemm_cycles(big, 512, 512, 512) for _ in range(1000)]) / 1000
    sizes = [2, 4, 8, 16, 32, 64, 128, 256]
    shapes = [(m, n, k) for m in (1, 64, 512) for n in (512, 4096) for k in (64, 512, 2048)]
    points = [(r, c, df, sh) for r in sizes for c in sizes for df in ("os", "ws") for sh in shapes][:10_000]
    while len(points) < 10_000:
        points += points[:10_000 - len(points)]
    # as `gemm sweep` does: one engine config per design point, then the query
    sweep = _best(lambda: [gemm_cycles(GemmConfig(rows=r, cols=c, dataflow=df), *sh)
                           for r, c, df, sh in points], 1)
    ss_shapes = [(64, 64, 64), (128, 256, 64), (256, 256, 256), (32, 512, 128), (100, 60, 70)]
    _, ss_seconds = run_scalesim(16, 16, "ws", ss_shapes)
    mid = GemmConfig(rows=16, cols=16, dataflow="ws")
    ours = _best(lambda: [gemm_cycles(mid, *sh) for sh in ss_shapes]) / len(ss_shapes)
    rows = {"one_query_ms": one * 1e3, "points_10000_s": sweep,
            "scalesim_per_gemm_s": ss_seconds / len(ss_shapes), "specmx_per_gemm_s": ours}
    print("\nCycle model speed")
    print(f"  one query (512^3 on 32x32 ws)   {one * 1e3:9.4f} ms   (target < 1 ms)")
    print(f"  10,000 design points            {sweep:9.3f} s    (target < 10 s)")
    print(f"  per GEMM: specmx {ours * 1e6:.1f} us, SCALE-Sim {ss_seconds / len(ss_shapes):.2f} s "
          f"(one run of {len(ss_shapes)} GEMMs incl. start-up): {ss_seconds / len(ss_shapes) / ours:,.0f}x")
    return rows


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    speed = golden_speed()
    model = cycle_model_speed()
    area = area_table()
    (OUT / "bench.json").write_text(json.dumps({"golden_speed": speed, "cycle_model": model,
                                                "area": area}, indent=2))
    lines = ["| config | gates | vs exact | LUT4 | ECP5 LUT | DSP | Fmax MHz | vs exact | LZD | shifter | round |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in area:
        lines.append(f"| {r['config']} | {r['gates']} | {r['gate_ratio']:.3f} | {r['lut4']} | {r['ecp5_lut']} | "
                     f"{r['ecp5_dsp']} | {r['fmax_mhz']} | {r['fmax_ratio']:.2f} | {r['lzd_gates']} | "
                     f"{r['shifter_gates']} | {r['round_gates']} |")
    (OUT / "area.md").write_text("\n".join(lines) + "\n")
    print(f"\nsaved {OUT / 'bench.json'} and {OUT / 'area.md'}")


if __name__ == "__main__":
    main()
