"""Every SSM datapath unit on Icarus Verilog too (where it is installed): the same cocotb
testbenches as on Verilator, bit-exact against the hardware numerics model and cycle-exact
against the cycle model, with random idle input and back-pressure, plus a negative control."""

import numpy as np
import pytest

from specmx.models.config import FMAConfig, SSMConfig
from specmx.sim.runner import available_simulators
from specmx.sim.ssm_check import check_conv, check_function, check_rmsnorm, check_scan

pytestmark = pytest.mark.skipif("icarus" not in available_simulators(), reason="Icarus Verilog not installed")

# every 37th bf16 pattern (widened to fp32): all exponents and signs, NaN and inf among them
BF16_SAMPLE = (np.arange(0, 1 << 16, 37, dtype=np.int64) << 16)

UNITS = {
    "exp": lambda **kw: check_function("exp", inputs=BF16_SAMPLE, **kw),
    "conv": lambda **kw: check_conv(SSMConfig(d_inner=4, lanes=2), tokens=8, **kw),
    "scan-mamba1": lambda **kw: check_scan(SSMConfig(family="mamba1", d_inner=2, d_state=4, lanes=2),
                                           tokens=8, **kw),
    "scan-mamba2": lambda **kw: check_scan(SSMConfig(family="mamba2", d_inner=4, d_state=4, heads=2,
                                                     groups=2, lanes=1), tokens=8, **kw),
    "rmsnorm": lambda **kw: check_rmsnorm(FMAConfig(), 7, vectors=4, **kw),
}


# `make test` runs the Mamba-2 scan unit (FMAs, the exp and silu datapaths, the state memory);
# `make regress` every unit.
QUICK = ("scan-mamba2",)


@pytest.mark.parametrize("unit", [u if u in QUICK else pytest.param(u, marks=pytest.mark.regress) for u in UNITS])
def test_unit_on_icarus(unit):
    report = UNITS[unit](simulator="icarus", idle=0.2, backpressure=0.2, seed=11)
    assert report["mismatches"] == 0 and report["vectors"] > 0, report["first_mismatches"]
    assert report["cycles_match"] and report["ok"], (report["cycles"], report["predicted_cycles"])
    bad = UNITS[unit](simulator="icarus", corrupt=2, seed=12)
    assert bad["mismatches"] == 2 and not bad["ok"]
