"""Processing elements of the systolic arrays: one FMA plus the registers that pass operands on.

Each PE is its own Amaranth component (its own module in the generated Verilog/RTLIL), so
synthesis can map one PE once and count it R x C times (`BlackBox`), instead of flattening
R x C copies of the FMA into one netlist.

`OSPE` (output stationary): keeps one accumulator. Operands `a`, `b` and their valid bit `v`
arrive together; after `stages` - 1 internal pipeline cuts the FMA result lands in `acc`. `shift`
loads `acc` from `acc_in` instead (the array's column shift chain). `a_out`, `b_out`, `v_out`
are the operands one cycle later, for the PEs to the right and below.

`OSStreamPE` (output stationary, streaming schedule): the FMA's s pipeline stages hold s
independent accumulations (row groups q = 0..s-1, one step each per cycle, so a pipelined PE
still does one MAC per cycle). Steps carry `first`/`last` flags: a first step takes its addend
from the tail of a local C0 chain (`c0`, s words) and pops it; a last step's result, when it
leaves the pipeline, is pushed into a local result chain (`res`, s words) instead of feeding
back. Both chains also shift globally (`c_shift`, `r_shift`) through the column, so C0 of the
next tile shifts in and results of the previous tile shift out while the array computes. Every
register holds while `en` is low (the engine's stall).

`WSStreamPE` (weight stationary, streaming schedule): the weight is double-buffered. The next
fold's weight arrives on a column bus (`wb_in`, s-1 registers per PE) and is captured into
`w_next` when the load token (`wt_in`, s registers per PE) passes, so beat i of a column's
weights lands in PE row i exactly when the token does: weight loading is a wavefront with the
data's slope, and runs while the current fold computes. A row flagged `swap` (a fold's first)
makes `w_next` the weight, for itself and what follows. Registers hold while `en` is low.

`WSPE` (weight stationary): holds one weight `w`, loaded from `w_in` while `w_shift` is high
(`w` also feeds the PE below's `w_in`). A partial sum `psum_in` and its operand `a` enter
together; `stages` cycles later `psum_out` is a*w + psum_in, or psum_in unchanged when `keep`
was low (a padded row past K). `a_out`/`keep_out` pass the operand to the right one cycle later.
"""

from amaranth.hdl import ClockSignal, EnableInserter, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from specmx.models.config import FMAConfig
from specmx.hdl.fma import PREFERENCE, _Pipeline, fma_datapath

__all__ = ["OSPE", "OSStreamPE", "WSPE", "WSStreamPE", "BlackBox", "delay"]


def delay(m, value, cycles, name):
    """`value` delayed by `cycles` registers (0: itself)."""
    for n in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{n}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


class OSPE(wiring.Component):
    """Output-stationary PE (module docstring). Parameters: cfg, stages (1..12)."""

    @staticmethod
    def ports(cfg: FMAConfig):
        w_in, w_acc = cfg.in_f.width, cfg.acc_width
        return wiring.Signature({"a": In(w_in), "b": In(w_in), "v": In(1), "shift": In(1), "acc_in": In(w_acc),
                                 "a_out": Out(w_in), "b_out": Out(w_in), "v_out": Out(1), "acc": Out(w_acc)})

    def __init__(self, cfg: FMAConfig, stages: int):
        self.cfg, self.stages = cfg, stages
        super().__init__(self.ports(cfg))

    def elaborate(self, platform):
        m = Module()
        acc = Signal(self.cfg.acc_width, name="acc_reg")
        pipe = _Pipeline(m, set(PREFERENCE[1:self.stages]), 1)   # the accumulator is the last stage
        result = fma_datapath(m, self.cfg, self.a, self.b, acc, pipe)
        done = delay(m, self.v, self.stages - 1, "v")
        with m.If(self.shift):
            m.d.sync += acc.eq(self.acc_in)
        with m.Elif(done):
            m.d.sync += acc.eq(result)
        m.d.comb += [self.acc.eq(acc), self.a_out.eq(delay(m, self.a, 1, "a_next")),
                     self.b_out.eq(delay(m, self.b, 1, "b_next")), self.v_out.eq(delay(m, self.v, 1, "v_next"))]
        return m


class OSStreamPE(wiring.Component):
    """Output-stationary PE of the streaming schedule (module docstring). Parameters: cfg,
    stages (1..12)."""

    @staticmethod
    def ports(cfg: FMAConfig):
        w_in, w_acc = cfg.in_f.width, cfg.acc_width
        return wiring.Signature({"en": In(1), "a": In(w_in), "b": In(w_in), "v": In(1), "first": In(1), "last": In(1),
                                 "c_shift": In(1), "c_in": In(w_acc), "r_shift": In(1), "r_in": In(w_acc),
                                 "a_out": Out(w_in), "b_out": Out(w_in), "v_out": Out(1), "first_out": Out(1),
                                 "last_out": Out(1), "c_out": Out(w_acc), "r_out": Out(w_acc)})

    def __init__(self, cfg: FMAConfig, stages: int):
        self.cfg, self.stages = cfg, stages
        super().__init__(self.ports(cfg))

    def elaborate(self, platform):
        m = Module()
        s, w_acc = self.stages, self.cfg.acc_width
        acc = Signal(w_acc, name="acc_reg")
        c0 = [Signal(w_acc, name=f"c0_{n}") for n in range(s)]
        res = [Signal(w_acc, name=f"res_{n}") for n in range(s)]
        pipe = _Pipeline(m, set(PREFERENCE[1:s]), 1)          # the accumulator is the last stage
        result = fma_datapath(m, self.cfg, self.a, self.b, Mux(self.first, c0[-1], acc), pipe)
        done = delay(m, self.v, s - 1, "v")
        done_last = delay(m, self.v & self.last, s - 1, "last")
        with m.If(done):
            m.d.sync += acc.eq(result)
        with m.If(self.c_shift | (self.v & self.first)):        # global shift, or pop the addend
            m.d.sync += [c0[0].eq(self.c_in)] + [c0[n].eq(c0[n - 1]) for n in range(1, s)]
        with m.If(self.r_shift | done_last):                    # global shift, or push a result
            m.d.sync += [res[0].eq(Mux(self.r_shift, self.r_in, result))]
            m.d.sync += [res[n].eq(res[n - 1]) for n in range(1, s)]
        m.d.comb += [self.c_out.eq(c0[-1]), self.r_out.eq(res[-1]),
                     self.a_out.eq(delay(m, self.a, 1, "a_next")), self.b_out.eq(delay(m, self.b, 1, "b_next")),
                     self.v_out.eq(delay(m, self.v, 1, "v_next")),
                     self.first_out.eq(delay(m, self.first, 1, "first_next")),
                     self.last_out.eq(delay(m, self.last, 1, "last_next"))]
        return EnableInserter(self.en)(m)


class WSPE(wiring.Component):
    """Weight-stationary PE (module docstring). Parameters: cfg, stages (1..12)."""

    @staticmethod
    def ports(cfg: FMAConfig):
        w_in, w_acc = cfg.in_f.width, cfg.acc_width
        return wiring.Signature({"a": In(w_in), "keep": In(1), "psum_in": In(w_acc), "w_in": In(w_in),
                                 "w_shift": In(1), "a_out": Out(w_in), "keep_out": Out(1),
                                 "psum_out": Out(w_acc), "w": Out(w_in)})

    def __init__(self, cfg: FMAConfig, stages: int):
        self.cfg, self.stages = cfg, stages
        super().__init__(self.ports(cfg))

    def elaborate(self, platform):
        m = Module()
        weight = Signal(self.cfg.in_f.width, name="w_reg")
        with m.If(self.w_shift):
            m.d.sync += weight.eq(self.w_in)
        pipe = _Pipeline(m, set(PREFERENCE[:self.stages]) - {"out"}, 1)  # "out" is psum_out itself
        result = fma_datapath(m, self.cfg, self.a, weight, self.psum_in, pipe)
        bypass = delay(m, self.psum_in, self.stages - 1, "bypass")
        keep_late = delay(m, self.keep, self.stages - 1, "keep")
        psum = Signal(self.cfg.acc_width, name="psum_reg")
        m.d.sync += psum.eq(Mux(keep_late, result, bypass))
        m.d.comb += [self.psum_out.eq(psum), self.w.eq(weight),
                     self.a_out.eq(delay(m, self.a, 1, "a_next")),
                     self.keep_out.eq(delay(m, self.keep, 1, "keep_next"))]
        return m


class WSStreamPE(wiring.Component):
    """Weight-stationary PE of the streaming schedule (module docstring). Parameters: cfg,
    stages (1..12)."""

    @staticmethod
    def ports(cfg: FMAConfig):
        w_in, w_acc = cfg.in_f.width, cfg.acc_width
        return wiring.Signature({"en": In(1), "a": In(w_in), "keep": In(1), "swap": In(1), "psum_in": In(w_acc),
                                 "wb_in": In(w_in), "wt_in": In(1), "a_out": Out(w_in), "keep_out": Out(1),
                                 "swap_out": Out(1), "psum_out": Out(w_acc), "wb_out": Out(w_in),
                                 "wt_out": Out(1)})

    def __init__(self, cfg: FMAConfig, stages: int):
        self.cfg, self.stages = cfg, stages
        super().__init__(self.ports(cfg))

    def elaborate(self, platform):
        m = Module()
        s = self.stages
        weight = Signal(self.cfg.in_f.width, name="w_reg")
        weight_next = Signal(self.cfg.in_f.width, name="w_next")
        with m.If(self.wt_in):
            m.d.sync += weight_next.eq(self.wb_in)
        with m.If(self.swap):
            m.d.sync += weight.eq(weight_next)
        pipe = _Pipeline(m, set(PREFERENCE[:s]) - {"out"}, 1)         # "out" is psum_out itself
        result = fma_datapath(m, self.cfg, self.a, Mux(self.swap, weight_next, weight), self.psum_in, pipe)
        bypass = delay(m, self.psum_in, s - 1, "bypass")
        keep_late = delay(m, self.keep, s - 1, "keep")
        psum = Signal(self.cfg.acc_width, name="psum_reg")
        m.d.sync += psum.eq(Mux(keep_late, result, bypass))
        m.d.comb += [self.psum_out.eq(psum), self.wb_out.eq(delay(m, self.wb_in, s - 1, "wb")),
                     self.wt_out.eq(delay(m, self.wt_in, s, "wt")),
                     self.a_out.eq(delay(m, self.a, 1, "a_next")),
                     self.keep_out.eq(delay(m, self.keep, 1, "keep_next")),
                     self.swap_out.eq(delay(m, self.swap, 1, "swap_next"))]
        return EnableInserter(self.en)(m)


class BlackBox(wiring.Component):
    """An instance of the module `module_name` with the ports of `signature`, clocked by the `sync`
    domain. For synthesis only: that module is converted once on its own and read beside."""

    def __init__(self, signature, module_name):
        self.module_name = module_name
        super().__init__(signature)

    def elaborate(self, platform):
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for name, member in self.signature.members.items():
            ports[("i_" if member.flow == In else "o_") + name] = getattr(self, name)
        m = Module()
        m.submodules.pe = Instance(self.module_name, **ports)
        return m
