"""Training curves of the shipped byte-level models: bits per byte of the training batches
against steps, from each model's train_log.json, with the held-out figure at the end.
Writes out/bench/loss_curves.png and prints the final figures.

    python bench/loss_curves.py
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from specmx.models.mamba import PRETRAINED, pretrained_dir  # noqa: E402

OUT = Path("out/bench")


def main():
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in PRETRAINED:
        log = json.loads((pretrained_dir(name) / "train_log.json").read_text())
        steps, bpb = zip(*log["loss"])
        line, = ax.plot(steps, bpb, label=f"{name} ({log['parameters'] / 1e6:.2f}M)")
        ax.plot([log["steps"]], [log["heldout_bits_per_byte"]], "o", color=line.get_color())
        print(f"{name}: {log['steps']} steps, {log['tokens_seen']:,} bytes seen, last train batch "
              f"{log['final_train_bits_per_byte']} bits/byte, held-out {log['heldout_bits_per_byte']} bits/byte")
    ax.set_xlabel("step (64 x 256 bytes)")
    ax.set_ylabel("bits per byte")
    ax.set_ylim(1.0, 4.0)
    ax.set_title("Byte-level Mamba on the Python standard library (dots: held-out)")
    ax.grid(alpha=0.3)
    ax.legend()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(OUT / "loss_curves.png", dpi=120)
    print(f"saved {OUT / 'loss_curves.png'}")


if __name__ == "__main__":
    main()
