"""Matrix engine: golden GEMM vs a naive model, RTL vs golden (bit-exact) and cycle model vs
RTL (cycle-exact), in cocotb on Verilator."""

import numpy as np
import pytest
from bitcheck import assert_bits_equal

from specmx.models.fma import FMAConfig, fma, normalize, to_internal
from specmx.models.gemm import gemm, gemm_reference_error
from specmx.sim.gemm_check import check_gemm, gemm_operands

APPROX = FMAConfig("bf16", "fp32", window=4, step=4, policy="internal")


def naive_gemm(A, B, C0, cfg):
    """Deliberately naive: one scalar FMA call per (m, n, k), in k order."""
    M, K = A.shape
    N = B.shape[1]
    out = np.zeros((M, N), dtype=np.int64)
    for i in range(M):
        for j in range(N):
            c = C0[i, j:j + 1]
            c = to_internal(c, cfg) if cfg.internal else c
            for k in range(K):
                c = fma(A[i, k:k + 1], B[k, j:j + 1], c, cfg)
            out[i, j] = (normalize(c, cfg) if cfg.internal else c)[0]
    return out


@pytest.mark.parametrize("cfg", [FMAConfig("bf16", "fp32"), FMAConfig("e4m3", "bf16"), APPROX,
                                 FMAConfig("bf16", "bf16", window=4, step=2, policy="round")],
                         ids=lambda c: c.name)
def test_golden_gemm_equals_naive_chain(cfg):
    A, B, C0 = gemm_operands(cfg, 5, 6, 7, seed=3)
    for dataflow in ("os", "ws"):
        assert_bits_equal(gemm(A, B, C0, cfg, dataflow, 2, 3), naive_gemm(A, B, C0, cfg), cfg.name)


def test_golden_gemm_reference_error_is_stated():
    cfg = FMAConfig("bf16", "fp32")
    A, B, C0 = gemm_operands(cfg, 16, 16, 64, seed=1)
    err = gemm_reference_error(A, B, C0, gemm(A, B, C0, cfg), cfg)
    assert err["max_rel_err"] < 64 * 2.0 ** -24          # fp32 accumulation, 64 terms
    bf16 = FMAConfig("bf16", "bf16")
    A, B, C0 = gemm_operands(bf16, 16, 16, 64, seed=1)
    err_bf16 = gemm_reference_error(A, B, C0, gemm(A, B, C0, bf16), bf16)
    assert err_bf16["max_rel_err"] > err["max_rel_err"]     # bf16 accumulation is visibly worse


def test_golden_gemm_bad_input():
    cfg = FMAConfig()
    A, B, C0 = gemm_operands(cfg, 2, 3, 4)
    with pytest.raises(ValueError, match="dataflow: unknown 'is'; allowed: os, ws"):
        gemm(A, B, C0, cfg, "is")
    with pytest.raises(ValueError, match="B: expected 4 rows"):
        gemm(A, B[:3], C0, cfg)
    with pytest.raises(ValueError, match=r"C0: expected shape \(2, 3\)"):
        gemm(A, B, C0[:, :2], cfg)
    with pytest.raises(ValueError, match="rows: must be a positive integer, got 0"):
        gemm(A, B, C0, cfg, "os", 0, 4)


# --- RTL: one engine build per case (buffers sized 32^3), several GEMM shapes on it ------------

RTL_CASES = [
    # (cfg, rows, cols, dataflow, pe_stages): both dataflows, exact and approximate, pipelined PEs
    (FMAConfig("bf16", "fp32"), 2, 3, "os", 1),
    (FMAConfig("bf16", "fp32"), 2, 3, "ws", 1),
    (APPROX, 4, 4, "ws", 2),
]
REGRESS_CASES = [
    (FMAConfig("bf16", "fp32"), 4, 4, "os", 1),
    (FMAConfig("bf16", "bf16", window=4, step=2, policy="round"), 2, 2, "os", 2),
]
SHAPES = [(7, 13, 29), (1, 1, 1), (3, 5, 2)]
REGRESS_SHAPES = SHAPES + [(16, 16, 32)]


def _case_id(case):
    cfg, r, c, df, s = case
    return f"{cfg.name}-{r}x{c}-{df}-s{s}"


def _check_cases(case, shapes):
    cfg, rows, cols, dataflow, stages = case
    for i, shape in enumerate(shapes):
        report = check_gemm(cfg, rows, cols, dataflow, shape, stages, seed=i,
                            backpressure=0.25 if i % 2 == 0 else 0.0, max_size=(32, 32, 32))
        assert report["mismatches"] == 0, (shape, report["first_mismatches"])
        assert report["passed"]
        assert report["cycles"] == report["predicted_cycles"], (shape, report)


@pytest.mark.parametrize("case", RTL_CASES, ids=_case_id)
def test_rtl_gemm_bit_and_cycle_exact(case):
    _check_cases(case, SHAPES)


@pytest.mark.regress
@pytest.mark.parametrize("case", RTL_CASES + REGRESS_CASES, ids=_case_id)
def test_rtl_gemm_bit_and_cycle_exact_regress(case):
    _check_cases(case, REGRESS_SHAPES)


@pytest.mark.regress
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_rtl_gemm_8x8(dataflow):
    for i, shape in enumerate([(16, 16, 32), (7, 13, 29), (33, 17, 40)]):
        report = check_gemm(FMAConfig("bf16", "fp32"), 8, 8, dataflow, shape, 1, seed=i,
                            backpressure=0.2, max_size=(64, 64, 64))
        assert report["mismatches"] == 0 and report["cycles"] == report["predicted_cycles"], report


def test_rtl_gemm_negative_controls():
    """A corrupted expected word fails the bit check; a wrong cycle prediction is caught."""
    cfg, rows, cols, dataflow, stages = RTL_CASES[0]
    report = check_gemm(cfg, rows, cols, dataflow, (7, 13, 29), stages, corrupt=2, max_size=(32, 32, 32))
    assert report["mismatches"] == 2 and not report["passed"]
    from specmx.models.perf.gemm import gemm_cycles
    off_by_one = gemm_cycles(7, 13, 29, rows, cols, dataflow, stages).total_cycles + 1
    good = check_gemm(cfg, rows, cols, dataflow, (7, 13, 29), stages, max_size=(32, 32, 32))
    assert good["cycles"] == good["predicted_cycles"] != off_by_one
