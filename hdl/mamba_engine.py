"""The Mamba engine's datapath: the streaming matrix engine for the linear layers and the conv
and scan units in tree mode for the SSM, one component behind stream ports.

The step's program (`models.perf.engine.step_ops`) says what runs where and in which order;
the sequencer that walks it, the external memory (weights on their own channel, embeddings,
starting and stored states) and the RMSNorm / softplus / residual steps are the host's in the
co-simulation (`sim/tb_mamba_engine.py`), which drives these ports:
  mxu_cmd, mxu_a_in, mxu_b_in, mxu_r_out, mxu_busy   the matrix engine (`hdl.stream_gemm`):
      A = a tile of node activations, B = a weight matrix streamed from memory; its C0 input
      is tied to +0 here (a linear layer accumulates from +0, `HardwareOps.linear`)
  conv_i, conv_o, conv_s    the conv unit in tree mode (`hdl.conv`), `state_slots` slots
  scan_i, scan_o, scan_s    the scan unit in tree mode (`hdl.scan`), `state_slots` slots
"""

from dataclasses import replace

from amaranth.hdl import Module
from amaranth.lib import wiring

from specmx.hdl.compose import connect_prefixed, prefixed_members
from specmx.hdl.conv import ConvUnit
from specmx.hdl.scan import ScanUnit
from specmx.hdl.stream_gemm import stream_engine_for
from specmx.models.config import EngineConfig
from specmx.models.perf.engine import ModelDims, unit_configs

__all__ = ["MambaEngine", "engine_gemm"]


def engine_gemm(engine: EngineConfig, dims: ModelDims):
    """The matrix engine's GemmConfig for a model: M up to a tile, K and N up to the widest
    linear layer (in_proj, x_proj, dt_proj, out_proj, the LM head)."""
    widths = (dims.d_model, dims.d_inner, dims.dt_rank, dims.in_proj, dims.dt_rank + 2 * dims.d_state, dims.vocab)
    return replace(engine.gemm, max_n=max(widths), max_k=max(dims.d_model, dims.d_inner, dims.dt_rank))


class MambaEngine(wiring.Component):
    """Parameters: `engine` (EngineConfig), `dims` (ModelDims of the model it runs),
    `black_box_pes` (every PE one module, compiled once). Members: see the module docstring."""

    def __init__(self, engine: EngineConfig, dims: ModelDims, *, black_box_pes=True):
        if engine.state_slots < 2:
            raise ValueError(f"engine.state_slots: tree mode needs at least 2, got {engine.state_slots}")
        if engine.arrays != 1:
            raise ValueError(f"engine.arrays: the RTL engine builds one matrix array; allowed: 1, got {engine.arrays}")
        self.engine, self.dims = engine, dims
        conv, scan = unit_configs(engine, dims)
        self.mxu = stream_engine_for(engine_gemm(engine, dims), black_box_pes=black_box_pes)
        self.units = {"mxu": self.mxu, "conv": ConvUnit(conv, engine.state_slots),
                      "scan": ScanUnit(scan, engine.state_slots)}
        super().__init__(prefixed_members(self.units, skip=("mxu_c_in",)))

    def elaborate(self, platform):
        m = Module()
        connect_prefixed(m, self, self.units, skip=("mxu_c_in",))
        m.d.comb += [self.mxu.c_in.valid.eq(1), self.mxu.c_in.payload.eq(0)]
        return m
