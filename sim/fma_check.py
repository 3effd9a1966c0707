"""Host side of the FMA regression: make vectors, compute the golden results, simulate, report."""

import tempfile
from pathlib import Path

import numpy as np

from ..models.fma import FMAConfig, fma
from .runner import BUILD_ROOT, run_cocotb
from .vectors import fma_vectors

__all__ = ["check_fma"]


def check_fma(cfg: FMAConfig, vectors=20000, stages=2, simulator="verilator", seed=0,
              stall=0.0, bubble=0.0, corrupt=0):
    """Simulate the FMA RTL on `vectors` operand sets and compare with the golden model.

    `corrupt` > 0 flips the low bit of that many expected results first: the negative control
    that proves the comparison can fail. Returns the testbench report (dict) plus `passed`.
    """
    from ..hdl.fma import FMA   # keep Amaranth out of import time for model-only users

    a, b, c = fma_vectors(cfg, vectors, seed)
    expected = fma(a, b, c, cfg)
    if corrupt:
        idx = np.random.default_rng(seed + 1).choice(expected.size, corrupt, replace=False)
        expected[idx] ^= 1
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_ROOT) as tmp:
        path = Path(tmp) / "vectors.npz"
        np.savez(path, a=a, b=b, c=c, expected=expected)
        result = run_cocotb(FMA(cfg, stages), "fma", "specmx.sim.tb_fma",
                            {"SPECMX_VECTORS": path, "SPECMX_STAGES": stages, "SPECMX_SEED": seed,
                             "SPECMX_STALL": stall, "SPECMX_BUBBLE": bubble}, simulator)
    report = {"vectors": 0, "results": 0, "mismatches": None, "first_mismatches": []}
    report.update(result.report)   # empty when the simulation died before reporting
    report["passed"] = result.passed
    report["log_dir"] = str(result.log_dir)
    return report
