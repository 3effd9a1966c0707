"""Error of the function units against float64: every bf16 input (widened to fp32), 1M random
fp32 words plus the range edges, and optionally every fp32 input (--exhaustive-fp32, in
chunks with progress; about 30 minutes per function on one core). Max and mean error in ulp of the fp32 result, and
of the result rounded to bf16 (the operand rule), with the special values checked. Writes
out/bench/function_error.json and .md."""

import json
import sys
import time
from pathlib import Path

import numpy as np

from specmx.models import function_units as fu
from specmx.sim.ssm_check import EDGES

OUT = Path("out/bench")


def _stats(err):
    finite = err[~np.isnan(err)]
    return {"max_ulp": float(finite.max()), "mean_ulp": float(finite.mean()), "measured": int(finite.size)}


def exhaustive_fp32(name):
    """Every fp32 pattern, with a progress line per 1/16 of the space."""
    t0 = time.perf_counter()
    return fu.exhaustive_error(name, progress=lambda done, worst: print(
        f"  {name}: {done:5.1%} max {worst:.3f} ulp ({time.perf_counter() - t0:.0f} s)", flush=True))


def main(argv):
    bf16 = np.arange(1 << 16, dtype=np.int64) << 16
    rand = np.concatenate([np.random.default_rng(0).integers(0, 1 << 32, 1_000_000, dtype=np.int64), EDGES])
    rows = []
    for name in fu.FUNCTIONS:
        row = {"function": name,
               "bf16_inputs_fp32_result": _stats(fu.ulp_error(name, bf16)),
               "bf16_inputs_bf16_result": _stats(fu.ulp_error(name, bf16, "bf16")),
               "random_fp32_fp32_result": _stats(fu.ulp_error(name, rand)),
               "random_fp32_bf16_result": _stats(fu.ulp_error(name, rand, "bf16"))}
        if "--exhaustive-fp32" in argv:
            row["all_fp32_fp32_result"] = exhaustive_fp32(name)
        rows.append(row)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "function_error.json").write_text(json.dumps(rows, indent=2))
    keys = [k for k in rows[0] if k != "function"]
    lines = ["| function | " + " | ".join(f"{k.replace('_', ' ')} max (mean) ulp" for k in keys) + " |",
             "|---" * (len(keys) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['function']} | " + " | ".join(f"{r[k]['max_ulp']:.3f} ({r[k]['mean_ulp']:.3f})"
                                                          for k in keys) + " |")
    text = "\n".join(lines) + "\n"
    (OUT / "function_error.md").write_text(text)
    print(text + f"saved {OUT / 'function_error.json'} and {OUT / 'function_error.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
