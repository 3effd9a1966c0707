"""`specmx bitstream build|export|read`: self-test bitstreams for the open boards, Vivado
projects for the AMD boards, and reading a board's self-test report."""

import json
from pathlib import Path

from specmx.cli.common import UsageError, add_spec_option, bounded, design

__all__ = ["register"]


def _spec(args, board):
    """The SelfTestSpec the flags ask for: the spec's fma (gemm, ssm) section, or the board's default."""
    from specmx.bitstream import DESIGNS, SelfTestSpec, default_fma, default_gemm, default_ssm
    from specmx.cli.common import int_list
    if args.design not in DESIGNS:
        raise UsageError(f"design: unknown design {args.design!r}; allowed: {', '.join(DESIGNS)}")
    bounded("ops", args.ops, 1, 1 << 24)
    bounded("stages", args.stages, 0, 12)
    bounded("tokens", args.tokens, 1, 4096)
    if args.design == "ssm":
        from specmx.hdl.scan import check_scan_shape
        ssm = design(args).ssm if args.spec else default_ssm(board)
        try:
            check_scan_shape(ssm)
        except ValueError as exc:
            raise UsageError(f"ssm.{exc}") from None
        return SelfTestSpec("ssm", ssm, tokens=args.tokens)
    if args.design == "gemm":
        engine = design(args).gemm if args.spec else default_gemm(board)
        if engine.fma.internal:
            raise UsageError("gemm.fma.policy: the self-test takes IEEE accumulator words; allowed: round, flush, exact")
        shape = tuple(int_list("shape", args.shape, low=1))
        if len(shape) != 3:
            raise UsageError(f"shape: expected M,N,K, got {args.shape!r}")
        for name, v, cap in zip(("M", "N", "K"), shape, engine.buffers):
            if v > cap:
                raise UsageError(f"shape: {name} = {v} exceeds the engine's buffer ({cap}; gemm.max_m/n/k)")
        return SelfTestSpec("gemm", engine, shape=shape)
    cfg = design(args).fma if args.spec else default_fma(board)
    if cfg.internal:
        raise UsageError("fma.policy: the self-test feeds IEEE accumulator words; allowed: round, flush, exact")
    return SelfTestSpec("fma", cfg, args.stages, args.ops)


def cmd_build(args):
    from specmx.bitstream import BOARD_PLATFORMS, BuildError, build_bitstream
    if args.board not in BOARD_PLATFORMS:
        raise UsageError(f"board: no bitstream flow for {args.board!r}; allowed: {', '.join(BOARD_PLATFORMS)} "
                         f"(AMD boards: specmx bitstream export)")
    spec = _spec(args, args.board)
    out = Path(args.out or f"out/bitstream/{args.board}_{args.design}")
    try:
        summary = build_bitstream(args.board, spec, args.clock, out)
    except BuildError as exc:
        print(f"specmx: error: {exc}", file=__import__("sys").stderr)
        return exc.code
    if args.json:
        print(json.dumps(summary))
        return 0
    util = ", ".join(f"{k} {v['used']:,}/{v['available']:,}" for k, v in summary["utilization"].items()
                     if k in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "ICESTORM_LC", "ICESTORM_DSP",
                              "ICESTORM_RAM"))
    print(f"{summary['board']}: {spec.label} self-test, {summary['ops']} results, signature "
          f"{summary['signature']}; Fmax {summary['fmax_mhz']} MHz at {summary['clock_mhz']:g} MHz "
          f"({'met' if summary['timing_met'] else 'FAILED'}); {util}; {summary['build_seconds']} s")
    print(f"bitstream {summary['bitstream']}; summary {out / 'summary.json'}")
    return 0


def cmd_export(args):
    from specmx.bitstream import BuildError, export_vivado
    spec = _spec(args, "vck190")
    try:
        files = export_vivado(args.board, spec, args.clock or 100.0, args.out or f"out/vivado/{args.board}_{args.design}")
    except BuildError as exc:
        raise UsageError(str(exc)) from None
    for f in files:
        print(f)
    print("run: vivado -mode batch -source build.tcl  (in that folder)")
    return 0


def cmd_read(args):
    """Read self-test lines from a serial port (set it up first: stty -F DEV 115200 raw) or a
    file, and compare with a build's expected signature."""
    from specmx.sim.selftest_check import parse_report_line
    expected = args.expect
    if args.summary:
        try:
            expected = json.loads(Path(args.summary).read_text())["signature"]
        except (OSError, ValueError, KeyError):
            raise UsageError(f"summary: {args.summary} is not a bitstream summary.json") from None
    if expected is None:
        raise UsageError("expect: give --summary FILE or --expect SIGNATURE (8 hex digits)")
    try:
        want = int(expected, 16)
    except ValueError:
        raise UsageError(f"expect: 8 hex digits, got {expected!r}") from None
    try:
        stream = open(args.port, "rb")
    except OSError as exc:
        raise UsageError(f"port: cannot open {args.port}: {exc.strerror}") from None
    with stream:
        buf = b""
        while True:
            chunk = stream.read(1)
            if not chunk:
                break
            buf += chunk
            if buf.endswith(b"\r\n"):
                try:
                    sig, cycles, passed = parse_report_line(buf.decode("ascii", errors="replace"))
                except ValueError:
                    buf = b""
                    continue
                ok = sig == want and passed
                print(f"signature {sig:08X} (expected {want:08X}), {cycles} cycles: {'PASS' if ok else 'FAIL'}")
                return 0 if ok else 1
    print(f"specmx: error: port: no self-test line read from {args.port}", file=__import__("sys").stderr)
    return 1


def register(nouns, formatter):
    from specmx.bitstream import BOARD_PLATFORMS, VIVADO_BOARDS
    verbs = nouns.add_parser("bitstream", help="self-test bitstreams and Vivado projects") \
        .add_subparsers(dest="verb", required=True)
    for verb, boards, func, what in (("build", BOARD_PLATFORMS, cmd_build, "a self-test bitstream for an open board"),
                                     ("export", VIVADO_BOARDS, cmd_export, "a Vivado project for an AMD board")):
        p = verbs.add_parser(verb, help=what, formatter_class=formatter)
        if verb == "export":
            p.add_argument("--vendor", choices=("vivado",), default="vivado")
        p.add_argument("--board", required=True, metavar="NAME", help=f"one of {', '.join(boards)}")
        p.add_argument("--design", default="fma", metavar="fma|gemm|ssm", help="the design under test")
        p.add_argument("--stages", type=int, default=3, metavar="N", help="FMA pipeline stages (the GEMM's: its spec)")
        p.add_argument("--ops", type=int, default=1000, metavar="N", help="FMA operations per self-test run")
        p.add_argument("--shape", default="8,8,8", metavar="M,N,K", help="the GEMM self-test's product")
        p.add_argument("--tokens", type=int, default=16, metavar="N", help="the SSM self-test's tokens (1..4096)")
        p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                       help="clock (build: the board's oscillator; export: default 100)")
        p.add_argument("--out", default=None, metavar="DIR", help="output folder")
        if verb == "build":
            p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
        add_spec_option(p)
        p.set_defaults(func=func)
    p = verbs.add_parser("read", help="read a board's self-test report from a serial port or file",
                         formatter_class=formatter)
    p.add_argument("--port", required=True, metavar="DEV|FILE", help="serial device (stty -F DEV 115200 raw) or file")
    p.add_argument("--summary", default=None, metavar="FILE", help="the build's summary.json (expected signature)")
    p.add_argument("--expect", default=None, metavar="HEX", help="the expected signature")
    p.set_defaults(func=cmd_read)
