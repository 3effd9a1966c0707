"""Function units: the golden model's error against float64, its special values, and the RTL
against the golden model bit for bit (every bf16 input, random fp32 words, range edges) with
random idle input and back-pressure, cycles equal to the cycle model; negative controls."""

import numpy as np
import pytest

from specmx.models import function_units as fu
from specmx.models.formats import decode, encode
from specmx.models.perf.ssm import function_unit_cycles
from specmx.sim.ssm_check import EDGES, check_function, function_vectors

BF16_WIDENED = np.arange(1 << 16, dtype=np.int64) << 16
NAN = fu.CANONICAL_NAN
INF, NINF, ONE = 0x7F800000, 0xFF800000, 0x3F800000


def _words(values):
    return encode(np.array(values, dtype=np.float64), "fp32")


@pytest.mark.parametrize("name", fu.FUNCTIONS)
def test_error_bound_over_every_bf16_input(name):
    """Measured against float64: at most 1 ulp as fp32 (the README table: <= 0.83), at most
    1 ulp after rounding the result to bf16 (the operand rule)."""
    err32 = fu.ulp_error(name, BF16_WIDENED)
    err16 = fu.ulp_error(name, BF16_WIDENED, "bf16")
    assert np.nanmax(err32) < 1.0 and np.nanmax(err16) <= 1.0
    assert np.count_nonzero(~np.isnan(err32)) > 30000      # every input whose result is finite


@pytest.mark.parametrize("name", fu.FUNCTIONS)
def test_error_bound_over_random_fp32(name):
    words = np.random.default_rng(7).integers(0, 1 << 32, 200_000, dtype=np.int64)
    assert np.nanmax(fu.ulp_error(name, np.concatenate([words, EDGES]))) < 1.0


def test_error_measure_catches_a_wrong_result(monkeypatch):
    """Negative control: one result off by 2 ulp must push the measured error over 1 ulp."""
    clean = fu.evaluate
    monkeypatch.setattr(fu, "evaluate", lambda name, bits: np.where(bits == 0x3F000000, clean(name, bits) + 2,
                                                                       clean(name, bits)))
    assert np.nanmax(fu.ulp_error("exp", BF16_WIDENED)) > 1.5


@pytest.mark.parametrize("name, cases", [
    ("exp", [(0.0, ONE), (-0.0, ONE), (np.inf, INF), (-np.inf, 0), (200.0, INF), (-200.0, 0),
             (89.0, INF), (-110.0, 0)]),
    ("sigmoid", [(np.inf, ONE), (-np.inf, 0), (128.0, ONE), (-128.0, 0), (0.0, 0x3F000000)]),
    ("silu", [(np.inf, INF), (-np.inf, 0x80000000), (300.0, _words([300.0])[0]), (-300.0, 0x80000000),
              (0.0, 0), (-0.0, 0x80000000)]),
    ("softplus", [(np.inf, INF), (-np.inf, 0), (1000.0, _words([1000.0])[0]), (-1000.0, 0)]),
    ("rsqrt", [(0.0, INF), (-0.0, NINF), (np.inf, 0), (-np.inf, NAN), (-1.0, NAN), (1.0, ONE),
               (4.0, 0x3F000000)]),
])
def test_special_values(name, cases):
    got = fu.evaluate(name, _words([x for x, _ in cases]))
    assert [hex(g) for g in got] == [hex(v) for _, v in cases]
    assert (fu.evaluate(name, np.array([0x7FC00000, 0xFFC00001, 0x7F800001])) == NAN).all()


def test_exp_reaches_the_subnormals():
    """exp(-100) = 3.7e-44 is a subnormal; it is produced, correctly rounded."""
    got = fu.evaluate("exp", _words([-100.0]))
    assert got[0] == encode(np.array([np.exp(-100.0)]), "fp32")[0] and 0 < got[0] < 0x00800000


def test_tables_are_exact_rationals_rounded_once():
    """Segment 0 of 2**x starts at 1.0 and segment 128 of 1/d is 0.5 (up to interpolation)."""
    assert abs(int(fu.segment_table("exp2")[0, 0]) - (1 << 31)) < 4
    assert abs(int(fu.segment_table("recip")[128, 0]) - (1 << 30)) < 64
    assert fu.segment_table("rsqrt").shape == (256, 4)


def test_rtl_matches_golden_on_every_bf16_input():
    """All five units side by side (one lane each, shorter pipelines delayed to the longest),
    every input word into every lane: one build and one run check them all."""
    report = check_function(fu.FUNCTIONS, idle=0.1, backpressure=0.1, seed=5)
    assert report["vectors"] >= 5 * (65536 + 4000)
    assert report["mismatches"] == 0, report["first_mismatches"]
    assert report["cycles_match"], (report["cycles"], report["predicted_cycles"])
    assert report["ok"] and not report["protocol_errors"]


def test_rtl_full_throughput():
    """Source always valid and sink always ready: one beat per cycle, n + latency cycles."""
    words = function_vectors(random=3000, exhaustive_bf16=False)
    report = check_function(fu.FUNCTIONS, inputs=words)
    assert report["ok"], report["first_mismatches"]
    assert report["cycles"] == len(words) + 5 and report["starved"] == report["held"] == 0


def test_rtl_check_negative_controls():
    """Corrupted expected words are each reported; a cycle model one cycle off fails the check."""
    words = function_vectors(random=2000, exhaustive_bf16=False)
    bad = check_function(fu.FUNCTIONS, inputs=words, corrupt=3)
    assert bad["mismatches"] == 3 and not bad["ok"]
    off = check_function(fu.FUNCTIONS, inputs=words, backpressure=0.2,
                         cycle_model=lambda *a: _off_by_one(function_unit_cycles(*a)))
    assert off["mismatches"] == 0 and not off["cycles_match"] and not off["ok"]


@pytest.mark.regress
@pytest.mark.parametrize("name", fu.FUNCTIONS)
def test_rtl_single_function_two_lanes(name):
    report = check_function(name, lanes=2, idle=0.1, backpressure=0.1, seed=6)
    assert report["ok"], report["first_mismatches"]


def _off_by_one(cycles):
    from dataclasses import replace
    return replace(cycles, total=cycles.total + 1)


@pytest.mark.regress
@pytest.mark.parametrize("name", fu.FUNCTIONS)
def test_rtl_matches_golden_on_1m_random_fp32(name):
    report = check_function(name, inputs=function_vectors(random=1_000_000, seed=11, exhaustive_bf16=False),
                            idle=0.05, backpressure=0.05, seed=11)
    assert report["ok"], (report["first_mismatches"], report["cycles"], report["predicted_cycles"])


@pytest.mark.regress
@pytest.mark.parametrize("name", fu.FUNCTIONS)
def test_error_bound_over_every_fp32_input(name):
    """Every one of the 2^32 fp32 inputs (numpy, about 30 minutes per function on one core):
    below 1 ulp wherever the exact result is a finite fp32 value."""
    stats = fu.exhaustive_error(name)
    print(f"{name}: every fp32 input: {stats}")          # shown with pytest -rP
    assert stats["max_ulp"] < 1.0 and stats["measured"] > 2 ** 30, stats
