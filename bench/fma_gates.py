"""Gates and switching activity of the FMA for every configuration of the MiniLM sweep.

Per configuration: technology-neutral gates (and generic LUT4) of the FMA as `specmx fma synth`
measures it (2 pipeline stages, registered ports, flip-flops excluded), the combinational FMA's
gates, and weighted toggles per multiply-add of its gate-level netlist on MiniLM operand streams
(`specmx.power.power_study`), each against exact normalization with the same formats and
rounding. Then the PE inside a 2x2 weight-stationary array (`gemm synth`'s pe_gates, registers
and forwarding included) for exact normalization and the design points. Writes
out/bench/fma_gates.{json,md}; bench/minilm_study.py and bench/approx_pareto.py read it.

    python bench/fma_gates.py
"""

import json
import sys
from pathlib import Path

from minilm_study import SWEEP, config

from specmx.hdl.fma import FMA
from specmx.models.config import FMAConfig, GemmConfig
from specmx.power import power_study
from specmx.synth import synthesize, synthesize_array

OUT = Path("out/bench")
PE_CONFIGS = ("exact", "window=4,step=4,policy=internal", "window=4,step=4,policy=internal,sum=30",
              "window=4,step=4,policy=internal,sum=29")


def main():
    cfgs = [config(row) for row in SWEEP]
    cfgs += [FMAConfig("bf16", "fp32", rounding="rtz")]                 # the exact reference of the rtz row
    earlier = {}
    if (OUT / "fma_gates.json").exists():                           # reuse configurations measured before
        earlier = {r["config"]: r for r in json.loads((OUT / "fma_gates.json").read_text())}
    synth = {}
    rows = []
    for i, cfg in enumerate(cfgs, 1):
        if cfg.name in earlier:
            rows.append(earlier[cfg.name])
            synth[cfg.name] = {"gates": rows[-1]["gates"], "lut4": rows[-1]["lut4"]}
            continue
        synth[cfg.name] = synthesize(FMA(cfg, 2), "fma", ecp5=False, fmax=False)
        p = power_study(cfg, OUT / "power", quiet=True)
        rows.append({"config": cfg.name, "gates": synth[cfg.name]["gates"], "lut4": synth[cfg.name]["lut4"],
                     "comb_gates": p["gates"], "comb_gates_vs_exact": p["gates_vs_exact"],
                     "toggles_per_mac": p["toggles_per_mac"], "toggles_vs_exact": p["ratio_vs_exact"],
                     "exact": p["exact"]})
        print(f"[{i}/{len(cfgs)}] {cfg.name:<52} gates {rows[-1]['gates']:,}, comb {p['gates']:,} "
              f"({p['gates_vs_exact']:.3f}), toggles/MAC {p['toggles_per_mac']:.0f} ({p['ratio_vs_exact']:.3f})",
              file=sys.stderr, flush=True)
    for r in rows:
        r["gates_vs_exact"] = r["gates"] / synth[r["exact"]]["gates"]
        r["lut4_vs_exact"] = r["lut4"] / synth[r["exact"]]["lut4"]
    pe = {}
    for name in PE_CONFIGS:
        cfg = FMAConfig("bf16", "fp32", **FMAConfig.parse_norm(name))
        if "pe_gates" in earlier.get(cfg.name, {}):                # measured before
            pe[cfg.name] = earlier[cfg.name]["pe_gates"]
            continue
        pe[cfg.name] = synthesize_array(GemmConfig(rows=2, cols=2, dataflow="ws", fma=cfg), fmax=False)["pe_gates"]
        print(f"PE in a 2x2 WS array, {cfg.name}: {pe[cfg.name]:,} gates", file=sys.stderr, flush=True)
    exact_pe = pe[FMAConfig("bf16", "fp32").name]
    for r in rows:
        if r["config"] in pe:
            r["pe_gates"], r["pe_gates_vs_exact"] = pe[r["config"]], pe[r["config"]] / exact_pe
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fma_gates.json").write_text(json.dumps(rows, indent=1))
    lines = ["| config | gates (fma synth) | vs exact | LUT4 | vs exact | combinational gates | vs exact | "
             "toggles/MAC | vs exact |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['gates']:,} | {r['gates_vs_exact']:.3f} | {r['lut4']:,} | {r['lut4_vs_exact']:.3f} | "
              f"{r['comb_gates']:,} | {r['comb_gates_vs_exact']:.3f} | {r['toggles_per_mac']:.0f} | "
              f"{r['toggles_vs_exact']:.3f} |" for r in rows]
    lines += ["", "| config | PE gates in a 2x2 WS array | vs exact |", "|---|---|---|"]
    lines += [f"| {r['config']} | {r['pe_gates']:,} | {r['pe_gates_vs_exact']:.3f} |" for r in rows if "pe_gates" in r]
    (OUT / "fma_gates.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
