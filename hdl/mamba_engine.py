"""The Mamba engine: the streaming matrix engine for the linear layers with fp32 adders on its
results (biases, the residual), the conv and scan units in tree mode for the SSM, the RMSNorm
unit, the softplus unit behind an fp32 adder (dt's bias), the memory channels, and the
sequencer that runs a verification step's program on them (`hdl.sequencer`), one component
behind stream ports.

The host writes the step's program (`models.perf.engine_program.compile_program` of
`models.perf.engine.step_ops`) into the sequencer over `seq_cmd`, one instruction a cycle, and
starts it; the sequencer then starts each operation on its unit (a beat on `seq_issue_<unit>`)
the cycle after the unit's previous operation and the operations it depends on have ended,
counts the unit's output words to see it end, and lets a unit's input streams pass words only
while one of its operations runs. The data mover that feeds the operations (the external memory:
weights on their own channel, embeddings, starting and stored states; the on-chip activation
buffers) is the host's in the co-simulation
(`sim/tb_mamba_engine.py`), which drives these ports:
  seq_cmd, seq_issue_<queue>, seq_ended, seq_running, seq_finished, seq_error   the sequencer
  mxu_cmd, mxu_a_in, mxu_b_in, mxu_add, mxu_r_out, mxu_busy   the matrix engine (`hdl.stream_gemm`):
      A = a tile of node activations, B = a weight matrix streamed from memory; its C0 input
      is tied to +0 here (a linear layer accumulates from +0, `HardwareOps.linear`); each
      result word r leaves as (r + a1) + a2 through two fp32 adders (`hdl.fadd`), a1 and a2
      from mxu_add (64 bits a lane: a bias, the residual, or -0 for none)
  conv_i, conv_o, conv_s    the conv unit in tree mode (`hdl.conv`), `state_slots` slots
  scan_i, scan_o, scan_s    the scan unit in tree mode (`hdl.scan`), `state_slots` slots
  norm_i, norm_o            the RMSNorm unit (`hdl.rmsnorm`) over d_model: each layer's norm and
                            the final norm
  gnorm_i, gnorm_o          Mamba-2 only: the RMSNorm unit over d_inner / groups, the gated norm
                            (the norm queue's second target: the sequencer runs one at a time)
  fu_i, fu_o                the softplus unit (`hdl.function_unit`), `lanes` words per beat:
                            softplus(dt + dt_bias), the add on an fp32 adder (64 bits a lane in)
  rd_mem -> rd_buf          the memory read channel, `mem_words` 32-bit words a beat: embeddings,
                            starting states, recompute's reloads, from the external memory to the
                            on-chip buffers
  wr_buf -> wr_mem          the memory write channel: stored states or caches, logits, restored
                            states, to the external memory
"""

from dataclasses import replace

from amaranth.hdl import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from specmx.hdl.compose import connect_gated, connect_prefixed, prefixed_members
from specmx.hdl.conv import ConvUnit
from specmx.hdl.fadd import FAddChain
from specmx.hdl.function_unit import FunctionUnit
from specmx.hdl.rmsnorm import RMSNormUnit
from specmx.hdl.scan import ScanUnit
from specmx.hdl.sequencer import StepSequencer
from specmx.hdl.stream_gemm import stream_engine_for
from specmx.models.config import EngineConfig
from specmx.models.perf.engine import ModelDims, unit_configs
from specmx.models.perf.engine_program import queue_targets

__all__ = ["MambaEngine", "engine_gemm", "INPUTS_OF"]

# the input streams of each sequencer target (queue, target index)
INPUTS_OF = {("mxu", 0): ("mxu_cmd", "mxu_a_in", "mxu_b_in", "mxu_add"), ("conv", 0): ("conv_i",), ("scan", 0): ("scan_i",),
             ("norm", 0): ("norm_i",), ("norm", 1): ("gnorm_i",), ("fu", 0): ("fu_i",),
             ("rd", 0): ("rd_mem",), ("wr", 0): ("wr_buf",)}
CHANNELS = (("rd_mem", "rd_buf"), ("wr_buf", "wr_mem"))      # the memory channels: (in, out)
INTERNAL = ("mxu_c_in", "mxu_r_out", "seq_taps", "seq_gate", "fu_i", "adds_i", "adds_o", "dt_add_i", "dt_add_o")


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
                      "scan": ScanUnit(scan, engine.state_slots),
                      "norm": RMSNormUnit(engine.fma, dims.d_model, dims.eps),
                      "fu": FunctionUnit("softplus", engine.lanes),
                      "adds": FAddChain(engine.cols, 2),            # the result stream's bias and residual adds
                      "dt_add": FAddChain(engine.lanes, 1)}         # dt + dt_bias before the softplus
        if dims.family == "mamba2":
            self.units["gnorm"] = RMSNormUnit(engine.fma, dims.d_inner // dims.groups, dims.eps)
        self.sequencer = self.units["seq"] = StepSequencer(queue_targets(dims.family == "mamba2"),
                                                           engine.program_depth)
        beat = stream.Signature(32 * engine.mem_words)
        super().__init__({**prefixed_members(self.units, skip=INTERNAL), "rd_mem": In(beat), "rd_buf": Out(beat),
                          "wr_buf": In(beat), "wr_mem": Out(beat),
                          "mxu_add": In(stream.Signature(64 * engine.cols)),
                          "mxu_r_out": Out(stream.Signature(32 * engine.cols)),
                          "fu_i": In(stream.Signature(64 * engine.lanes))})

    def elaborate(self, platform):
        m = Module()
        seq = self.sequencer
        gates = {name: seq.gate[seq.gate_index[key]] for key, names in INPUTS_OF.items()
                 if key in seq.gate_index for name in names}
        connect_prefixed(m, self, self.units, skip=INTERNAL, gates=gates)
        m.d.comb += [self.mxu.c_in.valid.eq(1), self.mxu.c_in.payload.eq(0)]
        # each result word r with its two addends: (r + a1) + a2
        r, add, adds, on = self.mxu.r_out, self.mxu_add, self.units["adds"], gates["mxu_add"]
        m.d.comb += [adds.i.valid.eq(r.valid & add.valid & on), r.ready.eq(adds.i.ready & add.valid & on),
                     add.ready.eq(adds.i.ready & r.valid & on),
                     adds.i.payload.eq(Cat(*(Cat(r.payload[k], add.payload[64 * k:64 * k + 64])
                                            for k in range(self.engine.cols))))]
        wiring.connect(m, adds.o, wiring.flipped(self.mxu_r_out))
        dt_add = self.units["dt_add"]                     # fu_i: per lane dt, then its bias
        connect_gated(m, self.fu_i, dt_add.i, gates["fu_i"])
        wiring.connect(m, dt_add.o, self.units["fu"].i)
        for src, dst in CHANNELS:                          # a beat per cycle while a transfer runs
            connect_gated(m, getattr(self, src), getattr(self, dst), gates[src])
        for (queue, target, k), bit in seq.tap_index.items():
            out = getattr(self, seq.queues[queue][target][k])
            m.d.comb += seq.taps[bit].eq(out.valid & out.ready)
        return m
