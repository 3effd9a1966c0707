"""Area and timing of a 4x4 bf16 x bf16 + fp32 systolic array, exact vs approximate normalization
(`make bench`, about 10 minutes per row on one core, most of it nextpnr).

Each row: gates and LUT4 of one PE and of the whole array (the PE synthesized once, counted 16
times), ECP5 LUT4/carry/DSP, and out-of-context Fmax. Ratios compare with the exact PE at the same
rounding. All rows are placed on one ECP5 part (`--device`, default 45k, the smallest that holds
the exact array), so Fmax compares like with like. Prints a table and writes
out/bench/array_area_<dataflow>_s<stages>.json and .md.

    python bench/array_area.py [--dataflow ws] [--stages 2] [--jobs 2] [--device 45k]
"""

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from specmx.models.fma import FMAConfig
from specmx.models.config import GemmConfig
from specmx.synth import ECP5_DEVICES, synthesize_array

OUT = Path("out/bench")
CONFIGS = [
    FMAConfig("bf16", "fp32"),
    FMAConfig("bf16", "fp32", window=4, step=4, policy="internal"),
    FMAConfig("bf16", "fp32", rounding="rtz"),
    FMAConfig("bf16", "fp32", window=4, step=4, policy="internal", rounding="rtz"),
]


def _one(job):
    cfg, dataflow, stages, device = job
    t = time.perf_counter()
    result = synthesize_array(GemmConfig(cfg, 4, 4, dataflow, stages), device=device)
    result.update(rounding=cfg.rounding, exact=cfg.exact, seconds=round(time.perf_counter() - t))
    print(f"  done {cfg.name} ({result['seconds']} s)", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataflow", default="ws", choices=["os", "ws"])
    parser.add_argument("--stages", type=int, default=2, choices=range(1, 6))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="45k", choices=sorted(ECP5_DEVICES),
                        help="one ECP5 part for every row, so Fmax compares like with like")
    args = parser.parse_args()
    print(f"Synthesizing {len(CONFIGS)} 4x4 {args.dataflow} arrays, PE stages {args.stages} ...", flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(_one, [(cfg, args.dataflow, args.stages, args.device) for cfg in CONFIGS]))
    exact = {r["rounding"]: r for r in rows if r["exact"]}
    lines = ["| config | PE gates | vs exact | PE LUT4 | array gates | array LUT4 | ECP5 LUT4 | carry | DSP "
             "| device | Fmax MHz | vs exact |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = exact[r["rounding"]]
        r["pe_gate_ratio"] = round(r["pe_gates"] / ref["pe_gates"], 3)
        r["fmax_ratio"] = round(r["array_fmax_mhz"] / ref["array_fmax_mhz"], 3)
        lines.append(f"| {r['config']} | {r['pe_gates']} | {r['pe_gate_ratio']:.3f} | {r['pe_lut4']} | "
                     f"{r['array_gates']} | {r['array_lut4']} | {r['array_ecp5_lut']} | {r['array_ecp5_carry']} | "
                     f"{r['array_ecp5_dsp']} | {r['array_ecp5_device']} | {r['array_fmax_mhz']} | "
                     f"{r['fmax_ratio']:.2f} |")
    print("\n".join(lines))
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"array_area_{args.dataflow}_s{args.stages}"
    (OUT / f"{stem}.json").write_text(json.dumps(rows, indent=2))
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"saved {OUT / stem}.json and .md")


if __name__ == "__main__":
    main()
