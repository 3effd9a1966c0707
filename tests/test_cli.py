import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "specmx.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


@pytest.mark.parametrize("args,message", [
    (["fma", "check", "--in", "fp12"], "in_fmt: unknown value 'fp12'; allowed: bf16, fp16, e4m3, e5m2"),
    (["fma", "check", "--norm", "window=99"], "window: must be an integer in 1..42"),
    (["fma", "check", "--norm", "window=8,step=0"], "step: must be one of 1, 2, 4, 8"),
    (["fma", "check", "--norm", "window=8,policy=drop"], "policy: unknown value 'drop'"),
    (["fma", "check", "--norm", "bogus"], "norm: cannot parse 'bogus'"),
    (["fma", "check", "--vectors", "0"], "vectors: must be 1..10000000, got 0"),
    (["fma", "check", "--sim", "xsim"], "sim: unknown simulator 'xsim'; allowed: verilator, icarus"),
    (["fma", "check", "--stages", "9"], "stages: must be 0..5, got 9"),
    (["synth", "gemm", "--rows", "0"], "rows: must be 1..16, got 0"),
    (["synth", "gemm", "--dataflow", "xs"], "dataflow: unknown 'xs'; allowed: os, ws"),
    (["synth", "gemm", "--stages", "0"], "stages: must be 1..5, got 0"),
    (["synth", "gemm", "--device", "12k"], "device: unknown '12k'; allowed: 25k, 45k, 85k"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    proc = run(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_bad_synth_input_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = run("synth", "fma", "--acc", "e4m3", "--out", str(out))
    assert proc.returncode == 2 and "acc_fmt: unknown value 'e4m3'" in proc.stderr
    assert not out.exists()


def test_fma_check_prints_summary_line():
    proc = run("fma", "check", "--in", "bf16", "--acc", "fp32", "--norm", "exact",
               "--vectors", "800", "--sim", "verilator")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("800 vectors, 0 mismatches")


def test_synth_gemm_saves_pe_and_array_figures(tmp_path):
    import json
    proc = run("synth", "gemm", "--rows", "1", "--cols", "2", "--dataflow", "os", "--in", "e5m2",
               "--acc", "bf16", "--stages", "1", "--no-fmax", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    saved, = (json.loads(p.read_text()) for p in tmp_path.glob("synth_gemm_1x2_os_s1_*.json"))
    assert saved == result
    assert 2 * result["pe_gates"] <= result["array_gates"] and 2 * result["pe_lut4"] <= result["array_lut4"]
    assert result["array_ecp5_dsp"] == 2
