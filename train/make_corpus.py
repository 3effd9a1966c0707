"""Write the byte corpus (specmx.models.corpus) to a file the GPU host reads:
`python train/make_corpus.py train/data/corpus.npz` (train and held-out bytes, module lists,
the Python version whose standard library it is)."""

import json
import sys
from pathlib import Path

import numpy as np

from specmx.models.corpus import build_corpus


def main(path):
    c = build_corpus()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, train=c["train"], heldout=c["heldout"],
                        meta=np.frombuffer(json.dumps({k: c[k] for k in ("train_modules", "heldout_modules",
                                                                          "python")}).encode(), np.uint8))
    print(f"{path}: {c['train'].size} training bytes ({len(c['train_modules'])} modules), "
          f"{c['heldout'].size} held-out bytes ({len(c['heldout_modules'])} modules), Python {c['python']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "train/data/corpus.npz")
