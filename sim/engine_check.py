"""Host side of the Mamba engine co-simulation (`sim/tb_mamba_engine.py`): speculative decoding of
a micro model (either family) with the linear layers on the RTL matrix engine, the conv and scan
on the RTL units, the host as sequencer, checked against the golden run and the cycle model."""

import functools
import json
from dataclasses import asdict

from specmx.models.config import EngineConfig
from specmx.sim.runner import run_cocotb, to_verilog
from specmx.sim.tree_ssm_check import model_config

__all__ = ["MICRO_ENGINE", "check_engine"]

# The co-simulation's engine: a 4x4 weight-stationary matrix engine with 3-stage PEs, one lane,
# 8-node tiles, 8 state slots, a memory that answers after 16 cycles with one 32-bit word (two
# bf16 weights) per cycle: half a weight beat per cycle, so weight folds stall on memory.
MICRO_ENGINE = EngineConfig(rows=4, cols=4, dataflow="ws", pe_stages=3, lanes=1, tile=8, state_slots=8,
                            mem_latency=16, mem_words=1)


def check_engine(family="mamba1", tree=(3, 2, 1), backtrack="store", tokens=8, engine: EngineConfig = MICRO_ENGINE,
                 seed=0, draft="noise0.3", prompt=(1, 2, 3), idle=0.0, backpressure=0.0, simulator="verilator",
                 memory_budget=1 << 20, corrupt_weight=False, corrupt_weight_word=False, wrong_parent=False,
                 wrong_dependency=False, model_error=None, negative_controls=False, waves=None, size="micro"):
    """Run the co-simulation; returns its report (`tokens`, `token_mismatches`, `logit_mismatches`,
    `state_mismatches`, `timing_mismatches`, `measured_cycles`, `predicted_cycles`, ...) with `ok`.
    Without idle and back-pressure every operation's start and end cycle must equal the list
    schedule's (`timed`). `negative_controls`: instead of generating, one verification pass per
    negative control; the report's `controls` says what each caught."""
    from specmx.models.perf.engine import model_dims, unit_configs
    dims = model_dims(model_config(family, size))
    if engine.fma.in_fmt != "bf16" or not engine.fma.exact:
        raise ValueError("engine.fma: the co-simulation runs the default bf16 x bf16 + fp32 exact FMA")
    rtl, verilog = _rtl(engine, dims)
    fields = {k: v for k, v in asdict(engine).items() if k != "fma"}
    case = {"family": family, "size": size, "tree": list(tree) if not isinstance(tree, str) else tree, "backtrack": backtrack,
            "tokens": tokens, "seed": seed, "draft": draft, "prompt": list(prompt), "memory_budget": memory_budget,
            "engine": fields, "idle": idle, "backpressure": backpressure, "corrupt_weight": corrupt_weight,
            "corrupt_weight_word": corrupt_weight_word, "wrong_parent": wrong_parent,
            "wrong_dependency": wrong_dependency, "model_error": model_error,
            "negative_controls": negative_controls,
            "lanes": unit_configs(engine, dims)[1].lanes}          # the scan's: its reduction order
    result = run_cocotb(rtl, "mamba_engine", "specmx.sim.tb_mamba_engine", {"SPECMX_CASE": json.dumps(case)},
                        simulator, verilog_text=verilog, waves=waves)
    report = {"tokens": 0, "token_mismatches": None, "logit_mismatches": None, "state_mismatches": None,
              "timing_mismatches": None}
    report.update(result.report)
    report.update(passed=result.passed, log_dir=str(result.log_dir))
    report["ok"] = bool(result.passed and report["tokens"] == tokens and report["token_mismatches"] == 0
                        and report["logit_mismatches"] == 0 and report["state_mismatches"] == 0
                        and report["timing_mismatches"] == 0 and not report.get("protocol_errors")
                        and report.get("sequencer_errors") == 0
                        and (not report.get("timed") or report["measured_cycles"] == report["predicted_cycles"]))
    return report


@functools.lru_cache(maxsize=4)
def _rtl(engine, dims):
    """The engine and its Verilog (the PEs one module, compiled once), converted once per design."""
    from specmx.hdl.mamba_engine import MambaEngine
    from specmx.hdl.systolic import PE_MODULE
    rtl = MambaEngine(engine, dims)
    return rtl, to_verilog(rtl, "mamba_engine") + to_verilog(rtl.mxu.array.pe(), PE_MODULE)
