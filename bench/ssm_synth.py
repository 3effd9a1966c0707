"""Area and Fmax of every SSM datapath unit (`specmx ssm synth`'s flow): ECP5 LUT4 / CCU2C carry /
MULT18X18D DSP / flip-flop counts from synth_ecp5 and the out-of-context Fmax from nextpnr-ecp5,
for the function units, the conv unit, the scan unit of both families and the RMSNorm unit.
Also the technology-neutral gates and LUT4 counts, each multiplier mapped as its own module
(`synthesize(split_multipliers=True)`: a minute or two per unit, where the flat mapping takes
ABC hours), with the FMA mapped both ways as the calibration of that split. Writes
out/bench/ssm_synth.{json,md}.

    python bench/ssm_synth.py [--ecp5-only] [--no-fmax]
"""

import argparse
import json
import time
from pathlib import Path

from specmx.cli.ssm import norm_length, unit_rtl
from specmx.models.config import SSMConfig
from specmx.models.function_units import FUNCTIONS
from specmx.synth import synthesize

OUT = Path("out/bench")
UNITS = [(name, SSMConfig(lanes=1)) for name in FUNCTIONS] + [
    ("conv", SSMConfig(d_inner=16, kernel=4, lanes=1)),
    ("scan", SSMConfig(family="mamba1", d_inner=16, d_state=16, lanes=2)),
    ("scan", SSMConfig(family="mamba2", d_inner=16, d_state=16, heads=2, groups=1, lanes=2)),
    ("rmsnorm", SSMConfig(family="mamba2", d_inner=256, groups=1)),
]


def label(unit, ssm):
    if unit == "scan":
        return f"scan {ssm.family}, d_inner {ssm.d_inner}, d_state {ssm.d_state}, {ssm.lanes} lanes"
    if unit == "conv":
        return f"conv, d_inner {ssm.d_inner}, K {ssm.kernel}, {ssm.lanes} lane"
    if unit == "rmsnorm":
        return f"rmsnorm, length {norm_length(ssm)}"
    return f"{unit}, 1 lane"


def split_calibration():
    """The FMA's gates and LUT4 mapped flat (as `fma synth` does) and with its multiplier as its
    own module: how far the split count the SSM units get is from a flat one."""
    from specmx.hdl.fma import FMA
    from specmx.models.config import FMAConfig
    rows = []
    for cfg in (FMAConfig(), FMAConfig(window=4, step=4, policy="internal", sum_bits=30), FMAConfig("bf16", "bf16")):
        flat, split = (synthesize(FMA(cfg, 2), "fma", ecp5=False, split_multipliers=s) for s in (False, True))
        rows.append({"config": cfg.name, **{f"{k}_{f}": r[f] for k, r in (("flat", flat), ("split", split))
                                            for f in ("gates", "lut4")}})
        print(f"calibration {cfg.name}: flat {flat['gates']} gates, split {split['gates']}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ecp5-only", action="store_true", help="skip the gates and LUT4 counts")
    ap.add_argument("--no-fmax", action="store_true")
    args = ap.parse_args()
    rows = []
    for i, (unit, ssm) in enumerate(UNITS, 1):
        t0 = time.perf_counter()
        row = {"unit": label(unit, ssm), "config": ssm.fma.name}
        row.update(synthesize(unit_rtl(unit, ssm), unit, fmax=not args.no_fmax, generic=not args.ecp5_only,
                              split_multipliers=True))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"[{i}/{len(UNITS)}] {row['unit']}: {row.get('gates')} gates, {row.get('lut4')} generic LUT4, "
              f"{row.get('ecp5_lut')} LUT4, {row.get('ecp5_carry')} CCU2C, "
              f"{row.get('ecp5_dsp')} DSP, {row.get('ecp5_ff')} FF, Fmax {row.get('fmax_mhz')} MHz "
              f"({row['seconds']} s)", flush=True)
    calibration = [] if args.ecp5_only else split_calibration()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ssm_synth.json").write_text(json.dumps({"units": rows, "split_calibration": calibration}, indent=1))
    keys = ([] if args.ecp5_only else ["gates", "flops", "lut4"]) + ["ecp5_lut", "ecp5_carry", "ecp5_dsp", "ecp5_ff",
                                                          "ecp5_device", "fmax_mhz"]
    lines = ["| unit | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += ["| " + r["unit"] + " | " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    if calibration:
        lines += ["", "Multipliers as their own modules against the flat mapping, on the FMA:", "",
                  "| FMA config | flat gates | split gates | ratio | flat LUT4 | split LUT4 | ratio |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['config']} | {c['flat_gates']} | {c['split_gates']} | {c['split_gates'] / c['flat_gates']:.3f} | "
                  f"{c['flat_lut4']} | {c['split_lut4']} | {c['split_lut4'] / c['flat_lut4']:.3f} |" for c in calibration]
    (OUT / "ssm_synth.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"saved {OUT / 'ssm_synth.json'} and {OUT / 'ssm_synth.md'}")


if __name__ == "__main__":
    main()
