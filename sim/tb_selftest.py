"""cocotb testbench of the self-test top (`hdl.selftest.SelfTest`), the Verilog the bitstream
was built from: run it to the end, decode its UART line from the tx pin (8N1 at its divisor),
then press restart once and run it again; report the signature, the LEDs' state, the cycle
count and the decoded lines. The host compares them with the golden signature."""

import json
import os

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge

from specmx.sim.streams import TB, write_report


async def read_uart(tb, tx, divisor, lines, stop):
    """Sample tx mid-bit: a start bit, 8 data bits LSB first, a stop bit; collect lines."""
    line = ""
    while not stop["done"]:
        await RisingEdge(tb.dut.clk)
        if int(tx.value):
            continue
        for _ in range(divisor // 2):                      # to the middle of the start bit
            await RisingEdge(tb.dut.clk)
        byte = 0
        for bit in range(8):
            for _ in range(divisor):
                await RisingEdge(tb.dut.clk)
            byte |= int(tx.value) << bit
        for _ in range(divisor):                           # the stop bit
            await RisingEdge(tb.dut.clk)
        line += chr(byte)
        if line.endswith("\r\n"):
            lines.append(line)
            line = ""


@cocotb.test()
async def selftest_reaches_signature(dut):
    case = json.loads(os.environ["SPECMX_CASE"])
    tb = TB(dut)
    restart, done, passed = tb.port("restart"), tb.port("done"), tb.port("passed")
    restart.value = 0
    await tb.start()
    lines, stop = [], {"done": False}
    cocotb.start_soon(read_uart(tb, tb.port("tx"), case["divisor"], lines, stop))
    runs = []
    limit = case["cycle_budget"] + (len(case["message"]) + 2) * 10 * case["divisor"]
    for run in range(2):
        start = tb.cycle
        while not (int(done.value) and len(lines) > run) and tb.cycle - start < limit:
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        runs.append({"done": int(done.value), "passed": int(passed.value), "sig": int(tb.port("sig").value),
                     "cycles": int(tb.port("cycles").value), "elapsed": tb.cycle - start})
        restart.value = 1                                   # press restart: a second, identical run
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        restart.value = 0
    stop["done"] = True
    write_report({"runs": runs, "lines": lines})
