import ml_dtypes
import numpy as np
import pytest
from bitcheck import assert_bits_equal

from specmx.models.formats import FORMATS, decode, encode, get_format

DTYPES = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16, "e4m3": ml_dtypes.float8_e4m3fn,
          "e5m2": ml_dtypes.float8_e5m2}
UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


@pytest.mark.parametrize("name", DTYPES)
def test_decode_every_pattern_matches_ml_dtypes(name):
    fmt = FORMATS[name]
    bits = np.arange(1 << fmt.width, dtype=np.int64)
    ours = decode(bits, fmt)
    ref = bits.astype(UINT[fmt.width]).view(DTYPES[name]).astype(np.float64)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert_bits_equal(ours[ok].view(np.int64), ref[ok].view(np.int64), name)


@pytest.mark.parametrize("name", DTYPES)
def test_encode_matches_ml_dtypes_single_rounding_from_float32(name):
    # float32 -> narrow format is a single rounding in ml_dtypes, so it is a valid reference.
    fmt = FORMATS[name]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(200_000) * 2.0 ** rng.integers(-30, 30, 200_000)).astype(np.float32)
    x = np.concatenate([x, decode(np.arange(1 << fmt.width), fmt).astype(np.float32)])
    with np.errstate(over="ignore"):
        narrow = x.astype(DTYPES[name])
    ref = narrow.view(UINT[fmt.width]).astype(np.int64)
    ours = encode(x.astype(np.float64), fmt)
    nan = np.isnan(narrow.astype(np.float64))
    assert_bits_equal(ours[~nan], ref[~nan], name)
    assert np.all(np.isnan(decode(ours[nan], fmt)))


def test_encode_rounds_once_where_ml_dtypes_rounds_twice():
    x = np.array([1 + 2.0 ** -8 + 2.0 ** -40])   # TOOLCHAIN.md's double-rounding example
    assert decode(encode(x, "bf16"), "bf16")[0] == 1.0078125


def test_e4m3_overflow_modes():
    fmt = get_format("e4m3")
    x = np.array([448.0, 464.0, 465.0, 1e6, -1e6, np.inf])
    nan_mode = encode(x, fmt, overflow="nan")
    sat = encode(x, fmt, overflow="saturate")
    assert list(decode(nan_mode[:2], fmt)) == [448.0, 448.0]   # 464 ties to even (448)
    assert np.all(np.isnan(decode(nan_mode[2:], fmt)))
    assert list(decode(sat, fmt)) == [448.0, 448.0, 448.0, 448.0, -448.0, 448.0]
    assert fmt.max_finite == 448.0


def test_unknown_format_names_allowed_values():
    with pytest.raises(ValueError, match=r"format: unknown format 'fp12'; allowed: bf16, fp16"):
        get_format("fp12")


def test_bit_checker_negative_control():
    a = np.arange(10)
    b = a.copy()
    b[3] ^= 1
    with pytest.raises(AssertionError, match="1 of 10 differ"):
        assert_bits_equal(a, b)
