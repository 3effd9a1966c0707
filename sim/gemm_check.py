"""Host side of the GEMM regression: random operands, golden result, simulation, cycle check."""

import tempfile
from pathlib import Path

import numpy as np

from ..models.fma import FMAConfig
from ..models.formats import encode
from ..models.gemm import gemm
from ..models.perf.gemm import gemm_cycles
from .runner import BUILD_ROOT, run_cocotb

__all__ = ["check_gemm", "gemm_operands"]


def gemm_operands(cfg: FMAConfig, M, N, K, seed=0):
    """Random A, B, C0 bit patterns: normal values plus a sprinkling of signed zeros and
    exact-cancellation pairs, so zero signs and cancellation paths are exercised."""
    rng = np.random.default_rng(seed)
    A = encode(rng.standard_normal((M, K)), cfg.in_f)
    B = encode(rng.standard_normal((K, N)), cfg.in_f)
    C0 = encode(rng.standard_normal((M, N)) * 4, cfg.acc_f)
    A[rng.random((M, K)) < 0.05] = cfg.in_f.sign_bit         # -0
    C0[rng.random((M, N)) < 0.1] = cfg.acc_f.sign_bit         # -0
    return A, B, C0


def check_gemm(cfg: FMAConfig, rows, cols, dataflow, shape, pe_stages=1, simulator="verilator",
               seed=0, backpressure=0.0, corrupt=0, max_size=None):
    """Simulate one GEMM on the engine and compare results and cycles.

    Returns the testbench report plus `predicted_cycles` (cycle model) and `passed`.
    `corrupt` > 0 flips a bit in that many expected results (negative control).
    """
    from ..hdl.gemm import GEMMEngine

    M, N, K = shape
    max_m, max_n, max_k = max_size or shape
    A, B, C0 = gemm_operands(cfg, M, N, K, seed)
    expected = gemm(A, B, C0, cfg, dataflow, rows, cols)
    if corrupt:
        idx = np.random.default_rng(seed + 1).choice(expected.size, corrupt, replace=False)
        expected.ravel()[idx] ^= 1
    engine = GEMMEngine(cfg, rows, cols, dataflow, pe_stages, max_m, max_n, max_k)
    widths = [max(1, v.bit_length()) for v in (max_m, max_n)]
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_ROOT) as tmp:
        path = Path(tmp) / "gemm.npz"
        np.savez(path, a=A, b=B, c0=C0, expected=expected, m=M, n=N, k=K)
        result = run_cocotb(engine, "gemm", "specmx.sim.tb_gemm",
                            {"SPECMX_VECTORS": path, "SPECMX_SEED": seed,
                             "SPECMX_BACKPRESSURE": backpressure,
                             "SPECMX_CMD_WIDTHS": ",".join(map(str, widths))}, simulator)
    report = {"mismatches": None, "cycles": None, "backpressure_cycles": 0, "first_mismatches": []}
    report.update(result.report)
    pred = gemm_cycles(M, N, K, rows, cols, dataflow, pe_stages,
                       in_bytes=(cfg.in_f.width + 7) // 8, acc_bytes=(cfg.acc_f.width + 7) // 8)
    report["predicted_cycles"] = pred.total_cycles + report["backpressure_cycles"]
    report["passed"] = result.passed
    report["log_dir"] = str(result.log_dir)
    return report
