"""`specmx boards list|show`: the board descriptions (`boards/*.yaml`) the system model uses."""

import json

__all__ = ["register", "board_summary"]


def board_summary(board):
    """A board as one flat mapping for tables and JSON."""
    mems = ", ".join(f"{m.name} {m.kind} {m.gbps:g} GB/s {m.capacity_mb:g} MB" for m in board.memories)
    lut_kind = "LUT4" if board.family in ("ecp5", "ice40") else "LUT6"
    return {"name": board.name, "part": board.part, "family": board.family,
            "lut": board.lut, "lut_kind": lut_kind, "ff": board.ff, "dsp": board.dsp, "dsp_kind": board.dsp_kind,
            "bram": board.bram, "bram_kbit": board.bram_kbit, "uram": board.uram, "uram_kbit": board.uram_kbit,
            "memories": mems, "clock_mhz": board.clock_mhz, "static_w": list(board.static_w),
            "max_w": board.max_w, "assumed": board.assumed, "file": board.source}


def cmd_list(args):
    from specmx.boards.board import board_names, load_board
    rows = [board_summary(load_board(n)) for n in board_names()]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'board':<16}{'part':<28}{'LUT':>11}{'DSP':>8}{'fastest memory':>24}{'clock':>9}")
    for n in board_names():
        b = load_board(n)
        lut = f"{b.lut:,}" + ("*" if "lut" in b.assumed else "")
        dsp = f"{b.dsp:,}" + ("*" if "dsp" in b.assumed else "")
        fast = max(b.memories, key=lambda m: m.gbps)
        print(f"{b.name:<16}{b.part:<28}{lut:>11}{dsp:>8}{fast.kind + ' ' + format(fast.gbps, 'g') + ' GB/s':>24}"
              f"{b.clock_mhz:>6g} MHz")
    print("* not known for this part: an assumption the file states (specmx boards show NAME)")
    return 0


def cmd_show(args):
    from specmx.boards.board import load_board
    summary = board_summary(load_board(args.name))
    if args.json:
        print(json.dumps(summary))
        return 0
    width = max(map(len, summary))
    for key, value in summary.items():
        if key == "assumed":
            value = "; ".join(f"{k} = {v}" for k, v in value.items()) or "nothing"
        print(f"{key:>{width}}: {'unknown (null)' if value is None else value}")
    return 0


def register(nouns, formatter):
    verbs = nouns.add_parser("boards", help="FPGA boards for the system model").add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("list", help="the shipped boards, one line each", formatter_class=formatter)
    p.add_argument("--json", action="store_true", help="print every board as JSON")
    p.set_defaults(func=cmd_list)
    p = verbs.add_parser("show", help="one board's resources, memories, clock and power", formatter_class=formatter)
    p.add_argument("name", metavar="NAME|FILE", help="a shipped board's name or a board YAML file")
    p.add_argument("--json", action="store_true", help="print the board as one JSON object")
    p.set_defaults(func=cmd_show)
