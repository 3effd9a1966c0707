"""Hardware numerics of whole models against float Mamba: logits max relative error and
next-token argmax agreement over 256 positions of real text (bytes of specmx's own sources),
for Mamba-1 and Mamba-2 at micro and 130m layer shapes (2 layers, byte vocabulary), exact
normalization and one approximate-normalization config. Writes out/bench/ssm_numerics.json and
.md. Random weights get unit-scale embeddings so the logits have a clear winner, as a trained
model's do (with the init's 0.02 they are near-uniform and agreement would measure ties); the
trained py-mamba1 pair runs as it is."""

import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from specmx.models.config import FMAConfig
from specmx.models.corpus import text_to_ids
from specmx.models.mamba import MambaLM, get_preset, pretrained_dir
from specmx.models.mamba2 import PRESETS as MAMBA2, Mamba2LM
from specmx.models.ssm_numerics import HardwareOps

OUT = Path("out/bench")
EXACT = FMAConfig("bf16", "fp32")
APPROX = FMAConfig("bf16", "fp32", window=8, step=2, policy="round")


def sharpened(cls, cfg, seed=0):
    model = cls.random(cfg, seed=seed)
    model.w["backbone.embeddings.weight"] *= 50.0
    return cls(cfg, model.w)


def models(full):
    yield "mamba1", "py-mamba1-draft (trained)", lambda: MambaLM.from_pretrained(pretrained_dir("py-mamba1-draft"))
    yield "mamba1", "py-mamba1 (trained)", lambda: MambaLM.from_pretrained(pretrained_dir("py-mamba1"))
    yield "mamba1", "micro (random)", lambda: sharpened(MambaLM, replace(get_preset("micro"), vocab_size=256))
    yield "mamba2", "mamba2-tiny (random, 3 groups)", lambda: sharpened(Mamba2LM, MAMBA2["mamba2-tiny"])
    if full:
        yield "mamba1", "130m-shaped, 2 layers (random)", lambda: sharpened(
            MambaLM, replace(get_preset("130m"), num_hidden_layers=2, vocab_size=256))
        yield "mamba2", "mamba2-130m-shaped, 2 layers (random)", lambda: sharpened(
            Mamba2LM, replace(MAMBA2["mamba2-130m-2l"], vocab_size=256))


def measure(model, tokens, cfg):
    ref = model.forward(tokens)
    hw = copy.copy(model)
    hw.ops = HardwareOps(cfg)
    t0 = time.perf_counter()
    got = hw.forward(tokens)
    return {"agreement": float((got.argmax(-1) == ref.argmax(-1)).mean()),
            "logits_max_rel_err": float(np.abs(got - ref).max() / np.abs(ref).max()),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv):
    full = "--quick" not in argv
    tokens = text_to_ids(Path(__file__).read_text())[:256]
    rows = []
    for family, name, make in models(full):
        model = make()
        configs = [("bf16 x bf16 + fp32, exact", EXACT)]
        if "130m" not in name and name != "py-mamba1 (trained)":
            configs.append(("bf16 x bf16 + fp32, " + APPROX.norm_label, APPROX))
        for label, cfg in configs:
            row = {"family": family, "model": name, "arithmetic": label, **measure(model, tokens, cfg)}
            rows.append(row)
            print(f"{family:7} {name:40} {label:45} agreement {row['agreement']:.4f}  "
                  f"max rel err {row['logits_max_rel_err']:.4f}  ({row['seconds']} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ssm_numerics.json").write_text(json.dumps(rows, indent=2))
    lines = ["| family | model | arithmetic | argmax agreement (256 positions) | logits max rel err |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['family']} | {r['model']} | {r['arithmetic']} | {r['agreement']:.4f} | "
              f"{r['logits_max_rel_err']:.4f} |" for r in rows]
    (OUT / "ssm_numerics.md").write_text("\n".join(lines) + "\n")
    print(f"saved {OUT / 'ssm_numerics.json'} and {OUT / 'ssm_numerics.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
