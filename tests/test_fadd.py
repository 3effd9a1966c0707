"""The engine's fp32 add chain (`hdl.fadd`): bit for bit against numpy's float32 additions (NaN
canonical) on random operands, cancellations, subnormals, neighbours and every pair of range
edges, with random gaps and back-pressure, cycles equal to `fadd_cycles`; negative controls:
corrupted expected words and a cycle model one off fail. `specmx ssm check --unit fadd` runs
the same."""

import subprocess
import sys

import numpy as np
import pytest

from specmx.models.function_units import fadd_chain
from specmx.models.perf.ssm import fadd_cycles
from specmx.sim.ssm_check import check_fadd


def test_golden_is_numpy_float32_one_add_at_a_time():
    w = np.array([[0x3F800000, 0x33800000, 0x33800000],      # 1 + 2^-24 rounds to 1 twice
                  [0x7F800000, 0xFF800000, 0x00000000],      # inf - inf: NaN, canonical
                  [0x80000000, 0x80000000, 0x80000000],      # -0 + -0 + -0 = -0
                  [0x3F800000, 0xBF800000, 0x80000000]])     # 1 - 1 = +0; +0 + -0 = +0
    assert [hex(v) for v in fadd_chain(w)] == ["0x3f800000", "0x7fc00000", "0x80000000", "0x0"]


@pytest.mark.parametrize("lanes, adders, stalls", [(2, 2, 0.2), pytest.param(1, 1, 0.0, marks=pytest.mark.regress)])
def test_add_chain_bit_exact_and_cycle_exact(lanes, adders, stalls):
    report = check_fadd(lanes, adders, n=1500, idle=stalls, backpressure=stalls, seed=lanes)
    assert report["passed"] and report["mismatches"] == 0, report.get("first_mismatches")
    assert report["vectors"] > 6000 and report["cycles_match"] and report["ok"]
    if stalls:
        assert report["starved"] > 0 and report["held"] > 0


def test_negative_controls_fail():
    report = check_fadd(2, 2, n=300, corrupt=2)
    assert report["mismatches"] == 2 and not report["ok"]
    off = check_fadd(2, 2, n=300, cycle_model=lambda n, a, s, h, lanes: fadd_cycles(n, a + 1, s, h, lanes))
    assert off["mismatches"] == 0 and not off["cycles_match"] and not off["ok"]


def test_cli_check_and_bad_input():
    ok = subprocess.run([sys.executable, "-m", "specmx.cli", "ssm", "check", "--unit", "fadd", "--vectors", "200",
                         "--lanes", "2", "--sim", "verilator"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 mismatches (fadd, 2 lanes" in ok.stdout and "match" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "specmx.cli", "ssm", "check", "--unit", "fadd", "--vectors", "-1",
                          "--sim", "verilator"], capture_output=True, text=True)
    assert bad.returncode == 2 and "vectors" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
