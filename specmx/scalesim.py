"""Run SCALE-Sim 3.0.0 (PyPI `scalesim`) on GEMMs, for side-by-side comparison.

SCALE-Sim 3.0.0 crashes under numpy 2, so it lives in its own virtual environment
(`.venv-scalesim`, numpy<2, created by the Makefile) and runs as a subprocess; specmx's own
numpy is never downgraded. It runs in its no-stall mode (`InterfaceBandwidth: CALC`).
"""

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["scalesim_python", "run_scalesim", "read_config", "read_topology"]


_CONFIG = """[general]
run_name = specmx

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 65536
FilterSramSzkB: 65536
OfmapSramSzkB: 65536
IfmapOffset: 0
FilterOffset: 100000000
OfmapOffset: 200000000
Dataflow: {dataflow}
Bandwidth: 10
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def scalesim_python():
    """The interpreter of SCALE-Sim's own venv: $SPECMX_SCALESIM_PYTHON, or by default
    `.venv-scalesim/bin/python` beside the virtual environment specmx runs in (where `make venv`
    puts it: `.venv` and `.venv-scalesim` side by side in the checkout)."""
    default = Path(sys.prefix).parent / ".venv-scalesim" / "bin" / "python"
    path = Path(os.environ.get("SPECMX_SCALESIM_PYTHON", default))
    if not path.exists():
        raise RuntimeError(f"compare: SCALE-Sim's interpreter is missing ({path}); run `make venv` "
                           f"or set SPECMX_SCALESIM_PYTHON")
    return path


def run_scalesim(rows, cols, dataflow, shapes, workdir=None):
    """Simulate GEMMs (list of (M, N, K)) in one SCALE-Sim run.

    Returns (list of compute cycles per shape, wall seconds of the whole run). SCALE-Sim's
    topology rows are `name, M, N, K` with M x K inputs, K x N weights, M x N outputs.
    """
    work = Path(workdir or tempfile.mkdtemp(prefix="specmx-scalesim-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "arch.cfg").write_text(_CONFIG.format(rows=rows, cols=cols, dataflow=dataflow))
    topo = ["Layer, M, N, K,"] + [f"g{i}, {M}, {N}, {K}," for i, (M, N, K) in enumerate(shapes)]
    (work / "topo.csv").write_text("\n".join(topo) + "\n")
    layout = ["Layer, IfmapIntra, IfmapInter, FilterIntra, FilterInter,"] + \
             [f"g{i}, 1, 1, 1, 1," for i in range(len(shapes))]
    (work / "layout.csv").write_text("\n".join(layout) + "\n")
    t0 = time.perf_counter()
    proc = subprocess.run([str(scalesim_python()), "-m", "scalesim.scale", "-c", "arch.cfg",
                           "-t", "topo.csv", "-l", "layout.csv", "-i", "gemm", "-p", "out", "-s", "N"],
                          cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"SCALE-Sim failed: {proc.stderr.strip()[-1500:]}")
    report = next((work / "out").rglob("COMPUTE_REPORT.csv"))
    with open(report) as f:
        rows_out = [r for r in csv.reader(f) if r and r[0].strip().isdigit()]
    return [int(r[2]) for r in rows_out], seconds


def read_config(path):
    """The array a SCALE-Sim `.cfg` describes: {rows, cols, dataflow, words_per_cycle}.

    `words_per_cycle` is the `Bandwidth` of [architecture_presets] when [run_presets] sets
    `InterfaceBandwidth: USER` (SCALE-Sim then limits the interface to it), else None (CALC:
    SCALE-Sim assumes whatever bandwidth the array needs)."""
    import configparser
    parser = configparser.ConfigParser()
    try:
        with open(path) as f:
            parser.read_file(f)
    except FileNotFoundError:
        raise ValueError(f"scalesim-config: no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ValueError(f"scalesim-config: cannot read {str(path)!r}: {str(exc).splitlines()[0]}") from None
    if not parser.has_section("architecture_presets"):
        raise ValueError("scalesim-config: missing section [architecture_presets] (ArrayHeight, "
                         "ArrayWidth, Dataflow)")
    arch = parser["architecture_presets"]
    out = {}
    for key, name in (("ArrayHeight", "rows"), ("ArrayWidth", "cols")):
        try:
            out[name] = int(arch[key])
        except KeyError:
            raise ValueError(f"scalesim-config: architecture_presets.{key} is missing") from None
        except ValueError:
            raise ValueError(f"scalesim-config: architecture_presets.{key}: expected an integer, "
                             f"got {arch[key]!r}") from None
        if out[name] < 1:
            raise ValueError(f"scalesim-config: architecture_presets.{key}: must be >= 1, got {out[name]}")
    out["dataflow"] = arch.get("Dataflow", "").strip()
    if out["dataflow"] not in ("os", "ws", "is"):
        raise ValueError(f"scalesim-config: architecture_presets.Dataflow: unknown {out['dataflow']!r}; "
                         f"allowed: os, ws, is")
    mode = parser.get("run_presets", "InterfaceBandwidth", fallback="CALC").strip().upper()
    out["words_per_cycle"] = None
    if mode == "USER":
        try:
            out["words_per_cycle"] = float(arch["Bandwidth"])
        except (KeyError, ValueError):
            raise ValueError("scalesim-config: architecture_presets.Bandwidth: expected a number of "
                             "words per cycle (InterfaceBandwidth is USER)") from None
        if not out["words_per_cycle"] > 0:
            raise ValueError(f"scalesim-config: architecture_presets.Bandwidth: must be > 0, "
                             f"got {out['words_per_cycle']}")
    return out


def read_topology(path):
    """GEMM layers of a SCALE-Sim GEMM topology CSV (header `Layer, M, N, K`, one row per
    layer, trailing commas allowed): a list of (name, M, N, K)."""
    try:
        with open(path, newline="") as f:
            rows = [[cell.strip() for cell in r if cell.strip()] for r in csv.reader(f)]
    except FileNotFoundError:
        raise ValueError(f"topology: no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"topology: cannot read {str(path)!r}: {exc}") from None
    rows = [r for r in rows if r]
    if not rows or [c.upper() for c in rows[0][1:4]] != ["M", "N", "K"]:
        raise ValueError(f"topology: expected a GEMM topology with the header 'Layer, M, N, K', "
                         f"got {', '.join(rows[0]) if rows else 'an empty file'}")
    layers = []
    for line, r in enumerate(rows[1:], 2):
        try:
            name, M, N, K = r[0], *(int(x) for x in r[1:4])
            if len(r) != 4:
                raise ValueError
        except ValueError:
            raise ValueError(f"topology: line {line}: expected 'name, M, N, K' with integers, "
                             f"got {', '.join(r)}") from None
        if min(M, N, K) < 1:
            raise ValueError(f"topology: line {line}: M, N, K must be >= 1, got {M}, {N}, {K}")
        layers.append((name, M, N, K))
    if not layers:
        raise ValueError("topology: no layers after the header")
    return layers
