"""Approximate normalization on a real state-space model: held-out bits per byte of the trained
byte-level Mamba targets (py-mamba1, py-mamba2) with every linear layer on the
matrix engine's arithmetic (`mamba_ops.EngineLinearOps`: bf16 operands, fp32 accumulation, exact
or approximate normalization; the rest float32), next to the float32 model, same windows.

Writes out/bench/mamba_approx.{json,md}.

    python bench/mamba_approx.py [--windows 2]
"""

import argparse
import json
import time
from pathlib import Path

from specmx.models.config import FMAConfig
from specmx.models.corpus import bits_per_byte, heldout_windows
from specmx.models.mamba import load_pretrained
from specmx.models.mamba_ops import FLOAT_OPS, EngineLinearOps

OUT = Path("out/bench")
NORMS = ("exact", "window=4,step=4,policy=internal", "window=4,step=4,policy=internal,sum=30",
         "window=2,step=2,policy=round")
MODELS = ("py-mamba1", "py-mamba2")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=2, help="held-out windows of 256 predicted bytes")
    args = ap.parse_args()
    windows = heldout_windows(args.windows, 257, skip=512)
    rows = []
    for name in MODELS:
        model = load_pretrained(name)
        model.ops = FLOAT_OPS
        ref = bits_per_byte(model, windows)
        for norm in NORMS:
            model.ops = EngineLinearOps(FMAConfig("bf16", "fp32", **FMAConfig.parse_norm(norm)))
            t0 = time.perf_counter()
            bpb = bits_per_byte(model, windows)
            rows.append({"model": name, "norm": norm, "bits_per_byte": bpb, "float32": ref,
                         "relative_change": bpb / ref - 1, "seconds": time.perf_counter() - t0})
            print(f"  {name:<16} {norm:<34} {bpb:.5f} bits/byte (float32 {ref:.5f}, {bpb / ref - 1:+.3%}), "
                  f"{rows[-1]['seconds']:.0f} s", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mamba_approx.json").write_text(json.dumps({"windows": args.windows, "rows": rows}, indent=1))
    lines = ["| model | linear layers (bf16 x bf16 + fp32) | held-out bits/byte | float32 | change |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['norm']} | {r['bits_per_byte']:.5f} | {r['float32']:.5f} | {r['relative_change']:+.3%} |"
              for r in rows]
    (OUT / "mamba_approx.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
