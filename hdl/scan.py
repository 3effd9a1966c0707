"""Selective-scan unit (Mamba-1 and Mamba-2) with the D skip and the SiLU gate.

Per token and channel c (state elements n = 0..N-1), in the hardware numerics of
`models.ssm_numerics.HardwareOps.ssm_step` / `ssm2_step` followed by `gate`:

    dA[n] = exp(dt * A[n])              (Mamba-2: one A per head, one exp per beat)
    dA = hi + lo                        (two bf16 operand words, lo = bf16(dA - hi))
    h[n] = lo*h[n] + (hi*h[n] + bf16(dt*u) * B[n])
    y = sum_n C[n] h[n] + D*u           (lane l sums n = l, l + lanes, ...; then a pairwise tree)
    out = bf16(silu(z)) * y

Stream protocol: for each token, channels 0..d_inner-1 in order, each as d_state / lanes
beats; beat j of a channel carries state elements n = j*lanes + l in lane l. A beat carries per
lane the B and C operands (and Mamba-1's A[c, n]); per channel dt, u and z (fp32 words: the
softplus, conv and in_proj results, rounded to operands on entry), D (bf16) and Mamba-2's A;
and a `clear` bit that starts a new sequence (the state reads as zeros). Mamba-2's grouped
B/C arrive as the group's values for each head's channels.

The state lives in an on-chip memory of d_inner * d_state / lanes words of lanes fp32 values,
read in stage 6 and written back at the end of stage 7 (the same word comes back after
d_inner * d_state / lanes >= 2 beats, so no forwarding is needed). One output word per channel
leaves `scan_latency(ssm)` cycles after the channel's last beat; one beat per cycle; a refused
result stalls everything.

Tree mode (`slots` > 1), for speculative tree verification: the state memory holds `slots`
states, and every beat names the slot its token reads (`src`, the parent's state) and the one
it writes (`dst`: the parent's own slot when a chain continues in place). A `load` token writes
the beats' `h` words (a starting state from memory) into `dst` and computes nothing; every
other token also sends each beat's new state (lanes fp32 words) on the state stream `s`, which
the engine writes to memory for `store` backtracking. A refused state word stalls everything
too.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from specmx.hdl.conv import round_to_operand
from specmx.hdl.fma import FMA, delay, delay_valid
from specmx.hdl.function_unit import FunctionUnit, Pipe
from specmx.hdl.lockstep import lockstep_enable
from specmx.models.config import SSMConfig
from specmx.models.perf.ssm import scan_beats, scan_latency

__all__ = ["ScanUnit", "scan_layout", "scan_records"]

ONE_BF16 = 0x3F80


def scan_layout(ssm: SSMConfig, slots=1):
    """The input beat: per lane {A (Mamba-1), B, C} bf16; then dt, u, z fp32; D bf16; A bf16
    (Mamba-2); clear; in tree mode (slots > 1) also the slots read and written, the load flag
    and the lanes' state words of a load."""
    mamba1 = ssm.family == "mamba1"
    lane = data.StructLayout({**({"A": 16} if mamba1 else {}), "B": 16, "C": 16})
    tree = {"src": range(slots), "dst": range(slots), "load": 1, "h": 32 * ssm.lanes} if slots > 1 else {}
    return data.StructLayout({"lanes": data.ArrayLayout(lane, ssm.lanes), "dt": 32, "u": 32, "z": 32,
                              "D": 16, **({} if mamba1 else {"A": 16}), "clear": 1, **tree})


def scan_records(ssm: SSMConfig, v):
    """One record per beat in stream order (`scan_layout`) of the arrays `scan_stream` takes
    (`models.ssm_stimulus.scan_vectors`; in tree mode also src, dst, load and h per token),
    for `hdl.compose.pack_struct`."""
    L, S = ssm.lanes, ssm.d_state // ssm.lanes
    mamba1 = ssm.family == "mamba1"
    P = 1 if mamba1 else ssm.d_inner // ssm.heads
    per_group = 1 if mamba1 else ssm.heads // ssm.groups
    for t in range(v["u"].shape[0]):
        for c in range(ssm.d_inner):
            head = c // P
            bc = (lambda key: v[key][t]) if mamba1 else (lambda key: v[key][t, head // per_group])
            for j in range(S):
                lanes = [{"B": bc("B")[j * L + l], "C": bc("C")[j * L + l],
                          **({"A": v["A"][c, j * L + l]} if mamba1 else {})} for l in range(L)]
                tree = {} if "src" not in v else {
                    "src": v["src"][t], "dst": v["dst"][t], "load": v["load"][t],
                    "h": sum(int(w) << (32 * l) for l, w in enumerate(v["h"][t].reshape(ssm.d_inner, -1)[c, j * L:(j + 1) * L]))}
                yield {"lanes": lanes, "dt": v["dt"][t, head], "u": v["u"][t, c], "z": v["z"][t, c],
                       "D": v["D"][head], **({} if mamba1 else {"A": v["A"][head]}), "clear": v["clear"][t], **tree}


def check_scan_shape(ssm: SSMConfig):
    """The shapes the scan unit takes (ValueError naming the field otherwise)."""
    if ssm.d_state % ssm.lanes:
        raise ValueError(f"lanes: must divide d_state={ssm.d_state}, got {ssm.lanes}")
    if scan_beats(ssm) < 2:
        raise ValueError(f"d_inner: the scan unit needs d_inner * d_state / lanes >= 2 beats per token, "
                         f"got {scan_beats(ssm)}")
    if ssm.fma.in_fmt != "bf16":
        raise ValueError(f"fma.in_fmt: the scan unit takes bf16 operands; allowed: bf16, got {ssm.fma.in_fmt!r}")


class ScanUnit(wiring.Component):
    """Selective scan + D skip + gate, `ssm.lanes` state elements per cycle.

    Parameters
    ----------
    ssm : SSMConfig
        family, d_inner, d_state (a multiple of lanes), lanes, and the FMA arithmetic.
    slots : int
        States the state memory holds: 1 for one sequence, more for tree mode.

    Members
    -------
    i : In(stream of scan_layout(ssm, slots))
    o : Out(stream of one fp32 word per channel)
    s : Out(stream of lanes fp32 words)      tree mode only: each beat's new state
    """

    def __init__(self, ssm: SSMConfig, slots=1):
        self._MustUse__silence = True          # no "never used" warning when a check fails
        if not isinstance(ssm, SSMConfig):
            raise TypeError(f"ssm must be an SSMConfig, not {ssm!r}")
        check_scan_shape(ssm)
        if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 4096:
            raise ValueError(f"slots: must be an integer in 1..4096, got {slots!r}")
        self.ssm, self.slots = ssm, slots
        self.latency = scan_latency(ssm)
        members = {"i": In(stream.Signature(scan_layout(ssm, slots))), "o": Out(stream.Signature(32))}
        if slots > 1:
            members["s"] = Out(stream.Signature(32 * ssm.lanes))
        super().__init__(members)
        self._MustUse__silence = False

    def _fma(self, m, en, name, a, b, c, stages=1, wide=False):
        unit = FMA(self.ssm.fma, stages=stages, wide=wide)
        m.submodules[name] = unit
        m.d.comb += [unit.a.eq(a), unit.b.eq(b), unit.c.eq(c), unit.en.eq(en), unit.valid.eq(1)]
        return unit.r

    def elaborate(self, platform):
        m = Module()
        ssm, L = self.ssm, self.ssm.lanes
        S, words = ssm.d_state // L, scan_beats(ssm)
        mamba1 = ssm.family == "mamba1"
        tree = self.slots > 1
        take = Signal()
        o_valid, s_valid = Signal(), Signal()        # offered by the pipeline, sent or not
        en = lockstep_enable(m, [(self.o, o_valid)] + ([(self.s, s_valid)] if tree else []))
        m.d.comb += [self.i.ready.eq(en), take.eq(self.i.valid & en)]
        beat = self.i.payload
        load = beat.load if tree else Const(0)

        def later(value, cycles, name):
            return delay(m, en, value, cycles, name)

        # position in the stream: beat j of a channel, state memory address
        j = Signal(range(max(S, 2)))
        addr = Signal(range(max(words, 2)))
        with m.If(take):
            m.d.sync += [j.eq(Mux(j == S - 1, 0, j + 1)), addr.eq(Mux(addr == words - 1, 0, addr + 1))]
        first, last = j == 0, j == S - 1

        # stage 0 -> 1: dt*A (per lane, or once per beat for Mamba-2) and dt*u
        dt, u = round_to_operand(m, beat.dt, "dt"), round_to_operand(m, beat.u, "u")
        a_words = [beat.lanes[l].A for l in range(L)] if mamba1 else [beat.A]
        dtA = [self._fma(m, en, f"dtA{k}", dt, a, 0) for k, a in enumerate(a_words)]
        dtu = round_to_operand(m, self._fma(m, en, "dtu", dt, u, 0), "dtu")
        # stage 1 -> 2: dBu = bf16(dt*u) * B, then on to stage 6
        dBu = [later(self._fma(m, en, f"dBu{l}", dtu, later(beat.lanes[l].B, 1, f"B{l}_"), 0), 4, f"dBu{l}_")
               for l in range(L)]
        # stages 1..5: exp; 5 -> 6: the hi/lo split of dA
        hi, lo = [], []
        exp = FunctionUnit("exp")
        exp._MustUse__silence = True                 # only its datapath is embedded
        for k, x in enumerate(dtA):
            dA = exp.datapath(m, Pipe(m, en), x, f"exp{k}_")
            h = round_to_operand(m, dA, f"hi{k}")
            diff = self._fma(m, en, f"split{k}", ONE_BF16, Cat(Const(0, 16), h ^ 0x8000), dA, wide=True)
            hi.append(later(h, 1, f"hi{k}_"))
            lo.append(round_to_operand(m, diff, f"lo{k}"))
        hi, lo = (hi * L, lo * L) if not mamba1 else (hi, lo)

        # stage 6: read the state; 6 -> 7: t = hi*h + dBu; stage 7: h' = lo*h + t, written back
        m.submodules.state = mem = Memory(shape=32 * L, depth=words * self.slots, init=[])
        rd, wr = mem.read_port(domain="comb"), mem.write_port()
        src6, dst7 = (later(beat.src, 6, "src6_"), later(beat.dst, 7, "dst7_")) if tree else (0, 0)
        m.d.comb += rd.addr.eq(src6 * words + later(addr, 6, "addr6_"))
        clear6 = later(beat.clear, 6, "clear6_")
        h_new = []
        for l in range(L):
            h = Mux(clear6, 0, rd.data[32 * l:32 * (l + 1)])
            t = self._fma(m, en, f"state_hi{l}", hi[l], h, dBu[l], wide=True)
            h_new.append(self._fma(m, en, f"state_lo{l}", later(lo[l], 1, f"lo{l}_"), later(h, 1, f"h{l}_"), t,
                                   stages=0, wide=True))
        valid7, load7 = delay_valid(m, en, self.i.valid, 7), later(load, 7, "load7_")
        new_state = Mux(load7, later(beat.h, 7, "h7_"), Cat(*h_new)) if tree else Cat(*h_new)
        m.d.comb += [wr.addr.eq(dst7 * words + later(addr, 7, "addr7_")), wr.data.eq(new_state),
                     wr.en.eq(en & valid7)]
        if tree:
            m.d.comb += [s_valid.eq(valid7 & ~load7), self.s.payload.eq(new_state)]

        # stage 8: lane accumulators p[l] += C * h'  (the channel's first beat starts from +0)
        valid8, first8 = delay_valid(m, en, self.i.valid, 8), later(first, 8, "first8_")
        parts = []
        for l in range(L):
            p = Signal(32, name=f"p{l}")
            r = self._fma(m, en, f"acc{l}", later(beat.lanes[l].C, 8, f"C{l}_"), later(h_new[l], 1, f"hn{l}_"),
                          Mux(first8, 0, p), stages=0, wide=True)
            with m.If(en & valid8):
                m.d.sync += p.eq(r)
            parts.append(p)
        # stages 9..: pairwise tree (x + y as 1.0 * y + x), then y = D*u + sum, then the gate
        level = 0
        while len(parts) > 1:
            pairs = [self._fma(m, en, f"tree{level}_{i}", ONE_BF16, parts[i + 1], parts[i], wide=True)
                     for i in range(0, len(parts) - 1, 2)]
            parts = pairs + ([later(parts[-1], 1, f"carry{level}_")] if len(parts) % 2 else [])
            level += 1
        skip = 9 + level
        y = self._fma(m, en, "skip", later(beat.D, skip, "D_"), later(u, skip, "u_"), parts[0])
        silu = FunctionUnit("silu")
        silu._MustUse__silence = True
        gate = round_to_operand(m, silu.datapath(m, Pipe(m, en), beat.z, "silu_"), "gate")
        out = self._fma(m, en, "gate", later(gate, skip + 1 - silu.latency, "gate_"), y, 0, wide=True)

        valid_out = delay_valid(m, en, self.i.valid & last & ~load, self.latency)
        assert skip + 2 == self.latency, (skip, self.latency)
        m.d.comb += [o_valid.eq(valid_out), self.o.payload.eq(out)]
        return m
