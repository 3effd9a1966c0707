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

__all__ = ["scalesim_python", "run_scalesim"]


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
