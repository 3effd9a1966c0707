"""Error of the function units against float64: every bf16 input (widened to fp32), 1M random
fp32 words plus the range edges, and optionally every fp32 input (--exhaustive-fp32, in
chunks with progress; hours on two cores). Max and mean error in ulp of the fp32 result, and
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


def exhaustive_fp32(name, chunk=1 << 24):
    """Every fp32 pattern: running max/mean, a progress line per 1/16 of the space."""
    worst, total, count, t0 = 0.0, 0.0, 0, time.perf_counter()
    for start in range(0, 1 << 32, chunk):
        err = fu.ulp_error(name, np.arange(start, start + chunk, dtype=np.int64))
        finite = err[~np.isnan(err)]
        if finite.size:
            worst, total, count = max(worst, float(finite.max())), total + float(finite.sum()), count + finite.size
        if (start // chunk + 1) % 16 == 0:
            print(f"  {name}: {(start + chunk) / 2 ** 32:5.1%} max {worst:.3f} ulp "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"max_ulp": worst, "mean_ulp": total / count, "measured": count}


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
