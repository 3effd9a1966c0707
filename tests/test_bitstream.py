"""Self-test bitstreams (`specmx bitstream build`): real iCE40 and ECP5 builds through
amaranth-boards and the YoWASP tools, the built self-test's Verilog simulated to the golden
signature (and a broken copy to a different one), byte-identical rebuilds, the Vivado export,
the UART report reader, and bad requests."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import run_cli

from specmx.bitstream import default_fma, selftest_for
from specmx.models.config import FMAConfig
from specmx.models.selftest import operands, signature
from specmx.sim.selftest_check import check_selftest, parse_report_line


def _cli(*args):
    return run_cli(*args)


def _subprocess_cli(*args):
    """A build in its own process (the build redirects file descriptors 1 and 2 to its log)."""
    return subprocess.run([sys.executable, "-m", "specmx.cli", *args], capture_output=True, text=True)


def _build(board, out, *extra):
    proc = _subprocess_cli("bitstream", "build", "--board", board, "--out", str(out), "--json", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_golden_signature_is_the_crc_of_golden_results():
    """The expected signature: zlib's CRC-32 over the golden FMA's results on the LFSR operands;
    the operands cover every exponent range (NaN and infinity inputs included)."""
    import zlib

    import numpy as np

    from specmx.models.fma import fma
    cfg = FMAConfig("e4m3", "fp16")
    sig, results = signature(cfg, 1000)
    a, b, c = operands(cfg, 1000)
    assert np.array_equal(results, fma(a, b, c, cfg))
    assert sig == zlib.crc32(b"".join(int(r).to_bytes(2, "little") for r in results))
    assert len(set(a.tolist())) > 200 and c[0] == 0
    assert signature(cfg, 999)[0] != sig                      # one operation fewer: another signature


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_selftest_bitstream_builds_fits_and_meets_its_clock(tmp_path, board):
    """An fp8 (e4m3 x e4m3 + fp16) FMA self-test on the iCE40UP5K, a bf16 x bf16 + fp32 one on
    the ECP5-85F: a bitstream, utilization within the part, the oscillator's clock met, the
    golden signature in the summary. The iCE40 one is built twice: byte-identical (20 s more)."""
    s = _build(board, tmp_path / "a")
    cfg = default_fma(board)
    assert s["config"] == cfg.name and s["signature"] == f"{signature(cfg, 1000)[0]:08X}"
    assert s["timing_met"] and s["fmax_mhz"] >= s["clock_mhz"]
    bit = Path(s["bitstream"])
    assert bit.exists() and bit.stat().st_size > 50_000
    logic = s["utilization"]["ICESTORM_LC" if board == "icebreaker" else "TRELLIS_COMB"]
    assert 0 < logic["used"] < logic["available"]
    assert (tmp_path / "a" / "selftest.v").exists() and (tmp_path / "a" / "top.report.json").exists()
    if board == "icebreaker":
        again = _build(board, tmp_path / "b")
        assert again["bitstream_sha256"] == s["bitstream_sha256"]
        assert Path(again["bitstream"]).read_bytes() == bit.read_bytes()


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_built_selftest_verilog_reaches_the_golden_signature(tmp_path, board):
    """The Verilog a build writes is the self-test the simulation runs: it reaches the golden
    signature twice (a restart in between), lights pass, and its UART line says so; the same
    design with one flipped result bit (the negative control) gives another signature and FAIL."""
    from specmx.sim.runner import to_verilog
    cfg = default_fma(board)
    clock = 12e6 if board == "icebreaker" else 25e6
    good = selftest_for(cfg, 3, 1000, clock)
    text = to_verilog(good, "selftest")
    report = check_selftest(good, verilog_text=text)
    assert report["ok"], report
    assert report["lines"][0].startswith(f"SPECMX SIG={good.expected:08X} ") and report["lines"][0].endswith("PASS\r\n")
    assert report["runs"][0]["cycles"] == report["runs"][1]["cycles"] == 1000 + 3
    broken = selftest_for(cfg, 3, 1000, clock, flip=1 << 5)
    bad = check_selftest(broken)
    assert not bad["ok"] and not bad["signature_matches"]
    assert bad["runs"][0]["done"] and not bad["runs"][0]["passed"] and bad["lines"][0].endswith("FAIL\r\n")


def test_a_design_that_does_not_fit_exits_2():
    """nextpnr-ecp5's words for the 7x7 array on the 85F (115% of TRELLIS_COMB) mean exit 2 (an
    impossible request); a failure that is not about size means 1."""
    from specmx.bitstream import _exit_code
    assert _exit_code("Unable to find legal placement for all cells, design is probably at utilisation limit.") == 2
    assert _exit_code("Max frequency for clock 'clk': 20 MHz (FAIL at 25 MHz)") == 1


def test_vivado_export_is_structurally_complete(tmp_path):
    from specmx.sim.runner import to_verilog
    proc = _cli("bitstream", "export", "--vendor", "vivado", "--board", "vck190", "--clock", "200", "--out",
                str(tmp_path / "viv"))
    assert proc.returncode == 0, proc.stderr
    d = tmp_path / "viv"
    tcl, xdc = (d / "build.tcl").read_text(), (d / "selftest.xdc").read_text()
    assert "-part xcvc1902-vsva2197-2MP-e-S" in tcl and "synth_design -top selftest" in tcl and "route_design" in tcl
    assert "create_clock -name clk -period 5.000 [get_ports clk]" in xdc
    assert "vivado -mode batch -source build.tcl" in (d / "README.md").read_text()
    expected = to_verilog(selftest_for(FMAConfig("bf16", "fp32"), 3, 1000, 200e6), "selftest")
    assert (d / "selftest.v").read_text() == expected
    assert json.loads((d / "summary.json").read_text())["part"] == "xcvc1902-vsva2197-2MP-e-S"
    proc = _cli("bitstream", "export", "--board", "vhk158", "--out", str(tmp_path / "v2"))
    assert proc.returncode == 0 and "xcvh1582" in (tmp_path / "v2" / "build.tcl").read_text()


def test_report_reader_against_the_simulated_uart_stream(tmp_path):
    line = f"SPECMX SIG={0xDEADBEEF:08X} CYC={1003:08X} PASS\r\n"
    assert parse_report_line(line) == (0xDEADBEEF, 1003, True)
    port = tmp_path / "tty"
    port.write_bytes(b"\x00noise\r\n" + line.encode())
    assert _cli("bitstream", "read", "--port", str(port), "--expect", "DEADBEEF").returncode == 0
    proc = _cli("bitstream", "read", "--port", str(port), "--expect", "DEADBEEE")
    assert proc.returncode == 1 and "FAIL" in proc.stdout


@pytest.mark.parametrize("args, code, message", [
    (["build", "--board", "vck190"], 2, "board: no bitstream flow for 'vck190'"),
    (["build", "--board", "icebreaker", "--clock", "24"], 2, "clock: 24 MHz needs a PLL, which specmx drives on "
                                                             "the ECP5 boards only"),
    (["build", "--board", "ulx3s-85f", "--clock", "12"], 2, "clock: the ECP5 PLL cannot make 12 MHz from 25 MHz"),
    (["build", "--board", "icebreaker", "--design", "ssm"], 2, "design: the ssm self-test (a scan unit"),
    (["build", "--board", "ulx3s-85f", "--design", "conv"], 2, "design: unknown design 'conv'; allowed: fma, gemm, ssm"),
    (["build", "--board", "ulx3s-85f", "--design", "ssm", "--tokens", "0"], 2, "tokens: must be"),
    (["build", "--board", "ulx3s-85f", "--design", "gemm", "--shape", "8,8,32"], 2, "shape: K = 32 exceeds"),
    (["build", "--board", "icebreaker", "--ops", "0"], 2, "ops: must be"),
    (["export", "--board", "u280"], 2, "board: no Vivado export for 'u280'; allowed: vck190, vhk158"),
    (["read", "--port", "/nonexistent/tty", "--expect", "00000000"], 2, "port: cannot open"),
])
def test_bad_requests(tmp_path, args, code, message):
    out = ["--out", str(tmp_path / "x")] if args[0] in ("build", "export") else []
    proc = _cli("bitstream", *args, *out)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.regress
def test_orangecrab_selftest_bitstream(tmp_path):
    """The OrangeCrab build (LEDs only) and its DFU file: the bitstream plus the DFU suffix."""
    s = _build("orangecrab-85f", tmp_path / "oc")
    assert s["timing_met"] and Path(s["bitstream"]).exists()
    dfu, bit = Path(s["dfu"]).read_bytes(), Path(s["bitstream"]).read_bytes()
    assert dfu[:-16] == bit and dfu[-8:-5] == b"UFD"


def test_dfu_suffix_layout():
    """dfu-util's suffix: 16 bytes, "UFD", vendor and product little-endian, and the CRC-32
    (all-ones start, no final inversion) of everything before it; another file, another CRC."""
    import struct
    import zlib

    from specmx.bitstream import dfu_suffix
    out = dfu_suffix(b"bitstream bytes")
    assert len(out) == 15 + 16 and out[:15] == b"bitstream bytes"
    device, product, vendor, dfu, sig, length, crc = struct.unpack("<HHHH3sBI", out[15:])
    assert (device, product, vendor, dfu, sig, length) == (0xFFFF, 0x5AF0, 0x1209, 0x0100, b"UFD", 16)
    assert crc == zlib.crc32(out[:-4]) ^ 0xFFFFFFFF
    assert dfu_suffix(b"bitstream bytez")[-4:] != out[-4:]


def test_ecp5_pll_dividers_respect_the_pll_ranges():
    from specmx.bitstream import BuildError, ecp5_pll
    for fin, fout in [(25, 50), (25, 33.333), (48, 60), (25, 100), (48, 150)]:
        p = ecp5_pll(fin, fout)
        assert 3.125 <= fin / p["CLKI_DIV"] <= 400 and 400 <= p["vco_mhz"] <= 800
        assert abs(p["fout_mhz"] - fin * p["CLKFB_DIV"] / p["CLKI_DIV"]) < 1e-9
        assert abs(p["fout_mhz"] / fout - 1) <= 0.005 and p["CLKOP_CPHASE"] == (p["CLKOP_DIV"] - 1) // 2
    with pytest.raises(BuildError, match="cannot make 500 MHz"):
        ecp5_pll(25, 500)


@pytest.mark.regress
def test_ecp5_clock_through_the_pll(tmp_path):
    """33.3 MHz from the ULX3S's 25 MHz through the EHXPLLL: met; 50 MHz: timing fails (exit 1,
    one line, no bitstream)."""
    s = _build("ulx3s-85f", tmp_path / "pll", "--clock", "33.333")
    assert s["timing_met"] and s["pll"]["CLKOP_DIV"] and abs(s["clock_mhz"] - 33.333) < 0.01
    proc = _subprocess_cli("bitstream", "build", "--board", "ulx3s-85f", "--clock", "50", "--out", str(tmp_path / "fast"))
    assert proc.returncode == 1 and "timing fails" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "fast").exists()


def test_gemm_signature_is_the_crc_of_the_golden_gemm():
    import zlib

    from specmx.bitstream import default_gemm
    from specmx.models.gemm import gemm
    from specmx.models.selftest import gemm_operands, gemm_signature
    engine = default_gemm("ulx3s-85f")
    sig, C = gemm_signature(engine, (8, 8, 8))
    A, B, C0 = gemm_operands(engine, (8, 8, 8))
    assert (C == gemm(engine, A, B, C0)).all() and A.shape == (8, 8) and C0.shape == (8, 8)
    assert sig == zlib.crc32(b"".join(int(v).to_bytes(4, "little") for v in C.ravel()))
    assert gemm_signature(engine, (8, 8, 7))[0] != sig


@pytest.mark.regress
def test_gemm_selftest_simulates_and_builds_on_ecp5(tmp_path):
    """The 2x2 bf16 GEMM self-test (8x8x8): the simulated top reaches the golden signature (a
    flipped result bit does not), and its ULX3S bitstream meets 25 MHz (about 5 minutes)."""
    from specmx.bitstream import SelfTestSpec, default_gemm
    spec = SelfTestSpec("gemm", default_gemm("ulx3s-85f"), shape=(8, 8, 8))
    assert check_selftest(spec.make(25e6))["ok"]
    bad = check_selftest(spec.make(25e6, flip=1))
    assert not bad["ok"] and bad["lines"][0].endswith("FAIL\r\n")
    s = _build("ulx3s-85f", tmp_path / "g", "--design", "gemm")
    from specmx.models.selftest import gemm_signature
    assert s["timing_met"] and s["shape"] == [8, 8, 8]
    assert s["signature"] == f"{gemm_signature(spec.config, spec.shape)[0]:08X}"


@pytest.mark.regress
def test_largest_gemm_selftest_simulates_to_its_signature():
    """The largest array built for the ECP5-85F boards (examples/ecp5_largest_gemm.yaml: 6x7,
    one 12x12x8 product; its bitstream is `make bench`'s, 52 minutes of nextpnr): the simulated
    self-test reaches the golden signature, and a flipped result bit reports FAIL."""
    from specmx.bitstream import SelfTestSpec
    from specmx.spec import load_spec
    engine = load_spec(Path(__file__).parents[1] / "examples" / "ecp5_largest_gemm.yaml").gemm
    assert (engine.rows, engine.cols) == (6, 7)
    spec = SelfTestSpec("gemm", engine, shape=(12, 12, 8))
    good = check_selftest(spec.make(25e6))
    assert good["ok"] and good["lines"][0].startswith("SPECMX SIG=8FCE9CDF ")
    bad = check_selftest(spec.make(25e6, flip=1))
    assert not bad["ok"] and bad["lines"][0].endswith("FAIL\r\n")


def test_ssm_signature_is_the_crc_of_the_golden_scan():
    """The SSM self-test's expected signature: zlib's CRC-32 over the scan unit's golden gated
    outputs on the stored stimulus, whose corner tokens (NaN, inf, subnormal inputs) are in."""
    import zlib

    import numpy as np

    from specmx.bitstream import default_ssm
    from specmx.models.selftest import ssm_signature, ssm_stimulus
    from specmx.models.ssm_numerics import HardwareOps, scan_stream
    ssm = default_ssm("ulx3s-85f")
    sig, out = ssm_signature(ssm, 16)
    v = ssm_stimulus(ssm, 16)
    assert np.array_equal(out, scan_stream(HardwareOps(ssm.fma, 1), "mamba1", v)) and out.shape == (16, 4)
    assert sig == zlib.crc32(b"".join(int(w).to_bytes(4, "little") for w in out.ravel()))
    nan = ((v["u"] & 0x7F800000) == 0x7F800000) & ((v["u"] & 0x7FFFFF) != 0)
    assert v["clear"][0] == v["clear"][8] == 1 and nan.any()
    assert ssm_signature(ssm, 15)[0] != sig


def test_ssm_selftest_simulates_to_the_golden_signature():
    """The scan-unit self-test (Mamba-1, d_inner 4, d_state 4, 16 tokens from a ROM): the
    Verilog a build writes reaches the golden signature twice (a restart, which also resets the
    unit, in between) in the scan unit's modelled cycles plus the ROM's first read; one flipped
    result bit gives another signature and FAIL (the negative control)."""
    from specmx.bitstream import SelfTestSpec, default_ssm
    from specmx.models.perf.ssm import scan_cycles
    from specmx.sim.runner import to_verilog
    spec = SelfTestSpec("ssm", default_ssm("ulx3s-85f"), tokens=16)
    good = spec.make(25e6)
    report = check_selftest(good, verilog_text=to_verilog(good, "selftest"))
    assert report["ok"], report
    assert report["runs"][0]["cycles"] == report["runs"][1]["cycles"] == scan_cycles(spec.config, 16).total + 1
    bad = check_selftest(spec.make(25e6, flip=1 << 31))
    assert not bad["ok"] and not bad["signature_matches"] and bad["lines"][0].endswith("FAIL\r\n")


@pytest.mark.regress
def test_ssm_selftest_builds_on_ecp5(tmp_path):
    """The scan-unit self-test's ULX3S bitstream at 10 MHz through the PLL (the scan unit runs at
    about 13 MHz, short of the 25 MHz oscillator): it fits, meets its clock, and carries the
    golden signature (nextpnr: about 20 minutes)."""
    from specmx.bitstream import default_ssm
    from specmx.models.selftest import ssm_signature
    s = _build("ulx3s-85f", tmp_path / "s", "--design", "ssm", "--clock", "10")
    assert s["timing_met"] and s["design"] == "ssm" and s["ops"] == 64
    assert s["signature"] == f"{ssm_signature(default_ssm('ulx3s-85f'), 16)[0]:08X}"
