"""Spec objects: one frozen, validated dataclass per concept, shared by every consumer.

The same object drives the RTL generator, the golden model, the cycle model, the testbench,
synthesis and the command line; `specmx.spec` loads them from YAML. They are plain Python (no
Amaranth, no cocotb) so golden and cycle models can import them.

Every constructor checks its arguments at once and raises ValueError whose message starts with
the field name (`rows: must be an integer >= 1, got 0`); the YAML loader prefixes the key path.
Limits that only a simulator, a buffer or a synthesis run imposes are checked by the command that
needs them, not here: a 128x128 array is a valid spec for the cycle model.
"""

from dataclasses import dataclass, field
from typing import Optional

from specmx.models.formats import FloatFormat, get_format

__all__ = ["MAX_FMA_STAGES", "FMAConfig", "WideView", "InternalFormat", "GemmConfig", "PerfConfig", "SSMConfig", "EngineConfig", "FAMILIES",
           "IN_FORMATS", "ACC_FORMATS", "NORM_POLICIES", "ROUNDINGS", "SUBNORMAL_MODES", "STEPS",
           "DATAFLOWS", "SCHEDULES"]

IN_FORMATS = ("bf16", "fp16", "e4m3", "e5m2")
ACC_FORMATS = ("bf16", "fp16", "fp32")
NORM_POLICIES = ("round", "flush", "internal")
ROUNDINGS = ("rne", "rtz")
SUBNORMAL_MODES = ("ieee", "flush")
STEPS = (1, 2, 4, 8)
MAX_FMA_STAGES = 12      # pipeline cut points of the FMA datapath (hdl.fma.CUT_POINTS)


@dataclass(frozen=True)
class InternalFormat:
    """Unnormalized accumulator word: [sign | exponent (exp_bits) | significand (sig_bits)].

    The significand has an explicit leading bit and may carry leading zeros. value =
    sig * 2**(E - bias - (sig_bits - 1)). E == 0 with sig == 0 is zero; E all ones is infinity
    (sig == 0) or NaN (sig != 0). There are no subnormals: results below E == 1 flush to zero.
    """

    exp_bits: int
    sig_bits: int

    @property
    def width(self):
        return 1 + self.exp_bits + self.sig_bits

    @property
    def bias(self):
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def exp_all_ones(self):
        return (1 << self.exp_bits) - 1

    @property
    def canonical_nan(self):
        return (self.exp_all_ones << self.sig_bits) | (1 << (self.sig_bits - 1))

    @property
    def inf_bits(self):
        return self.exp_all_ones << self.sig_bits


def _choice(field, value, allowed):
    if value not in allowed:
        raise ValueError(f"{field}: unknown value {value!r}; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class FMAConfig:
    """One FMA design point; the same object drives the golden model, the RTL and the tests.

    Parameters
    ----------
    in_fmt : {"bf16", "fp16", "e4m3", "e5m2"}
        Format of the multiplicands a and b.
    acc_fmt : {"bf16", "fp16", "fp32"}
        Format of the addend c and the result (IEEE word; see `policy` for the internal word).
    window : int or None
        Leading-zero detector window in bits (None: the whole sum, i.e. exact).
    step : int
        Granularity of the normalizing left shift: 1, 2, 4 or 8 (1: any amount).
    policy : {"round", "flush", "internal"}
        What an unnormalized sum becomes (module docstring). Irrelevant in exact mode except
        "internal", which changes the accumulator word.
    rounding : {"rne", "rtz"}
    subnormals : {"ieee", "flush"}
        "flush": subnormal inputs read as zero and subnormal results written as zero (same sign).
    e4m3_overflow : {"nan", "saturate"}
        Only used when converting float values to E4M3 operands (`formats.encode`).
    sum_bits : int or None
        Data bits of the alignment/sum register (None: 2*p_in + p_c + 2, wide enough for one
        correct rounding). Fewer bits make the aligner, adder, leading-zero counter and
        normalizing shifter narrower: the lower term's bits past the register go to the sticky
        bit, so a deep cancellation loses them (an approximate FMA, not correctly rounded).
        At least max(2*p_in, p_c) + 2; from p_c + 3 up, normal terms of the same sign still
        round correctly. `fma` only: `fma_wide` keeps its full register.
    """

    in_fmt: str = "bf16"
    acc_fmt: str = "fp32"
    window: Optional[int] = None
    step: int = 1
    policy: str = "round"
    rounding: str = "rne"
    subnormals: str = "ieee"
    e4m3_overflow: str = "nan"
    sum_bits: Optional[int] = None

    def __post_init__(self):
        _choice("in_fmt", self.in_fmt, IN_FORMATS)
        _choice("acc_fmt", self.acc_fmt, ACC_FORMATS)
        _choice("policy", self.policy, NORM_POLICIES)
        _choice("rounding", self.rounding, ROUNDINGS)
        _choice("subnormals", self.subnormals, SUBNORMAL_MODES)
        _choice("e4m3_overflow", self.e4m3_overflow, ("nan", "saturate"))
        if isinstance(self.step, bool) or self.step not in STEPS:
            raise ValueError(f"step: must be one of {', '.join(map(str, STEPS))} (shifter levels are "
                             f"powers of two), got {self.step!r}")
        if self.sum_bits is not None:
            low, high = max(self.prod_width, self.c_width) + 2, self.prod_width + self.c_width + 2
            if isinstance(self.sum_bits, bool) or not isinstance(self.sum_bits, int) or not low <= self.sum_bits <= high:
                raise ValueError(f"sum_bits: must be an integer in {low}..{high} (the full sum register of "
                                 f"{self.in_fmt}*{self.in_fmt}+{self.acc_fmt}) or None, got {self.sum_bits!r}")
        if self.window is not None:
            if isinstance(self.window, bool) or not isinstance(self.window, int) or \
                    not 1 <= self.window <= self.sum_width:
                raise ValueError(f"window: must be an integer in 1..{self.sum_width} (the sum width "
                                 f"of {self.in_fmt}*{self.in_fmt}+{self.acc_fmt}) or None, "
                                 f"got {self.window!r}")
            if self.window % self.step:
                raise ValueError(f"window: must be a multiple of step={self.step}, got {self.window}")
        if self.policy == "flush" and self.step != 1:
            raise ValueError("policy: 'flush' needs step=1 (a step residue would flush most "
                             "cancellations); use policy 'round' or 'internal' with step > 1")

    # --- derived widths ---------------------------------------------------------------------
    @property
    def in_f(self) -> FloatFormat:
        return get_format(self.in_fmt)

    @property
    def acc_f(self) -> FloatFormat:
        return get_format(self.acc_fmt)

    @property
    def internal(self) -> bool:
        """True when c and r are internal (unnormalized) accumulator words."""
        return self.policy == "internal"

    @property
    def exact(self) -> bool:
        """True when normalization is exact (the result is correctly rounded IEEE)."""
        return self.window is None and self.step == 1 and not self.internal and self.sum_bits is None

    @property
    def int_f(self) -> InternalFormat:
        return InternalFormat(self.acc_f.exp_bits + 2, self.acc_f.precision + self.step - 1)

    @property
    def prod_width(self):
        return 2 * self.in_f.precision

    @property
    def c_width(self):
        """Significand width of the addend c (and of the rounded result)."""
        return self.int_f.sig_bits if self.internal else self.acc_f.precision

    @property
    def sum_width(self):
        """Data bits of the alignment/sum register (one carry bit sits above them)."""
        return self.prod_width + self.c_width + 2 if self.sum_bits is None else self.sum_bits

    @property
    def lzd_window(self):
        """Bits the leading-zero detector examines (sum_width + 1 = the whole sum)."""
        return self.sum_width + 1 if self.window is None else self.window

    @property
    def acc_width(self):
        """Width of the accumulator word on the c and r ports."""
        return self.int_f.width if self.internal else self.acc_f.width

    @property
    def norm_label(self):
        sum_ = f",sum={self.sum_bits}" if self.sum_bits is not None else ""
        if self.window is None and self.step == 1:
            return ("exact" if not self.internal else "policy=internal") if not sum_ else f"policy={self.policy}{sum_}"
        w = f"window={self.window}," if self.window is not None else ""
        return f"{w}step={self.step},policy={self.policy}{sum_}"

    @property
    def name(self):
        return f"{self.in_fmt}x{self.in_fmt}+{self.acc_fmt}:{self.norm_label}:{self.rounding}"

    @property
    def slug(self):
        """`name` as a file-name fragment."""
        return self.name.replace(":", "_").replace(",", "_").replace("=", "")

    @staticmethod
    def parse_norm(text):
        """Parse '--norm' text: 'exact' or 'window=4,step=2,policy=round[,sum=30]' into keyword
        args (`sum` is `sum_bits`)."""
        if text == "exact":
            return {}
        out = {}
        for part in text.split(","):
            key, sep, val = part.partition("=")
            key = key.strip()
            if not sep or key not in ("window", "step", "policy", "sum"):
                raise ValueError(f"norm: cannot parse {part!r}; expected 'exact' or a list of "
                                 "window=N, step=N, policy=round|flush|internal, sum=N")
            if key == "policy":
                out[key] = val.strip()
            else:
                try:
                    out["sum_bits" if key == "sum" else key] = int(val)
                except ValueError:
                    raise ValueError(f"{key}: expected an integer, got {val!r}") from None
        return out



def _integer(name, value, low=1, high=None):
    """Check an integer field: TypeError-free, one ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name}: must be {rng}, got {value}")


DATAFLOWS = ("os", "ws")
# "phased": load whole matrices into on-chip buffers, compute, then drain (hdl.gemm).
# "streaming": operands and results stream in tile order, overlapping load, compute and drain
# (hdl.stream_gemm).
SCHEDULES = ("phased", "streaming")


class WideView:
    """`cfg` with multiplicand b in the accumulator format (IEEE words): the product is
    p_in + p_acc bits wide and the sum register grows to match (58 bits for bf16 x fp32)."""

    def __init__(self, cfg):
        self._cfg = cfg
        self.b_f = cfg.acc_f
        self.prod_width = cfg.in_f.precision + cfg.acc_f.precision
        self.sum_width = self.prod_width + cfg.c_width + 2
        self.lzd_window = self.sum_width + 1 if cfg.window is None else cfg.window

    def __getattr__(self, name):
        return getattr(self._cfg, name)


@dataclass(frozen=True)
class GemmConfig:
    """The systolic matrix engine (`hdl.gemm.GEMMEngine`): the one object that the RTL, the
    golden GEMM, the cycle model, the check, synthesis and the CLI take, in that argument order
    (config first, then the problem).

    Parameters
    ----------
    fma : FMAConfig
        Arithmetic of every processing element; operand widths for the cycle model come from it.
    rows, cols : int
        Array size R x C (>= 1; the RTL check and synthesis set their own upper limits).
    dataflow : {"os", "ws"}
        Output or weight stationary.
    pe_stages : int
        FMA pipeline stages per PE (1..MAX_FMA_STAGES = 12).
    max_m, max_n, max_k : int
        Largest GEMM the RTL engine accepts: the on-chip buffers of the phased engine, the
        command counters of the streaming one (the cycle model ignores them).
    schedule : {"phased", "streaming"}
        Phased: load, compute, drain one after the other through whole-matrix buffers.
        Streaming: vector-wide streams in tile order, load and drain overlapped with compute.
    """

    fma: FMAConfig = field(default_factory=FMAConfig)
    rows: int = 4
    cols: int = 4
    dataflow: str = "os"
    pe_stages: int = 1
    max_m: int = 32
    max_n: int = 32
    max_k: int = 32
    schedule: str = "phased"

    def __post_init__(self):
        if not isinstance(self.fma, FMAConfig):
            raise ValueError(f"fma: must be an FMAConfig, got {self.fma!r}")
        _integer("rows", self.rows)
        _integer("cols", self.cols)
        _choice("dataflow", self.dataflow, DATAFLOWS)
        _integer("pe_stages", self.pe_stages, 1, MAX_FMA_STAGES)
        for name in ("max_m", "max_n", "max_k"):
            _integer(name, getattr(self, name))
        _choice("schedule", self.schedule, SCHEDULES)

    @property
    def in_bytes(self):
        """Bytes of one A or B word on the interface."""
        return (self.fma.in_f.width + 7) // 8

    @property
    def acc_bytes(self):
        """Bytes of one C0 or result word on the interface (IEEE accumulator format)."""
        return (self.fma.acc_f.width + 7) // 8

    @property
    def buffers(self):
        return (self.max_m, self.max_n, self.max_k)

    @property
    def name(self):
        tail = "_stream" if self.schedule == "streaming" else ""
        return f"{self.rows}x{self.cols}_{self.dataflow}_s{self.pe_stages}_{self.fma.slug}{tail}"


@dataclass(frozen=True)
class PerfConfig:
    """Operating point of a cycle-model query: clock and interface bandwidth.

    Parameters
    ----------
    clock_mhz : float
        Engine clock (> 0).
    bandwidth : float or None
        Bytes per cycle of the operand/result interface, or None for the engine's own
        one-word-per-stream-per-cycle rate.
    """

    clock_mhz: float = 300.0
    bandwidth: Optional[float] = None

    def __post_init__(self):
        for name in ("clock_mhz", "bandwidth"):
            v = getattr(self, name)
            if v is None and name == "bandwidth":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{name}: must be a number, got {v!r}")
            if not v > 0 or v != v or v == float("inf"):
                raise ValueError(f"{name}: must be a finite number > 0, got {v}")


FAMILIES = ("mamba1", "mamba2")


@dataclass(frozen=True)
class SSMConfig:
    """The SSM datapath (function units, conv1d, selective scan, RMSNorm) of one Mamba layer:
    the object that its RTL, hardware numerics model, cycle models and checks take.

    Parameters
    ----------
    fma : FMAConfig
        Arithmetic of every multiply-add (operands in `fma.in_fmt`, state and results in
        `fma.acc_fmt`, which must be fp32 here: the function units work on fp32 words).
    family : {"mamba1", "mamba2"}
        Mamba-1: A[d, n] per channel, B/C shared; Mamba-2: scalar A per head, B/C per group.
    d_inner, d_state : int
        Channels and state size per channel.
    heads, groups : int
        Mamba-2 heads (dividing d_inner; head_dim = d_inner / heads) and B/C groups (dividing
        heads). Mamba-1 ignores them.
    kernel : int
        Depthwise conv1d kernel size.
    lanes : int
        Elements per cycle of each unit (state elements in the scan, channels in the conv).
    """

    fma: FMAConfig = field(default_factory=FMAConfig)
    family: str = "mamba1"
    d_inner: int = 16
    d_state: int = 8
    heads: int = 4
    groups: int = 1
    kernel: int = 4
    lanes: int = 4

    def __post_init__(self):
        if not isinstance(self.fma, FMAConfig):
            raise ValueError(f"fma: must be an FMAConfig, got {self.fma!r}")
        if self.fma.acc_fmt != "fp32":
            raise ValueError(f"fma.acc_fmt: the SSM datapath keeps its state and function units in "
                             f"fp32; allowed: fp32, got {self.fma.acc_fmt!r}")
        if self.fma.internal:
            raise ValueError("fma.policy: the SSM datapath keeps IEEE state words; allowed: round, flush")
        _choice("family", self.family, FAMILIES)
        for name in ("d_inner", "d_state", "heads", "groups", "kernel", "lanes"):
            _integer(name, getattr(self, name))
        if self.family == "mamba2":
            if self.d_inner % self.heads:
                raise ValueError(f"heads: must divide d_inner={self.d_inner}, got {self.heads}")
            if self.heads % self.groups:
                raise ValueError(f"groups: must divide heads={self.heads}, got {self.groups}")

    @property
    def head_dim(self):
        return self.d_inner // self.heads if self.family == "mamba2" else 1


@dataclass(frozen=True)
class EngineConfig:
    """The Mamba engine (speculative tree verification): a streaming matrix engine for the linear
    layers, the SSM units (conv, scan, RMSNorm, function units) for the recurrences, a state
    buffer and two memory channels. The model's dimensions come from the model, not from here.

    Parameters
    ----------
    fma : FMAConfig
        Arithmetic of every multiply-add, matrix engine and SSM units alike (fp32 accumulator,
        IEEE words: the SSM state is fp32).
    rows, cols, dataflow, pe_stages :
        The streaming matrix engine (`GemmConfig` fields; `gemm` builds it).
    lanes : int
        Channels per cycle of the conv unit and state elements per cycle of the scan unit.
    tile : int
        Tree nodes per tile: the M of every linear layer (1..4096).
    state_slots : int
        State buffer: per-layer states (conv window + SSM state) held at once. A tree that needs
        more live states is refused.
    mem_latency : int
        Cycles from a memory request to its first word (>= 0).
    mem_words : int
        32-bit words per cycle of each memory channel (the weight channel of the matrix engine,
        and the read and write channels for embeddings, states, caches and logits).
    memory_budget : int
        Bytes of stored per-node states up to which `hybrid` backtracking stores (above it,
        it recomputes), as `specdec`'s `memory_budget`.
    arrays : int
        Matrix arrays side by side, each computing 1/arrays of every layer's outputs with its
        share of the weight channel (the system model's way to grow the engine past the width
        where a weight-stationary pass's fill latency dominates; the RTL builds one array).
    program_depth : int
        Instructions per unit queue of the RTL sequencer (`hdl.sequencer`): a step whose program
        has more operations on one unit is refused (1..4096).
    """

    fma: FMAConfig = field(default_factory=FMAConfig)
    rows: int = 4
    cols: int = 4
    dataflow: str = "ws"
    pe_stages: int = 12
    lanes: int = 4
    tile: int = 8
    state_slots: int = 16
    mem_latency: int = 32
    mem_words: int = 4
    memory_budget: int = 1 << 20
    arrays: int = 1
    program_depth: int = 64

    def __post_init__(self):
        if not isinstance(self.fma, FMAConfig):
            raise ValueError(f"fma: must be an FMAConfig, got {self.fma!r}")
        if self.fma.acc_fmt != "fp32" or self.fma.internal:
            raise ValueError(f"fma.acc_fmt: the engine keeps fp32 states and IEEE words; allowed: fp32 with "
                             f"policy round or flush, got {self.fma.acc_fmt} with policy {self.fma.policy}")
        _integer("rows", self.rows)
        _integer("cols", self.cols)
        _choice("dataflow", self.dataflow, DATAFLOWS)
        _integer("pe_stages", self.pe_stages, 1, MAX_FMA_STAGES)
        _integer("lanes", self.lanes)
        _integer("tile", self.tile, 1, 4096)
        _integer("state_slots", self.state_slots)
        _integer("mem_latency", self.mem_latency, 0)
        _integer("mem_words", self.mem_words)
        _integer("memory_budget", self.memory_budget, 0)
        _integer("arrays", self.arrays, 1, 1024)
        _integer("program_depth", self.program_depth, 1, 4096)

    @property
    def gemm(self):
        """The matrix engine: streaming schedule, buffers sized for one tile."""
        return GemmConfig(fma=self.fma, rows=self.rows, cols=self.cols, dataflow=self.dataflow,
                          pe_stages=self.pe_stages, schedule="streaming", max_m=self.tile)

    def ssm(self, family, d_inner, d_state, heads=1, groups=1, kernel=4):
        """The SSM units for one model's dimensions."""
        return SSMConfig(fma=self.fma, family=family, d_inner=d_inner, d_state=d_state, heads=heads,
                         groups=groups, kernel=kernel, lanes=self.lanes)
