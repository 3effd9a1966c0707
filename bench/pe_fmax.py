"""Fmax of the streaming engines' PEs per FMA pipeline depth (`make bench`): OSStreamPE and
WSStreamPE, exact and approximate normalization, s = 1..12 stages (hdl.fma.PREFERENCE says
which cut each added stage takes), synthesized on their own (registered ports) for an
ECP5-85F and placed and routed by nextpnr (aiming at 100 MHz). Both PEs do one MAC per
cycle at any depth (OS: s interleaved accumulations; WS: the partial sum moves on), so
GFLOP/s per PE = 2 * Fmax (the table scales it to a 16x16 array at its 512^3 utilization, with
ECP5 LUT sites per GFLOP/s). The OS accumulation loop runs through the whole FMA: deferring
normalization (policy internal) shortens it. Writes out/bench/pe_fmax.json and .md.

Usage: python bench/pe_fmax.py [--stages 1,2,...,12] [--jobs N]
"""

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from specmx.models.config import FMAConfig

OUT = Path("out/bench")
CONFIGS = {"exact": FMAConfig("bf16", "fp32"),
           "approx": FMAConfig("bf16", "fp32", window=4, step=4, policy="internal")}


def _one(job):
    from specmx.hdl.pe import OSStreamPE, WSStreamPE
    from specmx.synth import synthesize
    dataflow, name, stages = job
    pe = (OSStreamPE if dataflow == "os" else WSStreamPE)(CONFIGS[name], stages)
    t = time.perf_counter()
    r = synthesize(pe, "pe", generic=False, device="85k", freq=100)
    return {"dataflow": dataflow, "config": name, "pe_stages": stages, **r,
            "gflops_per_pe": 2 * r["fmax_mhz"] / 1e3, "seconds": round(time.perf_counter() - t, 1)}


def array_throughput(rows, n=16):
    """GFLOP/s of an n x n streaming array on 512^3 at each PE's Fmax, and ECP5 LUT sites
    (LUT4 + 2 per carry cell) per GFLOP/s."""
    from specmx.models.config import GemmConfig
    from specmx.models.perf.gemm import gemm_cycles
    out = []
    for r in rows:
        engine = GemmConfig(CONFIGS[r["config"]], n, n, r["dataflow"], r["pe_stages"], schedule="streaming")
        util = gemm_cycles(engine, 512, 512, 512).utilization
        gflops = 2 * n * n * r["fmax_mhz"] * util / 1e3
        sites = n * n * (r["ecp5_lut"] + 2 * r["ecp5_carry"])
        out.append({**r, "array_gflops": gflops, "array_lut_sites": sites, "lut_sites_per_gflops": sites / gflops})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", default=",".join(str(s) for s in range(1, 13)))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--from-json", default=None, metavar="FILE",
                   help="tabulate a saved pe_fmax.json instead of synthesizing")
    args = p.parse_args()
    jobs = [(df, name, int(s)) for df in ("os", "ws") for name in CONFIGS for s in args.stages.split(",")]
    rows = []
    if args.from_json:
        rows, jobs = json.loads(Path(args.from_json).read_text()), []
    print(f"PE Fmax per pipeline depth, ECP5-85F out of context ({len(jobs)} place-and-route runs)")
    with ProcessPoolExecutor(args.jobs) as pool:
        for r in pool.map(_one, jobs):
            rows.append(r)
            print(f"  {r['dataflow']} {r['config']:6s} s={r['pe_stages']}: {r['fmax_mhz']:6.1f} MHz  "
                  f"{r['ecp5_lut']} LUT4 {r['ecp5_carry']} CCU2C {r['ecp5_dsp']} DSP  ({r['seconds']} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pe_fmax.json").write_text(json.dumps(array_throughput(rows), indent=2))
    stages = sorted({r["pe_stages"] for r in rows})
    lines = ["| PE | config | " + " | ".join(f"s={s} MHz" for s in stages) + " |", "|---" * (len(stages) + 2) + "|"]
    for df in ("os", "ws"):
        for name in CONFIGS:
            cells = {r["pe_stages"]: r["fmax_mhz"] for r in rows if (r["dataflow"], r["config"]) == (df, name)}
            lines.append(f"| {df} | {name} | " + " | ".join(f"{cells[s]:.1f}" for s in stages) + " |")
    lines += ["", "16x16 streaming array at each PE's out-of-context Fmax (an upper bound: the array adds "
              "wiring and the stall enable's fan-out), 512^3 utilization from the cycle model:", "",
              "| PE | config | s | Fmax MHz | GFLOP/s | ECP5 LUT sites | LUT sites per GFLOP/s |", "|---" * 7 + "|"]
    for r in array_throughput(rows):
        lines.append(f"| {r['dataflow']} | {r['config']} | {r['pe_stages']} | {r['fmax_mhz']:.1f} | "
                     f"{r['array_gflops']:.2f} | {r['array_lut_sites']} | {r['lut_sites_per_gflops']:.0f} |")
    text = "\n".join(lines) + "\n"
    (OUT / "pe_fmax.md").write_text(text)
    print(text + f"saved {OUT / 'pe_fmax.json'} and {OUT / 'pe_fmax.md'}")


if __name__ == "__main__":
    main()
