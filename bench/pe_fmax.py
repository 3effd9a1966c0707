"""Fmax of the streaming engines' PEs per FMA pipeline depth (`make bench`): OSStreamPE and
WSStreamPE, exact and approximate normalization, s = 1..5 stages, synthesized on their own
(registered ports) for an ECP5-25k and placed and routed by nextpnr. Both PEs do one MAC per
cycle at any depth (OS: s interleaved accumulations; WS: the partial sum moves on), so
GFLOP/s per PE = 2 * Fmax. The OS accumulation loop runs through the whole FMA: deferring
normalization (policy internal) shortens it. Writes out/bench/pe_fmax.json and .md.

Usage: python bench/pe_fmax.py [--stages 1,2,3,4,5] [--jobs N]
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
    r = synthesize(pe, "pe", generic=False, device="25k")
    return {"dataflow": dataflow, "config": name, "pe_stages": stages, **r,
            "gflops_per_pe": 2 * r["fmax_mhz"] / 1e3, "seconds": round(time.perf_counter() - t, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", default="1,2,3,4,5")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    jobs = [(df, name, int(s)) for df in ("os", "ws") for name in CONFIGS for s in args.stages.split(",")]
    rows = []
    print(f"PE Fmax per pipeline depth, ECP5-25k out of context ({len(jobs)} place-and-route runs)")
    with ProcessPoolExecutor(args.jobs) as pool:
        for r in pool.map(_one, jobs):
            rows.append(r)
            print(f"  {r['dataflow']} {r['config']:6s} s={r['pe_stages']}: {r['fmax_mhz']:6.1f} MHz  "
                  f"{r['ecp5_lut']} LUT4 {r['ecp5_carry']} CCU2C {r['ecp5_dsp']} DSP  ({r['seconds']} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pe_fmax.json").write_text(json.dumps(rows, indent=2))
    stages = sorted({r["pe_stages"] for r in rows})
    lines = ["| PE | config | " + " | ".join(f"s={s} MHz" for s in stages) + " |", "|---" * (len(stages) + 2) + "|"]
    for df in ("os", "ws"):
        for name in CONFIGS:
            cells = {r["pe_stages"]: r["fmax_mhz"] for r in rows if (r["dataflow"], r["config"]) == (df, name)}
            lines.append(f"| {df} | {name} | " + " | ".join(f"{cells[s]:.1f}" for s in stages) + " |")
    text = "\n".join(lines) + "\n"
    (OUT / "pe_fmax.md").write_text(text)
    print(text + f"saved {OUT / 'pe_fmax.json'} and {OUT / 'pe_fmax.md'}")


if __name__ == "__main__":
    main()
