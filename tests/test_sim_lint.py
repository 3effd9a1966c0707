"""Verilator runs with its warnings on: the Verilog of every block lints clean once the waivers
in sim/yosys_waivers.vlt (one commented pattern each) are applied, and a warning of any other
kind still shows (negative control)."""

import pytest

from specmx.hdl.fma import FMA
from specmx.hdl.gemm import GEMMEngine
from specmx.models.config import FMAConfig, GemmConfig
from specmx.sim.runner import to_verilog, verilator_lint

APPROX = FMAConfig("bf16", "fp32", window=4, step=4, policy="internal")
DESIGNS = [
    ("fma", lambda: FMA(FMAConfig("bf16", "fp32"), 2)),
    ("fma", lambda: FMA(FMAConfig("bf16", "bf16", window=4, step=2, policy="round"), 0)),
    ("fma", lambda: FMA(FMAConfig("e4m3", "fp32", window=8, step=1, policy="flush"), 3)),
    ("fma", lambda: FMA(FMAConfig("fp16", "fp32", rounding="rtz", subnormals="flush"), 1)),
    ("gemm", lambda: GEMMEngine(GemmConfig(FMAConfig(), 2, 3, "os", 1))),
    ("gemm", lambda: GEMMEngine(GemmConfig(APPROX, 2, 2, "ws", 2))),
]


@pytest.mark.parametrize("index", range(len(DESIGNS)))
def test_generated_verilog_lints_clean_with_the_waivers(index):
    top, make = DESIGNS[index]
    assert verilator_lint(to_verilog(make(), top), top) == []


def test_a_warning_outside_the_waivers_is_reported():
    text = "module bad(input [3:0] a, output [7:0] y);\n  assign y = a;\nendmodule\n"
    warnings = verilator_lint(text, "bad")
    assert len(warnings) == 1 and warnings[0].startswith("%Warning-WIDTHEXPAND"), warnings
