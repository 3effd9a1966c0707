"""Matrix engine: golden GEMM vs a naive model, RTL vs golden (bit-exact) and cycle model vs
RTL (cycle-exact), in cocotb on Verilator."""

import numpy as np
import pytest
from bitcheck import assert_bits_equal

from specmx.models.config import GemmConfig
from specmx.models.fma import FMAConfig, fma, normalize, to_internal
from specmx.models.gemm import gemm, gemm_reference_error
from specmx.models.perf.gemm import gemm_cycles, memory_stall_cycles
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
        engine = GemmConfig(cfg, 2, 3, dataflow)
        assert_bits_equal(gemm(engine, A, B, C0), naive_gemm(A, B, C0, cfg), cfg.name)


def test_golden_gemm_reference_error_is_stated():
    fp32 = GemmConfig(FMAConfig("bf16", "fp32"))
    A, B, C0 = gemm_operands(fp32.fma, 16, 16, 64, seed=1)
    err = gemm_reference_error(fp32, A, B, C0, gemm(fp32, A, B, C0))
    assert err["max_rel_err"] < 64 * 2.0 ** -24          # fp32 accumulation, 64 terms
    bf16 = GemmConfig(FMAConfig("bf16", "bf16"))
    A, B, C0 = gemm_operands(bf16.fma, 16, 16, 64, seed=1)
    err_bf16 = gemm_reference_error(bf16, A, B, C0, gemm(bf16, A, B, C0))
    assert err_bf16["max_rel_err"] > err["max_rel_err"]     # bf16 accumulation is visibly worse


def test_golden_gemm_bad_input():
    engine = GemmConfig()
    A, B, C0 = gemm_operands(engine.fma, 2, 3, 4)
    with pytest.raises(TypeError, match="engine must be a GemmConfig"):
        gemm(FMAConfig(), A, B, C0)
    with pytest.raises(ValueError, match="B: expected 4 rows"):
        gemm(engine, A, B[:3], C0)
    with pytest.raises(ValueError, match=r"C0: expected shape \(2, 3\)"):
        gemm(engine, A, B, C0[:, :2])


# --- RTL: one engine build per case (buffers sized 32^3), several GEMM shapes on it ------------

RTL_CASES = [
    # (cfg, rows, cols, dataflow, pe_stages): both dataflows, exact and approximate, pipelined PEs
    (FMAConfig("bf16", "fp32"), 2, 3, "os", 1),
    (FMAConfig("bf16", "fp32"), 2, 3, "ws", 1),
]
REGRESS_CASES = [
    (APPROX, 4, 4, "ws", 2),
    (FMAConfig("bf16", "fp32"), 4, 4, "os", 1),
    (FMAConfig("bf16", "bf16", window=4, step=2, policy="round"), 2, 2, "os", 2),
]
SHAPES = [(7, 13, 29), (1, 1, 1), (3, 5, 2)]
REGRESS_SHAPES = SHAPES + [(16, 16, 32)]


def _case_id(case):
    cfg, r, c, df, s = case
    return f"{cfg.name}-{r}x{c}-{df}-s{s}"


def _engine(case, buffers=32):
    cfg, rows, cols, dataflow, stages = case
    return GemmConfig(cfg, rows, cols, dataflow, stages, buffers, buffers, buffers)


def _check_cases(case, shapes):
    """Every shape bit- and cycle-exact; every other one with random operand gaps and result
    back-pressure (both accounted by the cycle model)."""
    for i, shape in enumerate(shapes):
        busy = i % 2 == 0
        report = check_gemm(_engine(case), shape, seed=i, backpressure=0.25 if busy else 0.0,
                            idle=0.2 if busy else 0.0)
        assert report["mismatches"] == 0, (shape, report["first_mismatches"])
        assert report["passed"] and not report["protocol_errors"]
        assert report["cycles"] == report["predicted_cycles"], (shape, report)
        assert report["ok"]


# `make test` runs the phased engine's OS case (the WS one and more in `make regress`).
@pytest.mark.parametrize("case", RTL_CASES[:1], ids=_case_id)
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
        engine = GemmConfig(FMAConfig("bf16", "fp32"), 8, 8, dataflow, 1, 64, 64, 64)
        report = check_gemm(engine, shape, seed=i, backpressure=0.2, idle=0.1)
        assert report["mismatches"] == 0 and report["cycles"] == report["predicted_cycles"], report


def _off_by_one(*args, **kwargs):
    """The cycle model, one cycle long (a negative control)."""
    real = gemm_cycles(*args, **kwargs)
    return type(real)(**{**real.as_dict(), "total_cycles": real.total_cycles + 1})


def test_rtl_gemm_negative_controls():
    """A corrupted expected word fails the bit check; a cycle model that is off by one cycle
    fails the cycle check, on the same simulation that passes with the real model."""
    engine = _engine(RTL_CASES[0])
    report = check_gemm(engine, (5, 7, 6), corrupt=2)
    assert report["mismatches"] == 2 and not report["passed"] and not report["ok"]

    good = check_gemm(engine, (5, 7, 6), backpressure=0.25, idle=0.2)
    bad = check_gemm(engine, (5, 7, 6), backpressure=0.25, idle=0.2, cycle_model=_off_by_one)
    assert good["ok"] and good["cycles_match"]
    assert bad["mismatches"] == 0 and bad["passed"] and not bad["cycles_match"] and not bad["ok"]


# --- Streaming schedule (hdl.stream_gemm): tiles stream through a small array --------------

STREAM_CASES = [
    # (cfg, rows, cols, dataflow, pe_stages): three geometries per dataflow, exact and
    # approximate, s = 1..3 and the deepest FMA pipeline (12 stages)
    (FMAConfig("bf16", "fp32"), 2, 3, "os", 1),
    (APPROX, 3, 2, "os", 2),
    (FMAConfig("bf16", "fp32"), 4, 4, "os", 3),
    (FMAConfig("bf16", "fp32"), 2, 3, "ws", 1),
    (APPROX, 3, 2, "ws", 12),
    (FMAConfig("bf16", "fp32"), 4, 4, "ws", 3),
]
# Many tiles (os) or folds and blocks (ws) in every dimension, the steady state (os: K*s covers
# the chain windows, or not; ws: several k passes through the partial-sum buffer, or one), an
# edge tile in each dimension, and a single element.
STREAM_SHAPES = [(13, 11, 12), (1, 1, 1), (9, 7, 2)]


def _stream_engine(case, limit=64):
    return GemmConfig(*case, limit, limit, limit, "streaming")


def _check_stream(engine, shapes, busy_every=2):
    for i, shape in enumerate(shapes):
        busy = i % busy_every == 0
        report = check_gemm(engine, shape, seed=i, backpressure=0.3 if busy else 0.0, idle=0.3 if busy else 0.0)
        assert report["mismatches"] == 0, (shape, report["first_mismatches"])
        assert report["passed"] and not report["protocol_errors"]
        assert report["cycles"] == report["predicted_cycles"], (shape, report)
        assert (report["stall_cycles"] > 0) == busy, report
        assert report["ok"]


# `make test` runs four of the six (both dataflows, exact and approximate, s = 1, 2, 3 and 12);
# `make regress` runs all six with more shapes.
STREAM_QUICK = [STREAM_CASES[i] for i in (0, 1, 4, 5)]


@pytest.mark.parametrize("case", STREAM_QUICK, ids=_case_id)
def test_rtl_stream_gemm_bit_and_cycle_exact(case):
    _check_stream(_stream_engine(case), STREAM_SHAPES)


# (latency, words per cycle) of the weight memory: one that keeps up, a slow start, bandwidth below
# one beat per cycle, both, and a single word per cycle
MEMORIES = [(0, 8), (17, 2), (3, 4), (5, 1)]


def _check_memory(engine, shapes, memories):
    stalled = 0
    for i, shape in enumerate(shapes):
        for memory in memories:
            report = check_gemm(engine, shape, seed=i, memory=memory)
            assert report["mismatches"] == 0 and report["passed"], (shape, memory, report["first_mismatches"])
            assert report["cycles"] == report["predicted_cycles"], (shape, memory, report)
            stalled += report["memory_stalls"] > 0
    assert stalled >= len(shapes)          # the latency/bandwidth cases really stall


@pytest.mark.parametrize("case", [STREAM_QUICK[0], STREAM_QUICK[2]], ids=_case_id)
def test_rtl_stream_gemm_weight_memory_stalls_equal_model(case):
    """Weights from the external memory model (latency, words per cycle): the cycles from the
    command to the last result equal the schedule plus `memory_stall_cycles`, bit-exact results."""
    _check_memory(_stream_engine(case), [(9, 10, 13)], MEMORIES)


def test_weight_memory_stall_model_negative_control():
    """A stall model that forgets the latency is caught."""
    engine = _stream_engine(STREAM_QUICK[0])

    def no_latency(engine, M, N, K, latency, words):
        return memory_stall_cycles(engine, M, N, K, 0, words)

    report = check_gemm(engine, (5, 7, 6), memory=(17, 2), stall_model=no_latency)
    assert report["mismatches"] == 0 and not report["ok"] and report["cycles"] != report["predicted_cycles"]


@pytest.mark.regress
@pytest.mark.parametrize("case", STREAM_CASES, ids=_case_id)
def test_rtl_stream_gemm_weight_memory_regress(case):
    _check_memory(_stream_engine(case), STREAM_SHAPES + [(17, 5, 9)], MEMORIES + [(40, 3)])


@pytest.mark.regress
@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("stages", [1, 2])
def test_rtl_stream_gemm_8x8(dataflow, stages):
    engine = GemmConfig(FMAConfig("bf16", "fp32"), 8, 8, dataflow, stages, 128, 128, 128, "streaming")
    _check_stream(engine, [(40, 33, 37), (64, 64, 64), (17, 9, 3)])


@pytest.mark.regress
@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("cfg", [FMAConfig("bf16", "fp32"), APPROX], ids=["exact", "approx"])
def test_rtl_stream_gemm_deep(dataflow, cfg):
    """The 100 MHz PEs: 12 FMA stages (OS: 12 interleaved row groups, a 48-row tile)."""
    engine = GemmConfig(cfg, 4, 4, dataflow, 12, 128, 128, 128, "streaming")
    _check_stream(engine, [(101, 19, 13), (7, 9, 30), (1, 1, 1)])


@pytest.mark.regress
@pytest.mark.parametrize("case", STREAM_CASES + [(FMAConfig("bf16", "bf16", window=4, step=2, policy="round"),
                                                   2, 2, "os", 2)], ids=_case_id)
def test_rtl_stream_gemm_regress(case):
    _check_stream(_stream_engine(case), STREAM_SHAPES + [(30, 31, 29), (2, 40, 33)])


def test_rtl_stream_gemm_negative_controls():
    """On the streaming engine too: corrupted expected words fail the bit check, a cycle model
    one cycle off fails the cycle check, and a run with stalls is only right with them counted."""
    engine = _stream_engine(STREAM_CASES[0])
    report = check_gemm(engine, (5, 7, 6), corrupt=3)
    assert report["mismatches"] == 3 and not report["passed"] and not report["ok"]

    def no_stalls(engine, M, N, K, stalls=0):
        return gemm_cycles(engine, M, N, K)

    assert not check_gemm(engine, (5, 7, 6), cycle_model=_off_by_one)["cycles_match"]
    busy = check_gemm(engine, (5, 7, 6), backpressure=0.3, idle=0.3, cycle_model=no_stalls)
    assert busy["mismatches"] == 0 and busy["stall_cycles"] > 0 and not busy["cycles_match"]
