"""Bit-exact comparison used by every numerics test: raw patterns, first mismatches shown."""

import numpy as np


def assert_bits_equal(got, expected, context=""):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{context}: shape {got.shape} != {expected.shape}"
    bad = np.flatnonzero(got != expected)
    if bad.size:
        first = ", ".join(f"[{i}] got {hex(got.flat[i])} expected {hex(expected.flat[i])}"
                          for i in bad[:5])
        raise AssertionError(f"{context}: {bad.size} of {got.size} differ; {first}")
