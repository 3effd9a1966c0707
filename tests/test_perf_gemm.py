"""Cycle model: properties, bad input, the SCALE-Sim-convention mode against SCALE-Sim itself,
and the CLI. (Equality with the RTL's cycles is checked in test_gemm.py.)"""

import json
import subprocess
import sys

import pytest

from specmx.models.perf.gemm import gemm_cycles, scalesim_compute_cycles
from specmx.scalesim import run_scalesim

SHAPES = [(100, 60, 70), (7, 13, 29), (1, 1, 1), (64, 64, 64), (33, 17, 5), (16, 8, 100),
          (3, 200, 9), (128, 32, 16), (17, 17, 17), (50, 3, 40), (9, 90, 2)]


def test_phases_add_up_and_utilization_is_bounded():
    for df in ("os", "ws"):
        r = gemm_cycles(512, 512, 512, 32, 32, df, 2, clock_mhz=250)
        assert r.total_cycles == r.load_cycles + r.array_cycles + r.drain_cycles + r.stall_cycles
        assert 0 < r.utilization <= 1
        assert r.throughput_gflops == pytest.approx(2 * 512 ** 3 / (r.total_cycles / 250e6) / 1e9)


def test_bandwidth_limit_adds_stalls_only_when_it_binds():
    free = gemm_cycles(64, 64, 64, 8, 8, "ws")
    assert gemm_cycles(64, 64, 64, 8, 8, "ws", bandwidth=1000).stall_cycles == 0
    slow = gemm_cycles(64, 64, 64, 8, 8, "ws", bandwidth=1)
    # (2*64*64*2 + 64*64*4) bytes in, 64*64*4 out, at 1 byte/cycle
    assert slow.stall_cycles == (32768 + 1 - free.load_cycles) + (16384 + 1 - free.drain_cycles)


@pytest.mark.parametrize("kw,message", [
    (dict(M=0), "M: must be an integer >= 1, got 0"),
    (dict(rows=-2), "rows: must be an integer >= 1, got -2"),
    (dict(dataflow="rs"), "dataflow: unknown 'rs'; allowed: os, ws"),
    (dict(bandwidth=0), "bandwidth: must be > 0"),
])
def test_bad_input(kw, message):
    args = dict(M=8, N=8, K=8, rows=4, cols=4)
    args.update(kw)
    with pytest.raises(ValueError, match=message):
        gemm_cycles(**args)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_scalesim_mode_reproduces_scalesim(dataflow, tmp_path):
    """specmx's SCALE-Sim-convention mode equals SCALE-Sim 3.0.0's compute cycles on 11 shapes."""
    cycles, _ = run_scalesim(SHAPES, 16, 8, dataflow, workdir=tmp_path)
    ours = [scalesim_compute_cycles(M, N, K, 16, 8, dataflow) for M, N, K in SHAPES]
    assert cycles == ours
    assert cycles[0] == {"os": 5151, "ws": 5519, "is": 6369}[dataflow]   # TOOLCHAIN.md's figures
    # negative control: an off-by-one convention would be caught
    assert [c + 1 for c in ours] != cycles


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "specmx.cli", *args], capture_output=True, text=True)


def test_perf_gemm_json():
    proc = _cli("perf", "gemm", "--rows", "32", "--cols", "32", "--dataflow", "ws",
                "--shape", "512,512,512", "--clock", "300", "--bandwidth", "64", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("total_cycles", "compute_cycles", "stall_cycles", "utilization", "throughput_gflops"):
        assert key in out
    assert out["total_cycles"] == gemm_cycles(512, 512, 512, 32, 32, "ws", bandwidth=64).total_cycles


def test_perf_sweep_writes_json_and_plot(tmp_path):
    proc = _cli("perf", "sweep", "--rows", "2,4,8", "--shapes", "64,64,64;7,13,29", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert len(data["points"]) == 3 * 2 * 2
    assert (tmp_path / "sweep.png").stat().st_size > 1000


@pytest.mark.parametrize("args,message", [
    (["perf", "gemm", "--rows", "0"], "rows: must be >= 1, got 0"),
    (["perf", "gemm", "--shape", "4,-1,4"], "shape: N must be >= 1, got -1"),
    (["perf", "gemm", "--dataflow", "xs"], "dataflow: unknown 'xs'; allowed: os, ws"),
    (["gemm", "check", "--shape", "8,8,40", "--buffers", "8,8,32"],
     "shape: K=40 overflows the generated buffers (allowed 1..32"),
    (["gemm", "check", "--rows", "65"], "rows: must be 1..64, got 65"),
])
def test_perf_and_gemm_bad_input(args, message, tmp_path):
    proc = _cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
