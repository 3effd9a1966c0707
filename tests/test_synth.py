import pytest

from specmx.hdl.fma import FMA
from specmx.hdl.fma_parts import FMAPart
from specmx.models.fma import FMAConfig
from specmx.synth import synthesize


def test_approximate_lzd_and_shifter_are_smaller_than_exact(tmp_path):
    exact = FMAConfig("bf16", "fp32")
    approx = FMAConfig("bf16", "fp32", window=4, step=4, policy="internal")
    for part in ("lzd", "shifter"):
        e = synthesize(FMAPart(exact, part), "part", ecp5=False, workdir=tmp_path / f"e{part}")
        a = synthesize(FMAPart(approx, part), "part", ecp5=False, workdir=tmp_path / f"a{part}")
        assert 0 < a["gates"] < e["gates"] / 2, (part, a, e)


def test_full_flow_reports_all_keys(tmp_path):
    result = synthesize(FMA(FMAConfig("e5m2", "bf16"), 1), "fma", workdir=tmp_path)
    for key in ("gates", "lut4", "ecp5_lut", "ecp5_dsp", "fmax_mhz"):
        assert key in result
    assert result["gates"] > 100 and result["lut4"] > 50 and result["ecp5_lut"] > 50
    assert 5 < result["fmax_mhz"] < 1000
