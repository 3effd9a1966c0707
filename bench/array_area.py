"""Area and timing of a 4x4 bf16 x bf16 + fp32 systolic array, exact vs approximate normalization
(`make bench`: phased s=2, about 10 minutes per row on one core; streaming s=12, about 25-40
minutes per row; most of it nextpnr).

Each row: gates and LUT4 of one PE and of the whole array (the PE synthesized once, counted 16
times), ECP5 LUT4/carry/DSP, out-of-context Fmax, and GFLOP/s at that Fmax on a 512^3 GEMM (the
cycle model's utilization for the schedule) with gates and ECP5 LUT sites (LUT4 + 2 per carry
cell) per GFLOP/s. Ratios compare with the exact PE at the same rounding. All rows are placed on
one ECP5 part (`--device`, default 45k, the smallest that holds the exact array), so Fmax
compares like with like. Prints a table and writes
out/bench/array_area_<dataflow>_s<stages>[_stream].json and .md.

    python bench/array_area.py [--dataflow ws] [--stages 2] [--schedule phased] [--rounding both]
                               [--jobs 2] [--device 45k]
"""

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from specmx.models.fma import FMAConfig
from specmx.models.config import MAX_FMA_STAGES, SCHEDULES, GemmConfig
from specmx.models.perf.gemm import gemm_cycles
from specmx.synth import ECP5_DEVICES, synthesize_array

OUT = Path("out/bench")
CONFIGS = [
    FMAConfig("bf16", "fp32"),
    FMAConfig("bf16", "fp32", window=4, step=4, policy="internal"),
    FMAConfig("bf16", "fp32", rounding="rtz"),
    FMAConfig("bf16", "fp32", window=4, step=4, policy="internal", rounding="rtz"),
]


def _one(job):
    cfg, dataflow, stages, schedule, device = job
    t = time.perf_counter()
    engine = GemmConfig(cfg, 4, 4, dataflow, stages, schedule=schedule)
    result = synthesize_array(engine, device=device)
    util = gemm_cycles(engine, 512, 512, 512).utilization
    gflops = 2 * 16 * result["array_fmax_mhz"] * util / 1e3
    sites = result["array_ecp5_lut"] + 2 * result["array_ecp5_carry"]
    result.update(rounding=cfg.rounding, exact=cfg.exact, schedule=schedule, utilization_512=round(util, 4),
                  gflops=round(gflops, 3), gates_per_gflops=round(result["array_gates"] / gflops),
                  lut_sites_per_gflops=round(sites / gflops), seconds=round(time.perf_counter() - t))
    print(f"  done {cfg.name} ({result['seconds']} s)", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataflow", default="ws", choices=["os", "ws"])
    parser.add_argument("--stages", type=int, default=2, choices=range(1, MAX_FMA_STAGES + 1))
    parser.add_argument("--schedule", default="phased", choices=SCHEDULES)
    parser.add_argument("--rounding", default="both", choices=["rne", "rtz", "both"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="45k", choices=sorted(ECP5_DEVICES),
                        help="one ECP5 part for every row, so Fmax compares like with like")
    args = parser.parse_args()
    configs = [cfg for cfg in CONFIGS if args.rounding in ("both", cfg.rounding)]
    print(f"Synthesizing {len(configs)} 4x4 {args.dataflow} {args.schedule} arrays, PE stages {args.stages} ...",
          flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(_one, [(cfg, args.dataflow, args.stages, args.schedule, args.device) for cfg in configs]))
    exact = {r["rounding"]: r for r in rows if r["exact"]}
    lines = ["| config | PE gates | vs exact | PE LUT4 | array gates | array LUT4 | ECP5 LUT4 | carry | DSP "
             "| device | Fmax MHz | vs exact | GFLOP/s (512^3) | gates per GFLOP/s | LUT sites per GFLOP/s |",
             "|---" * 15 + "|"]
    for r in rows:
        ref = exact[r["rounding"]]
        r["pe_gate_ratio"] = round(r["pe_gates"] / ref["pe_gates"], 3)
        r["fmax_ratio"] = round(r["array_fmax_mhz"] / ref["array_fmax_mhz"], 3)
        lines.append(f"| {r['config']} | {r['pe_gates']} | {r['pe_gate_ratio']:.3f} | {r['pe_lut4']} | "
                     f"{r['array_gates']} | {r['array_lut4']} | {r['array_ecp5_lut']} | {r['array_ecp5_carry']} | "
                     f"{r['array_ecp5_dsp']} | {r['array_ecp5_device']} | {r['array_fmax_mhz']} | "
                     f"{r['fmax_ratio']:.2f} | {r['gflops']:.2f} | {r['gates_per_gflops']} | "
                     f"{r['lut_sites_per_gflops']} |")
    print("\n".join(lines))
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"array_area_{args.dataflow}_s{args.stages}" + ("_stream" if args.schedule == "streaming" else "")
    (OUT / f"{stem}.json").write_text(json.dumps(rows, indent=2))
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"saved {OUT / stem}.json and .md")


if __name__ == "__main__":
    main()
