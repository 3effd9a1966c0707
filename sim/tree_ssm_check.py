"""Host side of the tree-SSM co-simulation (`sim/tb_tree_ssm.py`): speculative decoding of a micro
Mamba model (either family) with every conv and SSM step on the tree-mode RTL units and the
linear layers in the hardware numerics model, checked against the golden run."""

import functools
import json
from specmx.models.config import FMAConfig
from specmx.sim.runner import run_cocotb, to_verilog

__all__ = ["build_models", "unit_configs", "check_tree_ssm"]

PRESETS = {"mamba1": "micro", "mamba2": "mamba2-micro"}
SIZES = {"micro": PRESETS, "tiny": {"mamba1": "tiny", "mamba2": "mamba2-tiny"}}   # the engine co-simulation's models


def build_models(case):
    """The target (random micro model, unit-scale embeddings so its logits have a clear winner,
    in the hardware numerics) and the draft (`specdec.make_draft` of it, float arithmetic)."""
    from specmx.models import mamba, mamba2
    from specmx.models.specdec import make_draft
    from specmx.models.ssm_numerics import HardwareOps
    cfg = model_config(case["family"], case.get("size", "micro"))
    target = (mamba2.Mamba2LM if case["family"] == "mamba2" else mamba.MambaLM).random(cfg, seed=case["seed"])
    target.w["backbone.embeddings.weight"] *= 50.0
    draft = make_draft(target, case["draft"], seed=case["seed"])
    target.ops = HardwareOps(FMAConfig(), lanes=case["lanes"])
    return target, draft


def unit_configs(cfg, lanes):
    """(conv unit config, scan unit config) of a model config at `lanes`, as the engine builds
    them (`perf.engine.unit_configs`)."""
    from specmx.models.config import EngineConfig
    from specmx.models.perf.engine import model_dims, unit_configs as engine_units
    return engine_units(EngineConfig(lanes=lanes), model_dims(cfg))


def model_config(family, size="micro"):
    """The co-simulations' model configuration of `family`: `size` micro (2 layers, d_model 32,
    vocab 16) or tiny (2 layers, d_model 64 / 48, vocab 512; the engine co-simulation's larger
    model)."""
    from specmx.models import mamba, mamba2
    name = SIZES[size][family]
    return mamba2.get_preset(name) if family == "mamba2" else mamba.get_preset(name)


def check_tree_ssm(family="mamba1", tree=(3, 2, 1), backtrack="store", tokens=8, lanes=1, slots=8, tile=8,
                   seed=0, draft="noise0.3", prompt=(1, 2, 3), idle=0.0, backpressure=0.0, simulator="verilator",
                   memory_budget=1 << 20, corrupt_weight=False, wrong_parent=False, waves=None):
    """Run the co-simulation; returns its report (`tokens`, `token_mismatches`, `logit_mismatches`,
    `state_mismatches`, `cycle_mismatches`, `unit_runs`, ...) with `ok`."""
    cfg = model_config(family)
    conv, scan = unit_configs(cfg, lanes)
    rtl, verilog = _rtl(conv, scan, slots)
    case = {"family": family, "tree": list(tree) if not isinstance(tree, str) else tree, "backtrack": backtrack,
            "tokens": tokens, "lanes": lanes, "slots": slots, "tile": tile, "seed": seed, "draft": draft,
            "prompt": list(prompt), "memory_budget": memory_budget, "corrupt_weight": corrupt_weight,
            "wrong_parent": wrong_parent}
    result = run_cocotb(rtl, "tree_ssm", "specmx.sim.tb_tree_ssm",
                        {"SPECMX_CASE": json.dumps(case), "SPECMX_IDLE": idle, "SPECMX_BACKPRESSURE": backpressure},
                        simulator, verilog_text=verilog, waves=waves)
    report = {"tokens": 0, "token_mismatches": None, "logit_mismatches": None, "state_mismatches": None,
              "cycle_mismatches": None}
    report.update(result.report)
    report.update(passed=result.passed, log_dir=str(result.log_dir))
    report["ok"] = bool(result.passed and report["tokens"] == tokens and report["token_mismatches"] == 0
                        and report["logit_mismatches"] == 0 and report["state_mismatches"] == 0
                        and report["cycle_mismatches"] == 0 and not report.get("protocol_errors"))
    return report


@functools.lru_cache(maxsize=4)
def _rtl(conv, scan, slots):
    """The component and its Verilog (converted once per design)."""
    from specmx.hdl.tree_ssm import TreeSSM
    rtl = TreeSSM(conv, scan, slots)
    return rtl, to_verilog(rtl, "tree_ssm")
