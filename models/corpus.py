"""A real text corpus on every machine: the Python standard library's own source files, as
bytes (vocabulary 256), split into training and held-out modules by a fixed rule.

Files: every `*.py` under `sysconfig.get_paths()["stdlib"]` of the running Python, except
`site-packages`/`dist-packages` (installed packages, not the standard library), in sorted
path order. A module's name is its path relative to that folder with '/' separators.
Held-out rule: a module is held out when the first byte of sha256(module name) is below 26
(about 10% of modules), so the split depends on names only and is the same on any machine with
the same Python version. Documents are joined with one NUL byte (which never occurs in source
text) as separator.
"""

import hashlib
import math
import sys
import sysconfig
from pathlib import Path

import numpy as np

__all__ = ["stdlib_files", "is_heldout", "build_corpus", "SEPARATOR", "text_to_ids", "ids_to_text", "heldout_windows",
           "bits_per_byte"]

SEPARATOR = 0
HELDOUT_BELOW = 26


def stdlib_files(root=None):
    """(module name, path) of every standard-library .py file, sorted by name."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    out = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if {"site-packages", "dist-packages"} & set(rel.parts):
            continue
        out.append((rel.as_posix(), path))
    return sorted(out)


def is_heldout(name):
    return hashlib.sha256(name.encode()).digest()[0] < HELDOUT_BELOW


def build_corpus(root=None):
    """{"train": uint8 array, "heldout": uint8 array, "train_modules": [...],
    "heldout_modules": [...], "python": "3.11.7"}."""
    parts = {"train": [], "heldout": []}
    names = {"train": [], "heldout": []}
    for name, path in stdlib_files(root):
        data = path.read_bytes().replace(b"\x00", b"")
        split = "heldout" if is_heldout(name) else "train"
        parts[split].append(data)
        names[split].append(name)
    sep = bytes([SEPARATOR])
    return {"train": np.frombuffer(sep.join(parts["train"]), np.uint8),
            "heldout": np.frombuffer(sep.join(parts["heldout"]), np.uint8),
            "train_modules": names["train"], "heldout_modules": names["heldout"],
            "python": ".".join(map(str, sys.version_info[:3]))}


def text_to_ids(text):
    """UTF-8 bytes of `text` as token ids."""
    return list(text.encode("utf-8"))


def ids_to_text(ids):
    """Token ids back to text (invalid UTF-8 sequences shown as U+FFFD)."""
    return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


def heldout_windows(count, length, skip=0):
    """`count` windows of `length` bytes, one from each of the first held-out modules that are
    long enough (starting `skip` bytes in, past the licence headers most modules open with)."""
    out = []
    for name, path in stdlib_files():
        data = path.read_bytes()
        if is_heldout(name) and len(data) >= skip + length:
            out.append(list(data[skip:skip + length]))
        if len(out) == count:
            break
    return out


def bits_per_byte(model, windows):
    """Mean next-byte cross-entropy of `model` over `windows` (lists of byte ids), in bits."""
    total = count = 0.0
    for w in windows:
        logits = model.forward(w[:-1]).astype(np.float64)
        logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        total += float(np.sum(logz - logits[np.arange(len(w) - 1), w[1:]]))
        count += len(w) - 1
    return total / count / math.log(2)
