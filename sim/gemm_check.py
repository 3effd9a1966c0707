"""Host side of the GEMM regression: random operands, golden result, simulation, cycle check."""

import functools
import tempfile
from pathlib import Path

import numpy as np

from specmx.models.config import FMAConfig, GemmConfig
from specmx.models.formats import encode
from specmx.models.gemm import gemm
from specmx.models.gemm_streams import result_beats, stream_beats
from specmx.models.perf.gemm import gemm_cycles, memory_stall_cycles
from specmx.sim.runner import build_root, run_cocotb, to_verilog

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


@functools.lru_cache(maxsize=8)
def _engine_rtl(engine: GemmConfig):
    """The RTL engine and its Verilog, converted once per configuration in a process (the
    conversion takes seconds; a regression runs many GEMMs on one engine)."""
    from specmx.hdl.gemm import GEMMEngine
    from specmx.hdl.stream_gemm import stream_engine_for
    from specmx.hdl.systolic import PE_MODULE
    rtl = (stream_engine_for if engine.schedule == "streaming" else GEMMEngine)(engine, black_box_pes=True)
    # the PEs are instances of one module, which the simulator compiles once
    return rtl, to_verilog(rtl, "gemm") + to_verilog(rtl.array.pe(), PE_MODULE)


def _stream_vectors(engine, A, B, C0, expected):
    """npz fields of the streaming testbench: operand beats, expected result beats and the
    lanes of each result beat that hold a real column."""
    a, b, c0 = stream_beats(engine, A, B, C0)
    beats, lanes_valid = result_beats(engine, expected)
    return {"a": a, "b": b, "c0": c0, "expected": beats, "lanes_valid": lanes_valid}


def check_gemm(engine: GemmConfig, shape, simulator="verilator", seed=0, backpressure=0.0, idle=0.0,
               corrupt=0, waves=None, cycle_model=gemm_cycles, memory=None, stall_model=memory_stall_cycles):
    """Simulate one GEMM of `shape` (M, N, K) on the RTL engine of `engine`; compare every
    result bit for bit with the golden GEMM and the measured cycles with the cycle model.

    `idle`: probability of a gap between operand words (beats, streaming); `backpressure`:
    probability the result sink is not ready; both are accounted in `predicted_cycles` as the
    cycle model defines (phased: source gaps and held results; streaming: stall cycles).
    `corrupt` > 0 flips a bit in that many expected results, and `cycle_model` replaces the
    cycle model (negative controls: both must make the check fail).
    `memory` = (latency, words per cycle), streaming only: B (the weights) comes from the
    external memory model, and the cycles from the command to the last result must equal the
    unstalled schedule plus `stall_model`'s memory stalls (no random gaps or back-pressure).
    Returns the testbench report plus `predicted_cycles`, `cycles_match`, `ok` (bits and
    cycles both right), `passed` (the simulation's own verdict), `log_dir` and `waves`.
    """
    M, N, K = shape
    for label, v, cap in zip("MNK", shape, engine.buffers):
        if v > cap:
            raise ValueError(f"shape: {label}={v} exceeds the engine's max_{label.lower()}={cap}")
    streaming = engine.schedule == "streaming"
    if memory is not None and (not streaming or idle or backpressure):
        raise ValueError("memory: the weight-memory model runs on a streaming engine without idle or backpressure")
    A, B, C0 = gemm_operands(engine.fma, M, N, K, seed)
    expected = gemm(engine, A, B, C0)
    if corrupt:
        idx = np.random.default_rng(seed + 1).choice(expected.size, corrupt, replace=False)
        expected.ravel()[idx] ^= 1
    rtl, verilog = _engine_rtl(engine)
    widths = [max(1, v.bit_length()) for v in engine.buffers[:2]]
    build_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_root()) as tmp:
        path = Path(tmp) / "gemm.npz"
        fields = _stream_vectors(engine, A, B, C0, expected) if streaming else \
            {"a": A, "b": B, "c0": C0, "expected": expected}
        np.savez(path, **fields, m=M, n=N, k=K)
        result = run_cocotb(rtl, "gemm", "specmx.sim.tb_stream_gemm" if streaming else "specmx.sim.tb_gemm",
                            {"SPECMX_VECTORS": path, "SPECMX_SEED": seed, "SPECMX_IDLE": idle,
                             "SPECMX_BACKPRESSURE": backpressure,
                             "SPECMX_WORD_BITS": f"{engine.fma.in_f.width},{engine.fma.acc_f.width}",
                             "SPECMX_CMD_WIDTHS": ",".join(map(str, widths)),
                             "SPECMX_MEMORY": ",".join(map(str, memory)) if memory else ""}, simulator,
                            verilog_text=verilog, waves=waves)
    report = {"mismatches": None, "cycles": None, "backpressure_cycles": 0, "stall_cycles": 0,
              "first_mismatches": [], "source_gaps": {"a": 0, "b": 0, "c0": 0}}
    report.update(result.report)
    if memory is not None:
        report["memory_stalls"] = stall_model(engine, M, N, K, *memory)
        report["predicted_cycles"] = cycle_model(engine, M, N, K).total_cycles + report["memory_stalls"]
        report["cycles"] = report["cycles_from_cmd"]
    elif streaming:
        pred = cycle_model(engine, M, N, K, stalls=report["stall_cycles"])
        report["predicted_cycles"] = pred.total_cycles
    else:
        gaps = report["source_gaps"]
        pred = cycle_model(engine, M, N, K, input_gaps=(gaps["a"], gaps["b"], gaps["c0"]))
        report["predicted_cycles"] = pred.total_cycles + report["backpressure_cycles"]
    report["cycles_match"] = report["cycles"] == report["predicted_cycles"]
    report["ok"] = bool(result.passed and report["mismatches"] == 0 and report["cycles_match"])
    report.update(passed=result.passed, log_dir=str(result.log_dir),
                  waves=str(result.waves) if result.waves else None)
    return report
