"""Golden FMA: exact mode against an independent MPFR oracle, approximate modes by bounds."""

import numpy as np
import pytest
from bitcheck import assert_bits_equal
from oracle import oracle_fma

from specmx.models.fma import FMAConfig, fma, normalize, to_internal
from specmx.models.formats import decode, encode, get_format
from specmx.sim.vectors import corner_values, fma_vectors

FP8_CASES = [("e4m3", "fp32"), ("e4m3", "bf16"), ("e5m2", "bf16"), ("e5m2", "fp32")]


@pytest.mark.parametrize("in_fmt,acc_fmt", FP8_CASES)
def test_fp8_exhaustive_ab_pairs(in_fmt, acc_fmt):
    """Every (a, b) pair of the fp8 format with a set of addends: corners plus random."""
    fin, fac = get_format(in_fmt), get_format(acc_fmt)
    ab = np.arange(256)
    a, b = np.meshgrid(ab, ab, indexing="ij")
    a, b = a.ravel(), b.ravel()
    rng = np.random.default_rng(1)
    c_set = np.concatenate([corner_values(fac)[::3], encode(rng.standard_normal(4) * 16, fac)])
    for c in c_set:
        cfg = FMAConfig(in_fmt, acc_fmt)
        cc = np.full_like(a, c)
        assert_bits_equal(fma(a, b, cc, cfg), oracle_fma(a, b, cc, in_fmt, acc_fmt),
                          f"{in_fmt}x{in_fmt}+{acc_fmt} c={hex(c)}")


RANDOM_CASES = [("bf16", "fp32", "rne", "ieee"), ("bf16", "bf16", "rne", "ieee"),
                ("fp16", "fp32", "rne", "ieee"), ("bf16", "fp32", "rtz", "ieee"),
                ("bf16", "fp32", "rne", "flush"), ("fp16", "fp16", "rtz", "flush")]


def _random_check(n, in_fmt, acc_fmt, rounding, subnormals, seed):
    cfg = FMAConfig(in_fmt, acc_fmt, rounding=rounding, subnormals=subnormals)
    a, b, c = fma_vectors(cfg, n, seed)
    assert_bits_equal(fma(a, b, c, cfg), oracle_fma(a, b, c, in_fmt, acc_fmt, rounding, subnormals),
                      cfg.name)


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: "-".join(c))
def test_random_triples_against_oracle(case):
    _random_check(100_000 if case[:2] == ("bf16", "fp32") else 30_000, *case, seed=7)


@pytest.mark.regress
@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: "-".join(c))
def test_random_triples_against_oracle_1m(case):
    _random_check(1_000_000, *case, seed=11)


def _bf16(x):
    return encode(np.array(x, dtype=np.float64), "bf16")


def _fp32(x):
    return encode(np.array(x, dtype=np.float64), "fp32")


def test_directed_corners():
    cfg = FMAConfig("bf16", "fp32")
    v = lambda a, b, c: decode(fma(_bf16([a]), _bf16([b]), _fp32([c]), cfg), "fp32")[0]
    # signed zeros
    assert np.signbit(v(-0.0, 1.0, -0.0)) and not np.signbit(v(-0.0, 1.0, 0.0))
    assert not np.signbit(v(1.0, 1.0, -1.0))                 # exact cancellation -> +0
    # inf / NaN
    assert np.isnan(v(np.inf, 0.0, 1.0)) and np.isnan(v(np.inf, 1.0, -np.inf))
    assert v(np.inf, -1.0, 5.0) == -np.inf and v(2.0, 3.0, np.inf) == np.inf
    # near cancellation keeps every bit: (1+2^-7)^2 - 1 = 2^-6 + 2^-14
    assert v(1 + 2 ** -7, 1 + 2 ** -7, -1.0) == 2 ** -6 + 2 ** -14
    # rounding tie to even: 1 + 2^-24 is exactly halfway between fp32 neighbours
    assert v(2 ** -12, 2 ** -12, 1.0) == 1.0
    assert v(2 ** -12, 2 ** -12 * (1 + 2 ** -7), 1.0) == 1 + 2 ** -23   # above the tie
    # overflow caused by rounding
    big = float(np.float32(3.4028235e38))
    assert v(2.0 ** 127, 2.0 ** 1 * (1 - 2 ** -8), big) == np.inf
    # far-apart exponents: the small term only acts through the sticky bit
    assert v(2.0 ** -100, 1.0, 1.0) == 1.0
    assert v(-(2.0 ** -100), 1.0, 1.0) == 1.0                      # below half an ulp: rounds back
    rtz = FMAConfig("bf16", "fp32", rounding="rtz")
    assert decode(fma(_bf16([-(2.0 ** -100)]), _bf16([1.0]), _fp32([1.0]), rtz), "fp32")[0] == 1 - 2 ** -24
    # subnormal results and min/max normal
    assert v(2.0 ** -70, 2.0 ** -70, 0.0) == 2.0 ** -140
    assert v(2.0 ** -126, 1.0, -(2.0 ** -126) * (1 + 2 ** -23)) == -(2.0 ** -149)


def test_corner_grid_against_oracle():
    for in_fmt, acc_fmt in [("bf16", "fp32"), ("bf16", "bf16"), ("fp16", "fp32")]:
        for rounding in ("rne", "rtz"):
            ca, cc = corner_values(get_format(in_fmt)), corner_values(get_format(acc_fmt))
            a, b, c = (x.ravel() for x in np.meshgrid(ca, ca, cc, indexing="ij"))
            cfg = FMAConfig(in_fmt, acc_fmt, rounding=rounding)
            assert_bits_equal(fma(a, b, c, cfg), oracle_fma(a, b, c, in_fmt, acc_fmt, rounding), cfg.name)


def test_golden_detects_a_corrupted_oracle_value():
    """Negative control: the oracle comparison fails when one expected value is off by 1 ulp."""
    cfg = FMAConfig()
    a, b, c = fma_vectors(cfg, 2000, 3)
    expected = oracle_fma(a, b, c, "bf16", "fp32")
    expected[1234] ^= 1
    with pytest.raises(AssertionError, match="1 of 2000 differ"):
        assert_bits_equal(fma(a, b, c, cfg), expected)


# --- approximate normalization -------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["round", "flush"])
def test_full_window_reproduces_exact_mode(policy):
    exact = FMAConfig("bf16", "fp32")
    full = FMAConfig("bf16", "fp32", window=exact.sum_width, step=1, policy=policy)
    a, b, c = fma_vectors(exact, 50_000, 5)
    assert_bits_equal(fma(a, b, c, full), fma(a, b, c, exact), full.name)


def _exact_values(a, b, c, cfg):
    """a*b+c exactly (float64 holds bf16 products; the sum is formed in exact rationals)."""
    from fractions import Fraction
    av, bv, cv = decode(a, cfg.in_f), decode(b, cfg.in_f), decode(c, cfg.acc_f)
    return np.array([float(Fraction(x) * Fraction(y) + Fraction(z)) for x, y, z in zip(av, bv, cv)])


def _cancelling_vectors(cfg, n, seed):
    """Finite normal operands with c close to -a*b: deep cancellation, what the knobs affect."""
    rng = np.random.default_rng(seed)
    a = encode(rng.uniform(1, 2, n) * np.sign(rng.standard_normal(n)), "bf16")
    b = encode(rng.uniform(1, 2, n), "bf16")
    prod = decode(a, "bf16") * decode(b, "bf16")
    c = encode(-prod * (1 + rng.standard_normal(n) * 2.0 ** -rng.integers(1, 30, n)), cfg.acc_f)
    return a, b, c


def approx_error_bound(cfg, exact, max_operand):
    """specmx's stated bound for one FMA with approximate normalization (README):
    round/internal: |r - exact| <= 2**(G-p+1)*|exact| + 2**(G+2-window-p)*max(|a*b|, |c|)
    flush:          |r - exact| <= 2**(1-p)*|exact|   + 2**(2-window)*max(|a*b|, |c|)
    (the second term only matters when cancellation runs past the window; flush then
    returns zero)."""
    p = cfg.acc_f.precision
    G = cfg.step
    if cfg.policy == "flush":
        return 2.0 ** (1 - p) * np.abs(exact) + 2.0 ** (2 - cfg.window) * max_operand
    return 2.0 ** (G - p + 1) * np.abs(exact) + 2.0 ** (G + 2 - cfg.window - p) * max_operand


@pytest.mark.parametrize("acc", ["bf16", "fp32"])
@pytest.mark.parametrize("kw", [dict(window=8, step=1, policy="round"), dict(window=8, step=4, policy="round"),
                                dict(window=4, step=2, policy="round"), dict(window=4, step=1, policy="flush"),
                                dict(window=8, step=4, policy="internal"), dict(window=4, step=1, policy="internal")])
def test_approximate_error_is_bounded(kw, acc):
    cfg = FMAConfig("bf16", acc, **kw)
    a, b, c = _cancelling_vectors(cfg, 4000, 2)
    exact = _exact_values(a, b, c, cfg)
    if cfg.internal:
        got = decode(normalize(fma(a, b, to_internal(c, cfg), cfg), cfg), acc)
        slack = 2.0 ** -cfg.acc_f.precision * np.abs(exact)   # the edge normalizer's rounding
    else:
        got = decode(fma(a, b, c, cfg), acc)
        slack = 0.0
    max_op = np.maximum(np.abs(decode(a, "bf16") * decode(b, "bf16")), np.abs(decode(c, acc)))
    bound = approx_error_bound(cfg, exact, max_op) + slack
    assert _excess(got, exact, bound) <= 0, f"worst excess {_excess(got, exact, bound)}"
    # With a bf16 accumulator the 16-bit products outlive a short window, so the knobs must
    # change results there (the test is not vacuous). With fp32 the exact sum of a bf16
    # product and an fp32 addend spans few enough bits that these windows lose nothing.
    exact_mode = decode(fma(a, b, c, FMAConfig("bf16", acc)), acc)
    if acc == "bf16":
        assert np.any(got != exact_mode)
    # Negative control: the same check rejects a worse design, so the bound is not vacuous:
    # results that lost G+3 more significand bits (an error up to 4x the bound's relative
    # term) for round/internal; for flush, whose window term is loose, a design that flushes
    # every result, including the shallow cancellations the window must keep.
    if cfg.policy == "flush":
        lossy = np.zeros_like(got)
    else:
        lossy = decode(_truncate_low_bits(encode(got, acc), cfg.step + 3), acc)
    assert _excess(lossy, exact, bound) > 0


def _excess(got, exact, bound):
    """How far the worst error exceeds the bound (<= 0: every result is within it)."""
    return float(np.max(np.abs(got - exact) - bound))


def _truncate_low_bits(bits, n):
    """Clear the n low significand bits of IEEE words (round toward zero at a coarser position)."""
    return bits & ~np.int64((1 << n) - 1)


def test_window_within_reach_is_exact_for_step_1():
    """Cancellation no deeper than the window leaves results bit-identical to exact mode."""
    cfg = FMAConfig("bf16", "fp32", window=8, policy="round")
    exact_cfg = FMAConfig("bf16", "fp32")
    rng = np.random.default_rng(4)
    a = encode(rng.uniform(1, 2, 5000), "bf16")
    b = encode(rng.uniform(1, 2, 5000), "bf16")
    c = encode(rng.uniform(-0.5, 0.5, 5000), "fp32")    # at most 2 bits of cancellation
    assert_bits_equal(fma(a, b, c, cfg), fma(a, b, c, exact_cfg))


def test_narrow_sum_register():
    """`sum_bits`: the full width reproduces exact mode bit for bit; a register 3 bits wider than
    the accumulator's precision still rounds correctly when normal terms add (same signs: no
    cancellation; a product with one leading zero and no carry shifts the sticky bit up two
    places, still below the round bit) and differs when they cancel deeply."""
    exact = FMAConfig("bf16", "fp32")
    a, b, c = fma_vectors(exact, 50_000, seed=12)
    assert_bits_equal(fma(a, b, c, FMAConfig("bf16", "fp32", sum_bits=exact.sum_width)), fma(a, b, c, exact))
    rng = np.random.default_rng(13)
    a = encode(rng.uniform(1, 2, 20000), "bf16")
    b = encode(rng.uniform(1, 2, 20000) * 2.0 ** rng.integers(-30, 30, 20000), "bf16")
    c = encode(rng.uniform(1, 2, 20000) * 2.0 ** rng.integers(-30, 30, 20000), "fp32")
    narrow = FMAConfig("bf16", "fp32", sum_bits=27)
    assert_bits_equal(fma(a, b, c, narrow), fma(a, b, c, exact), "same signs")
    minus_c = c | (1 << 31)
    assert (fma(a, b, minus_c, narrow) != fma(a, b, minus_c, exact)).sum() > 0


def test_internal_roundtrip_is_exact():
    cfg = FMAConfig("bf16", "fp32", window=8, step=4, policy="internal")
    c = encode(np.random.default_rng(0).standard_normal(10000) * 1e-3, "fp32")
    assert_bits_equal(normalize(to_internal(c, cfg), cfg), c)


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,message", [
    (dict(in_fmt="fp12"), r"in_fmt: unknown value 'fp12'; allowed: bf16, fp16, e4m3, e5m2"),
    (dict(acc_fmt="e4m3"), r"acc_fmt: unknown value 'e4m3'; allowed: bf16, fp16, fp32"),
    (dict(window=99), r"window: must be an integer in 1\.\.42"),
    (dict(window=8, step=0), r"step: must be one of 1, 2, 4, 8"),
    (dict(window=8, step=3), r"step: must be one of 1, 2, 4, 8"),
    (dict(window=6, step=4, policy="round"), r"window: must be a multiple of step=4"),
    (dict(window=8, policy="drop"), r"policy: unknown value 'drop'; allowed: round, flush, internal"),
    (dict(window=8, step=2, policy="flush"), r"policy: 'flush' needs step=1"),
    (dict(rounding="rna"), r"rounding: unknown value 'rna'; allowed: rne, rtz"),
    (dict(sum_bits=20), r"sum_bits: must be an integer in 26\.\.42"),
    (dict(window=4, step=4, policy="internal", sum_bits=True), r"sum_bits: must be an integer in 29\.\.45"),
])
def test_bad_config_names_field_and_allowed_values(kw, message):
    with pytest.raises(ValueError, match=message):
        FMAConfig(**kw)


def test_wrong_width_bit_arrays_are_rejected():
    cfg = FMAConfig("bf16", "fp32")
    with pytest.raises(ValueError, match=r"a: values must be 16-bit bf16 patterns"):
        fma(np.array([1 << 16]), np.array([0]), np.array([0]), cfg)
    with pytest.raises(ValueError, match=r"c: expected an integer array"):
        fma(np.array([0]), np.array([0]), np.array([0.5]), cfg)
