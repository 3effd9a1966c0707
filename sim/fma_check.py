"""Host side of the FMA regression: make vectors, compute the golden results, simulate, report."""

import functools
import tempfile
from pathlib import Path

import numpy as np

from specmx.models.config import FMAConfig
from specmx.models.fma import fma, fma_wide
from specmx.sim.runner import build_root, run_cocotb, to_verilog
from specmx.sim.vectors import fma_vectors, wide_vectors

__all__ = ["check_fma"]


@functools.lru_cache(maxsize=16)
def _fma_rtl(cfg: FMAConfig, stages, wide=False):
    """The FMA component and its Verilog, converted once per configuration in a process."""
    from specmx.hdl.fma import FMA   # keep Amaranth out of import time for model-only users
    rtl = FMA(cfg, stages, wide)
    return rtl, to_verilog(rtl, "fma")


def check_fma(cfg: FMAConfig, vectors=20000, stages=2, simulator="verilator", seed=0,
              stall=0.0, bubble=0.0, corrupt=0, waves=None, wide=False):
    """Simulate the FMA RTL on `vectors` operand sets and compare with the golden model.

    `corrupt` > 0 flips the low bit of that many expected results first: the negative control
    that proves the comparison can fail. Returns the testbench report (dict) plus `passed`,
    `log_dir` and `waves` (the waveform file when recorded, else None). `wide`: the FMA whose
    multiplicand b is an accumulator word, against `fma_wide`.
    """
    if wide:
        a, b, c = wide_vectors(cfg, vectors, seed)
        expected = fma_wide(a, b, c, cfg)
    else:
        a, b, c = fma_vectors(cfg, vectors, seed)
        expected = fma(a, b, c, cfg)
    if corrupt:
        idx = np.random.default_rng(seed + 1).choice(expected.size, corrupt, replace=False)
        expected[idx] ^= 1
    build_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_root()) as tmp:
        path = Path(tmp) / "vectors.npz"
        np.savez(path, a=a, b=b, c=c, expected=expected)
        rtl, verilog = _fma_rtl(cfg, stages, wide)
        result = run_cocotb(rtl, "fma", "specmx.sim.tb_fma",
                            {"SPECMX_VECTORS": path, "SPECMX_STAGES": stages, "SPECMX_SEED": seed,
                             "SPECMX_STALL": stall, "SPECMX_BUBBLE": bubble}, simulator,
                            verilog_text=verilog, waves=waves)
    report = {"vectors": 0, "results": 0, "mismatches": None, "first_mismatches": []}
    report.update(result.report)   # empty when the simulation died before reporting
    report.update(passed=result.passed, log_dir=str(result.log_dir),
                  waves=str(result.waves) if result.waves else None)
    return report
