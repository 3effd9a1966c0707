"""Matrix-engine throughput from the cycle models (`make bench`): utilization of the phased and
streaming schedules next to SCALE-Sim's compute cycles (run in the same job), and the
weight-streaming table (M = 1..16 rows, K = N = 2048) against the bandwidth bound.

The cycle models are the ones the RTL checks hold equal to the simulated engines (streaming
schedule, both dataflows: arrays up to 4x4 in `make test`, 8x8 in `make regress`); the bandwidth-limited
figures are the model's bound (bytes / bandwidth), not an RTL-checked schedule. Writes
out/bench/gemm_throughput.json and .md.
"""

import json
from pathlib import Path

from specmx.models.config import GemmConfig, PerfConfig
from specmx.models.perf.gemm import gemm_cycles
from specmx.scalesim import run_scalesim

OUT = Path("out/bench")
ARRAYS = (4, 8, 16, 32)
SCALESIM_ARRAYS = (16, 32)     # SCALE-Sim traces every cycle: minutes per 512^3 GEMM on smaller arrays
SHAPES = ((512, 512, 512), (100, 60, 70), (16, 2048, 2048))
ENGINES = (("os", 1, "phased"), ("ws", 1, "phased"), ("os", 1, "streaming"), ("os", 2, "streaming"),
           ("ws", 1, "streaming"), ("ws", 2, "streaming"))


def weight_bytes_per_cycle(engine):
    """The rate at which the streaming engine takes B: C words every s cycles (os), every
    cycle (ws)."""
    return engine.cols * engine.in_bytes / (engine.pe_stages if engine.dataflow == "os" else 1)


def _fmt(v):
    return "-" if v is None else f"{v:.3f}"


def utilization_table():
    rows = []
    for n in ARRAYS:
        scalesim = {df: run_scalesim(n, n, df, SHAPES)[0] if n in SCALESIM_ARRAYS else None
                    for df in ("os", "ws")}
        for i, (M, N, K) in enumerate(SHAPES):
            row = {"array": f"{n}x{n}", "shape": f"{M}x{N}x{K}"}
            for df in ("os", "ws"):
                row[f"scalesim_{df}_util"] = M * N * K / (n * n) / scalesim[df][i] if scalesim[df] else None
            for df, s, schedule in ENGINES:
                e = GemmConfig(rows=n, cols=n, dataflow=df, pe_stages=s, schedule=schedule)
                row[f"{schedule}_{df}_s{s}_util"] = gemm_cycles(e, M, N, K).utilization
            rows.append(row)
            print(f"  {row['array']:>5s} {row['shape']:>14s}  " + "  ".join(
                f"{k.replace('_util', '')} {_fmt(v)}" for k, v in row.items() if k.endswith("_util")), flush=True)
    return rows


def weight_streaming_table(n=16, K=2048, N=2048):
    """Total cycles of a decode-shaped GEMM on the streaming engines at a bandwidth limit, and
    the bound weight bytes / bandwidth."""
    rows = []
    for df, s in (("os", 1), ("os", 2), ("ws", 1), ("ws", 2)):
        e = GemmConfig(rows=n, cols=n, dataflow=df, pe_stages=s, schedule="streaming")
        peak = weight_bytes_per_cycle(e)
        for bw in (4, 8, 16, 32):
            for M in (1, 2, 4, 8, 16):
                c = gemm_cycles(e, M, N, K, PerfConfig(bandwidth=bw))
                bound = K * N * e.in_bytes / bw
                rows.append({"array": f"{n}x{n}", "dataflow": df, "pe_stages": s, "bandwidth_B_per_cycle": bw,
                             "M": M, "cycles": c.total_cycles, "bound_cycles": bound,
                             "ratio": c.total_cycles / bound, "engine_weight_B_per_cycle": peak})
        print(f"  {n}x{n} {df} s={s} (takes weights at {peak:.0f} B/cycle): cycles / (weight bytes / bw)")
        for bw in (4, 8, 16, 32):
            cells = [r for r in rows if (r["dataflow"], r["pe_stages"], r["bandwidth_B_per_cycle"]) == (df, s, bw)]
            print(f"    {bw:3d} B/cycle: " + "  ".join(f"M={r['M']:2d} {r['ratio']:.3f}" for r in cells))
    return rows


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    print("\nGEMM utilization (cycle models; SCALE-Sim 3.0.0 compute cycles in the same run)")
    util = utilization_table()
    print("\nWeight streaming, K = N = 2048 (streaming engines)")
    ws = weight_streaming_table()
    (OUT / "gemm_throughput.json").write_text(json.dumps({"utilization": util, "weight_streaming": ws}, indent=2))
    keys = [k for k in util[0] if k.endswith("_util")]
    lines = ["| array | shape | " + " | ".join(k.replace("_util", "") for k in keys) + " |",
             "|---" * (len(keys) + 2) + "|"]
    lines += [f"| {r['array']} | {r['shape']} | " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in util]
    lines += ["", "| array | dataflow | s | B/cycle | " + " | ".join(f"M={m}" for m in (1, 2, 4, 8, 16)) + " |",
              "|---" * 9 + "|"]
    for df, s in (("os", 1), ("os", 2), ("ws", 1), ("ws", 2)):
        for bw in (4, 8, 16, 32):
            cells = [r for r in ws if (r["dataflow"], r["pe_stages"], r["bandwidth_B_per_cycle"]) == (df, s, bw)]
            lines.append(f"| {cells[0]['array']} | {df} | {s} | {bw} | "
                         + " | ".join(f"{r['ratio']:.3f}" for r in cells) + " |")
    (OUT / "gemm_throughput.md").write_text("\n".join(lines) + "\n")
    print(f"saved {OUT / 'gemm_throughput.json'} and {OUT / 'gemm_throughput.md'}")


if __name__ == "__main__":
    main()
