"""Synthesis against placement on the ECP5: each self-test bitstream's placed utilization
(nextpnr-ecp5 through `specmx bitstream build`) next to Yosys's synth_ecp5 count of the same
self-test (the count `specmx fma|gemm|ssm synth` report and the board resource estimate rests
on: boards/costs.py's ECP5 rows are fitted to synth_ecp5 counts). Synthesized LUT sites are
LUT4 + 2 x CCU2C + 2 x TRELLIS_DPR16X4 (nextpnr packs each carry cell and each LUT-RAM into two
TRELLIS_COMB); the ratio placed / synthesized is how far the estimate's basis is from the chip.

The largest GEMM array built for the 85F (`examples/ecp5_largest_gemm.yaml`, 6x7) is in too:
with the 2x2 it gives the placed cost of one PE, (placed(6x7) - placed(2x2)) / 38, next to the
per-PE LUT sites of the resource estimate (`boards/costs.py`), the check of the estimate
against place and route.

Builds reuse out/bitstream/ulx3s-85f_<design>/summary.json when its signature is the current
golden one; otherwise they build (FMA about 1 minute, GEMM 5, SSM 18 at 10 MHz, the 6x7 GEMM
about 55). Writes out/bench/placed_vs_synth.{json,md}.

    python bench/placed_vs_synth.py
"""

import json
import time
from pathlib import Path

from specmx.bitstream import SelfTestSpec, build_bitstream, default_fma, default_gemm, default_ssm
from specmx.boards.costs import COSTS
from specmx.spec import load_spec
from specmx.synth import synthesize

OUT = Path("out/bench")
BOARD = "ulx3s-85f"
# design -> (the spec, its clock in MHz: the oscillator, or the PLL where the design needs it)
DESIGNS = {"fma": (SelfTestSpec("fma", default_fma(BOARD)), 25.0),
           "gemm": (SelfTestSpec("gemm", default_gemm(BOARD), shape=(8, 8, 8)), 25.0),
           "ssm": (SelfTestSpec("ssm", default_ssm(BOARD), tokens=16), 10.0),
           "gemm6x7": (SelfTestSpec("gemm", load_spec("examples/ecp5_largest_gemm.yaml").gemm, shape=(12, 12, 8)), 25.0)}


def placed(design, spec, selftest, clock_mhz):
    """The build's summary: an earlier build's when it carries `selftest`'s golden signature."""
    path = Path("out/bitstream") / f"{BOARD}_{design}"
    if (path / "summary.json").exists():
        summary = json.loads((path / "summary.json").read_text())
        if summary.get("signature") == f"{selftest.expected:08X}" and summary.get("clock_mhz") == clock_mhz:
            return summary
    print(f"  building {BOARD} {design} ...", flush=True)
    return build_bitstream(BOARD, spec, None if clock_mhz == 25.0 else clock_mhz, path)


def main():
    rows = []
    for design, (spec, clock_mhz) in DESIGNS.items():
        t0 = time.perf_counter()
        selftest = spec.make(clock_mhz * 1e6)          # its golden signature is computed once
        summary = placed(design, spec, selftest, clock_mhz)
        synth = synthesize(selftest, "selftest", fmax=False, generic=False)
        sites = synth["ecp5_lut"] + 2 * synth["ecp5_carry"] + 2 * synth["ecp5_lutram"]
        util = summary["utilization"]
        row = {"design": design, "label": spec.label, "clock_mhz": clock_mhz,
               "synth_lut4": synth["ecp5_lut"], "synth_ccu2c": synth["ecp5_carry"],
               "synth_lutram": synth["ecp5_lutram"], "synth_lut_sites": sites,
               "placed_comb": util["TRELLIS_COMB"]["used"], "synth_dsp": synth["ecp5_dsp"],
               "placed_dsp": util.get("MULT18X18D", {}).get("used", 0), "synth_ff": synth["ecp5_ff"],
               "placed_ff": util["TRELLIS_FF"]["used"], "fmax_mhz": summary["fmax_mhz"],
               "seconds": round(time.perf_counter() - t0, 1)}
        row["comb_ratio"] = round(row["placed_comb"] / sites, 3)
        rows.append(row)
        print(f"[{design}] synthesized {sites:,} LUT sites, placed {row['placed_comb']:,} TRELLIS_COMB "
              f"({row['comb_ratio']:.3f}); DSP {row['synth_dsp']} / {row['placed_dsp']}; "
              f"FF {row['synth_ff']:,} / {row['placed_ff']:,} ({row['seconds']} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    small, large = (next(r for r in rows if r["design"] == d) for d in ("gemm", "gemm6x7"))
    small_array, large_array = (DESIGNS[d][0].config for d in ("gemm", "gemm6x7"))
    pes = large_array.rows * large_array.cols - small_array.rows * small_array.cols
    span = f"{large_array.rows}x{large_array.cols} minus {small_array.rows}x{small_array.cols}, over {pes}"
    per_pe = {"placed_comb_per_pe": round((large["placed_comb"] - small["placed_comb"]) / pes, 1),
              "synth_sites_per_pe": round((large["synth_lut_sites"] - small["synth_lut_sites"]) / pes, 1),
              "estimate_sites_per_pe": COSTS["ecp5"]["pe"]["bf16"].lut}
    per_pe["estimate_error"] = round(per_pe["estimate_sites_per_pe"] / per_pe["placed_comb_per_pe"] - 1, 3)
    print(f"one PE ({span}): placed {per_pe['placed_comb_per_pe']:,} TRELLIS_COMB, synthesized "
          f"{per_pe['synth_sites_per_pe']:,} LUT sites, resource estimate {per_pe['estimate_sites_per_pe']:,} "
          f"({per_pe['estimate_error']:+.1%} against placed)", flush=True)
    (OUT / "placed_vs_synth.json").write_text(json.dumps({"designs": rows, "per_pe": per_pe}, indent=1))
    lines = ["| ULX3S self-test | synth LUT4 | CCU2C | LUT-RAM | synth LUT sites | placed TRELLIS_COMB | placed / synth "
             "| DSP synth / placed | FF synth / placed | Fmax |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['synth_lut4']:,} | {r['synth_ccu2c']:,} | {r['synth_lutram']} | "
              f"{r['synth_lut_sites']:,} | {r['placed_comb']:,} | {r['comb_ratio']:.3f} | {r['synth_dsp']} / "
              f"{r['placed_dsp']} | {r['synth_ff']:,} / {r['placed_ff']:,} | {r['fmax_mhz']} MHz |" for r in rows]
    lines += ["", f"One PE ({span}): placed {per_pe['placed_comb_per_pe']:,} TRELLIS_COMB, "
              f"synthesized {per_pe['synth_sites_per_pe']:,} LUT sites, resource estimate "
              f"{per_pe['estimate_sites_per_pe']:,} ({per_pe['estimate_error']:+.1%} against placed)."]
    (OUT / "placed_vs_synth.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
