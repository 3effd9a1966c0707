"""Built-in self-test: an LFSR feeds the design under test, a CRC-32 folds its results, and the
signature is compared with the one the golden model computed at build time
(`models.selftest`). The result shows on LEDs and, where the board has a UART, as a line of text:

    SPECMX SIG=1A2B3C4D CYC=000003E9 PASS\\r\\n

`SelfTest` is everything inside the board's I/O (the part the cocotb test simulates from the
same Verilog); `BoardTop` adds the board's clock, LEDs, button and UART.
"""

from amaranth.hdl import Array, Cat, ClockDomain, Const, Elaboratable, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from specmx.hdl.fma import FMA
from specmx.models.config import FMAConfig
from specmx.models.selftest import SEED, TAPS

__all__ = ["SelfTest", "GemmSelfTest", "ScanSelfTest", "BoardTop", "UartTx", "crc32_step", "MESSAGE"]

CRC_POLY = 0xEDB88320
MESSAGE = "SPECMX SIG=%%%%%%%% CYC=######## ????\r\n"     # % signature nibbles, # cycle nibbles, ? PASS/FAIL


def crc32_step(m, crc, word, width):
    """The reflected CRC-32 after `width` bits of `word`, LSB first: an XOR network, each bit
    step a named signal (an expression reused by the next step would be copied, doubling the
    netlist with every bit)."""
    for i in range(width):
        step = Signal(32, name=f"crc_bit{i}")
        m.d.comb += step.eq((crc >> 1) ^ Mux(crc[0] ^ word[i], CRC_POLY, 0))
        crc = step
    return crc


class UartTx(wiring.Component):
    """8N1 transmitter: `data` is taken when `valid` and `ready`; `divisor` clock cycles a bit."""

    def __init__(self, divisor):
        if divisor < 2:
            raise ValueError(f"uart: the clock must be at least twice the baud rate, divisor {divisor}")
        self.divisor = divisor
        super().__init__({"data": In(8), "valid": In(1), "ready": Out(1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        shift = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        count = Signal(range(self.divisor))
        m.d.comb += [self.ready.eq(bits == 0), self.tx.eq(shift[0])]
        with m.If(bits == 0):
            with m.If(self.valid):
                m.d.sync += [shift.eq(Cat(Const(0, 1), self.data, Const(1, 1))), bits.eq(10),
                             count.eq(self.divisor - 1)]
        with m.Elif(count == 0):
            m.d.sync += [shift.eq(Cat(shift[1:], Const(1, 1))), bits.eq(bits - 1), count.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += count.eq(count - 1)
        return m


def _hex(nibble):
    return Mux(nibble < 10, nibble + ord("0"), nibble + (ord("A") - 10))


class _SelfTestBase(wiring.Component):
    """What every self-test shares: the run / report / idle states, the CRC-32 of `results`
    result words (`result_width` bits), the cycle count, the UART report line, restart.
    A subclass's `_dut(m, run, restart)` adds the design under test and its operand generators
    and returns (result valid, result word)."""

    def __init__(self, results, result_width, expected, uart_divisor, flip=0, cycle_budget=None):
        self.results, self.result_width, self.expected = results, result_width, expected
        self.cycle_budget = cycle_budget or results * 8 + 1064       # a simulation's limit for one run
        self.uart_divisor, self.flip = uart_divisor, flip
        super().__init__({"restart": In(1), "done": Out(1), "passed": Out(1), "running": Out(1), "tx": Out(1),
                          "sig": Out(32), "cycles": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart = uart = UartTx(self.uart_divisor)
        received = Signal(range(self.results + 1))
        crc = Signal(32, init=0xFFFFFFFF)
        cycles = Signal(32)
        state = Signal(range(3))                        # 0 run, 1 report, 2 idle
        valid, word = self._dut(m, state == 0, self.restart)
        m.d.comb += [self.sig.eq(~crc), self.cycles.eq(cycles), self.running.eq(state == 0),
                     self.done.eq(state != 0), self.passed.eq((state != 0) & (~crc == self.expected)),
                     self.tx.eq(uart.tx)]
        result = Signal(self.result_width)
        m.d.comb += result.eq(word ^ (self.flip & ((1 << self.result_width) - 1)))
        next_crc = crc32_step(m, crc, result, self.result_width)
        with m.If((state == 0) & valid):
            m.d.sync += [crc.eq(next_crc), received.eq(received + 1)]
            with m.If(received == self.results - 1):
                m.d.sync += state.eq(1)
        with m.If(state == 0):
            m.d.sync += cycles.eq(cycles + 1)

        # the report line: constants, hex nibbles of the signature and cycle count, PASS/FAIL
        sig, cyc = ~crc, cycles
        chars, s_i, c_i, v_i = [], 7, 7, 0
        for ch in MESSAGE:
            if ch == "%":
                chars.append(_hex(sig.word_select(s_i, 4)))
                s_i -= 1
            elif ch == "#":
                chars.append(_hex(cyc.word_select(c_i, 4)))
                c_i -= 1
            elif ch == "?":
                chars.append(Mux(sig == self.expected, ord("PASS"[v_i]), ord("FAIL"[v_i])))
                v_i += 1
            else:
                chars.append(Const(ord(ch), 8))
        table = Array(chars)
        index = Signal(range(len(MESSAGE) + 1))
        m.d.comb += [uart.data.eq(table[index]), uart.valid.eq((state == 1) & (index < len(MESSAGE)))]
        with m.If(uart.valid & uart.ready):
            m.d.sync += index.eq(index + 1)
        with m.If((state == 1) & (index == len(MESSAGE)) & uart.ready):
            m.d.sync += state.eq(2)

        with m.If(self.restart):                        # a new run from the seed
            m.d.sync += [received.eq(0), crc.eq(0xFFFFFFFF), cycles.eq(0), state.eq(0), index.eq(0)]
        return m


def _lfsr(m, seed, step, restart, name):
    """A 32-bit Galois LFSR (`models.selftest.TAPS`) that steps when `step` is high."""
    reg = Signal(32, init=seed, name=name)
    with m.If(step):
        m.d.sync += reg.eq((reg >> 1) ^ Mux(reg[0], TAPS, 0))
    with m.If(restart):
        m.d.sync += reg.eq(seed)
    return reg


class SelfTest(_SelfTestBase):
    """The self-test of one FMA configuration.

    Parameters: `cfg` (IEEE accumulator words), `stages` (FMA pipeline depth), `ops` (operations
    per run), `expected` (the golden signature), `uart_divisor` (clock cycles per UART bit),
    `flip` (a constant XORed into every result: the negative control's broken design).

    Members: `restart` In(1) starts a new run; `done`, `passed`, `running`, `tx` Out(1);
    `sig` (the signature so far), `cycles` Out(32).
    """

    def __init__(self, cfg: FMAConfig, stages, ops, expected, uart_divisor, flip=0):
        if cfg.internal:
            raise ValueError("fma.policy: the self-test feeds IEEE accumulator words; allowed: round, flush, exact")
        if not 1 <= ops <= 1 << 24:
            raise ValueError(f"ops: must be 1..16777216, got {ops}")
        self.cfg, self.stages, self.ops = cfg, stages, ops
        super().__init__(ops, cfg.acc_width, expected, uart_divisor, flip)

    def _dut(self, m, run, restart):
        cfg = self.cfg
        m.submodules.fma = fma = FMA(cfg, self.stages)
        issued = Signal(range(self.ops + 1))
        prev = Signal(32)
        issuing = run & (issued < self.ops)
        lfsr = _lfsr(m, SEED, issuing, restart, "lfsr")
        m.d.comb += [fma.a.eq(lfsr[:cfg.in_f.width]), fma.b.eq(lfsr[16:16 + cfg.in_f.width]),
                     fma.c.eq(prev[:cfg.acc_width]), fma.valid.eq(issuing)]
        with m.If(issuing):
            m.d.sync += [prev.eq(lfsr), issued.eq(issued + 1)]
        with m.If(restart):
            m.d.sync += [prev.eq(0), issued.eq(0)]
        return fma.r_valid, fma.r


class GemmSelfTest(_SelfTestBase):
    """The self-test of a GEMM engine (`hdl.gemm.GEMMEngine`): one M x N x K command, A, B and
    C0 streamed row-major from three LFSRs (`models.selftest.GEMM_SEEDS`, each stepping per
    word taken), every result word into the CRC. Parameters and members as `SelfTest`'s, with
    `engine` (a GemmConfig) and `shape` (M, N, K)."""

    def __init__(self, engine, shape, expected, uart_divisor, flip=0):
        if engine.fma.internal:
            raise ValueError("fma.policy: the self-test takes IEEE accumulator words; allowed: round, flush, exact")
        self.engine, self.shape = engine, tuple(shape)
        M, N, K = self.shape
        super().__init__(M * N, engine.fma.acc_f.width, expected, uart_divisor, flip)

    def _dut(self, m, run, restart):
        from specmx.hdl.gemm import GEMMEngine
        from specmx.models.selftest import GEMM_SEEDS
        M, N, K = self.shape
        m.submodules.gemm = dut = GEMMEngine(self.engine)
        sent = Signal()
        m.d.comb += [dut.cmd.payload.m.eq(M), dut.cmd.payload.n.eq(N), dut.cmd.payload.k.eq(K),
                     dut.cmd.valid.eq(run & ~sent), dut.r_out.ready.eq(1)]
        with m.If(dut.cmd.valid & dut.cmd.ready):
            m.d.sync += sent.eq(1)
        with m.If(restart):
            m.d.sync += sent.eq(0)
        for port, count, seed, width in ((dut.a_in, M * K, GEMM_SEEDS[0], self.engine.fma.in_f.width),
                                         (dut.b_in, K * N, GEMM_SEEDS[1], self.engine.fma.in_f.width),
                                         (dut.c_in, M * N, GEMM_SEEDS[2], self.engine.fma.acc_f.width)):
            taken = Signal(range(count + 1))
            fire = port.valid & port.ready
            lfsr = _lfsr(m, seed, fire, restart, f"lfsr_{seed:08x}")
            m.d.comb += [port.payload.eq(lfsr[:width]), port.valid.eq(run & (taken < count))]
            with m.If(fire):
                m.d.sync += taken.eq(taken + 1)
            with m.If(restart):
                m.d.sync += taken.eq(0)
        return dut.r_out.valid, dut.r_out.payload


class ScanSelfTest(_SelfTestBase):
    """The self-test of the selective-scan unit (`hdl.scan.ScanUnit`): the stimulus token stream
    (`models.selftest.ssm_stimulus`) packed into beats in a ROM, streamed into the unit, every
    gated output word into the CRC. Parameters and members as `SelfTest`'s, with `ssm` (an
    SSMConfig) and `tokens`. A restart also resets the unit (the stream starts with a clear)."""

    def __init__(self, ssm, tokens, expected, uart_divisor, flip=0):
        from specmx.hdl.scan import check_scan_shape
        from specmx.models.perf.ssm import scan_beats, scan_latency
        check_scan_shape(ssm)
        if not 1 <= tokens <= 4096:
            raise ValueError(f"tokens: must be 1..4096, got {tokens}")
        self.ssm, self.tokens = ssm, tokens
        self.beats = tokens * scan_beats(ssm)
        super().__init__(tokens * ssm.d_inner, 32, expected, uart_divisor, flip,
                         cycle_budget=2 * self.beats + scan_latency(ssm) + 1064)

    def _dut(self, m, run, restart):
        from amaranth.hdl import ResetInserter
        from amaranth.lib.memory import Memory
        from specmx.hdl.compose import pack_struct
        from specmx.hdl.scan import ScanUnit, scan_layout, scan_records
        from specmx.models.selftest import ssm_stimulus
        layout = scan_layout(self.ssm)
        rom = [pack_struct(layout, r) for r in scan_records(self.ssm, ssm_stimulus(self.ssm, self.tokens))]
        m.submodules.stimulus = mem = Memory(shape=layout.size, depth=len(rom), init=rom)
        m.submodules.scan = dut = ResetInserter(restart)(ScanUnit(self.ssm))
        read = mem.read_port()
        sent = Signal(range(self.beats + 1))
        primed = Signal()                               # the ROM's output holds beat `sent`
        fire = dut.i.valid & dut.i.ready
        m.d.comb += [read.addr.eq(Mux(restart, 0, Mux(fire, sent + 1, sent))),
                     dut.i.payload.eq(read.data), dut.i.valid.eq(run & primed & (sent < self.beats)),
                     dut.o.ready.eq(1)]
        m.d.sync += primed.eq(1)
        with m.If(fire):
            m.d.sync += sent.eq(sent + 1)
        with m.If(restart):
            m.d.sync += [sent.eq(0), primed.eq(0)]
        return dut.o.valid, dut.o.payload


class BoardTop(Elaboratable):
    """The self-test on a board: the default clock (or, with `pll`, an ECP5 EHXPLLL's output:
    the dividers of `bitstream.ecp5_pll`, the domain held in reset until the PLL locks), the
    restart button (synchronized, edge), pass / fail / running on LEDs, the report on the UART
    where there is one."""

    def __init__(self, selftest_factory, pll=None):
        self.selftest_factory = selftest_factory        # clock Hz -> SelfTest
        self.pll = pll

    def elaborate(self, platform):
        from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer
        m = Module()
        clk_hz = platform.default_clk_frequency
        if self.pll:
            p, clk_hz = self.pll, self.pll["fout_mhz"] * 1e6
            m.domains.sync = cd = ClockDomain("sync")
            clk_in = platform.request(platform.default_clk, 0).i
            locked = Signal()
            m.submodules.pll = Instance(
                "EHXPLLL", a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2", a_FREQUENCY_PIN_CLKI=f"{platform.default_clk_frequency / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{p['fout_mhz']:g}",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD", p_CLKI_DIV=p["CLKI_DIV"],
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_CPHASE"],
                p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
                i_RST=0, i_STDBY=0, i_CLKI=clk_in, o_CLKOP=cd.clk, i_CLKFB=cd.clk, i_PHASESEL0=0, i_PHASESEL1=0,
                i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
            m.submodules.pll_reset = ResetSynchronizer(~locked, domain="sync")
            platform.add_clock_constraint(cd.clk, clk_hz)
        m.submodules.selftest = st = self.selftest_factory(clk_hz)
        leds = _leds(platform)
        m.d.comb += [leds[0].eq(st.passed), leds[1].eq(st.done & ~st.passed), leds[2].eq(st.running)]
        try:
            button = platform.request("button", 0).i
        except Exception:                               # no button: the configuration reset restarts
            button = Const(0, 1)
        pressed, last = Signal(), Signal()
        m.submodules.sync_button = FFSynchronizer(button, pressed)
        m.d.sync += last.eq(pressed)
        m.d.comb += st.restart.eq(pressed & ~last)
        try:
            uart = platform.request("uart", 0)
            m.d.comb += uart.tx.o.eq(st.tx)
        except Exception:
            pass
        return m


def _leds(platform):
    """Three LED outputs (pass, fail, running) from the board's LED resources."""
    outs = []
    try:
        rgb = platform.request("rgb_led", 0)
        return [rgb.g.o, rgb.r.o, rgb.b.o]
    except Exception:
        pass
    for i in range(3):
        try:
            outs.append(platform.request("led", i).o)
        except Exception:
            outs.append(Signal(name=f"no_led_{i}"))
    return outs
