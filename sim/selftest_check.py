"""Host side of the self-test simulation (`sim/tb_selftest.py`): simulate the self-test top
from the Verilog a bitstream build wrote (or a fresh conversion), read its UART report, and
compare with the golden signature (`models.selftest`)."""

import json
import re

from specmx.sim.runner import run_cocotb

__all__ = ["check_selftest", "parse_report_line"]

LINE = re.compile(r"^SPECMX SIG=([0-9A-F]{8}) CYC=([0-9A-F]{8}) (PASS|FAIL)\r\n$")


def parse_report_line(line):
    """(signature, cycles, passed) of one UART report line, or ValueError naming what is wrong.
    The same parser reads a board's serial output (`specmx bitstream read`)."""
    m = LINE.match(line)
    if not m:
        raise ValueError(f"report: not a self-test line: {line!r}")
    return int(m.group(1), 16), int(m.group(2), 16), m.group(3) == "PASS"


def check_selftest(selftest, verilog_text=None, simulator="verilator"):
    """Simulate `selftest` (an `hdl.selftest` self-test) for two runs; returns a report with
    `ok` (both runs done, signature == the golden one, pass LED, UART lines parse to the same)."""
    from specmx.hdl.selftest import MESSAGE
    case = {"cycle_budget": selftest.cycle_budget, "divisor": selftest.uart_divisor, "message": MESSAGE}
    result = run_cocotb(selftest, "selftest", "specmx.sim.tb_selftest", {"SPECMX_CASE": json.dumps(case)},
                        simulator, verilog_text=verilog_text)
    report = dict(result.report, passed_sim=result.passed, log_dir=str(result.log_dir), expected=selftest.expected)
    runs, lines = report.get("runs", []), report.get("lines", [])
    parsed = []
    for line in lines:
        try:
            parsed.append(parse_report_line(line))
        except ValueError as exc:
            parsed.append(str(exc))
    report["parsed"] = parsed
    report["signature_matches"] = bool(runs) and all(r["sig"] == selftest.expected for r in runs)
    report["ok"] = bool(result.passed and len(runs) == 2 and len(parsed) >= 2 and report["signature_matches"]
                        and all(r["done"] and r["passed"] for r in runs)
                        and all(isinstance(p, tuple) and p[0] == selftest.expected and p[2] for p in parsed[:2]))
    return report
