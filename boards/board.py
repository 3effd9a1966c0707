"""Board descriptions: one YAML file per board (`boards/<name>.yaml`), validated into a `Board`.

A board file holds the FPGA's resources, its off-chip memories, the fabric clock the system
model runs at, and its power figures, each value with its source in a comment (shared/BOARDS.md
tags: C read in the source, I calculated, U recalled/unconfirmed, X not found). A value that
is not known is written `null`; the file's `assume:` section may give the value the model uses
instead, with the reason, and every report prints those assumptions. A query that needs an
unknown value with no assumption fails with one line naming it.

    name: ulx3s-85f
    part: LFE5U-85F-6BG381C
    family: ecp5                 # ecp5 | ice40 | versal | ultrascale+
    lut: 83640                   # LUT4 on Lattice parts, LUT6 on AMD parts
    ff: 83640
    dsp: 156
    dsp_kind: MULT18X18D         # MULT18X18D | SB_MAC16 | DSP48E2 | DSP58
    bram: 208                    # block RAMs of bram_kbit each
    bram_kbit: 18
    uram: 0
    memories:
      - {name: sdram, kind: SDR-SDRAM, gbps: 0.2, capacity_mb: 32}
    clock_mhz: 50                # the fabric clock the model assumes unless the spec asks for less
    static_w: [0.5, 1.0]         # static/idle board power, low and high (W)
    max_w: 2.5
    assume: {}

`load_board(name_or_path)` takes a shipped board's name or a path to a user's own file.
"""

import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

import yaml

__all__ = ["Board", "Memory", "BoardError", "BOARD_DIR", "board_names", "load_board", "FAMILIES", "DSP_KINDS"]

BOARD_DIR = Path(__file__).resolve().parent
FAMILIES = ("ecp5", "ice40", "versal", "ultrascale+")
DSP_KINDS = ("MULT18X18D", "SB_MAC16", "DSP48E2", "DSP58")
MEMORY_KINDS = ("SDR-SDRAM", "DDR3L", "DDR4", "LPDDR4", "HBM2", "HBM2E", "QSPI-flash", "SPRAM")


class BoardError(ValueError):
    """A board file that cannot be used: one line starting with the key path."""


@dataclass(frozen=True)
class Memory:
    """One off-chip (or on-board) memory: its kind, peak bandwidth and capacity."""

    name: str
    kind: str
    gbps: float
    capacity_mb: float

    def __post_init__(self):
        if self.kind not in MEMORY_KINDS:
            raise ValueError(f"kind: unknown {self.kind!r}; allowed: {', '.join(MEMORY_KINDS)}")
        for name in ("gbps", "capacity_mb"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name}: must be a number > 0, got {v!r}")


# fields that may be null (unknown) in a file; the rest are required
_OPTIONAL = ("lut", "ff", "dsp", "bram", "uram", "max_w")


@dataclass(frozen=True)
class Board:
    """An FPGA board as the system model sees it (see the module docstring for the fields)."""

    name: str
    part: str
    family: str
    lut: Optional[int]
    ff: Optional[int]
    dsp: Optional[int]
    dsp_kind: str
    bram: Optional[int]
    bram_kbit: int
    memories: tuple
    clock_mhz: float
    static_w: tuple
    uram: Optional[int] = 0
    uram_kbit: int = 288
    max_w: Optional[float] = None
    assumed: dict = field(default_factory=dict)   # field -> the reason the value is assumed
    source: str = ""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family: unknown {self.family!r}; allowed: {', '.join(FAMILIES)}")
        if self.dsp_kind not in DSP_KINDS:
            raise ValueError(f"dsp_kind: unknown {self.dsp_kind!r}; allowed: {', '.join(DSP_KINDS)}")
        for name in ("lut", "ff", "dsp", "bram", "uram", "bram_kbit", "uram_kbit"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{name}: must be a whole number >= 0 or null (unknown), got {v!r}")
        if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float)) or not self.clock_mhz > 0:
            raise ValueError(f"clock_mhz: must be a number > 0, got {self.clock_mhz!r}")
        lo_hi = self.static_w
        if (not isinstance(lo_hi, (list, tuple)) or len(lo_hi) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in lo_hi)
                or lo_hi[0] > lo_hi[1]):
            raise ValueError(f"static_w: must be [low, high] watts with 0 <= low <= high, got {lo_hi!r}")
        if not self.memories:
            raise ValueError("memories: at least one memory (the one that holds the weights)")

    def need(self, name):
        """The value of a resource field, or a one-line error when the file leaves it unknown."""
        v = getattr(self, name)
        if v is None:
            raise BoardError(f"board.{name}: unknown for {self.name} (null in {self.source or 'its file'}); "
                             f"give a value or an `assume: {{{name}: ...}}` entry")
        return v

    def weight_memory(self, nbytes):
        """The fastest memory that holds `nbytes` of weights, or a one-line error."""
        fits = [m for m in self.memories if m.capacity_mb * 1e6 >= nbytes]
        if not fits:
            biggest = max(self.memories, key=lambda m: m.capacity_mb)
            raise BoardError(f"board.memories: the weights need {nbytes / 1e6:,.1f} MB; the largest memory on "
                             f"{self.name} ({biggest.name}) holds {biggest.capacity_mb:,.0f} MB")
        return max(fits, key=lambda m: m.gbps)

    @property
    def on_chip_bits(self):
        """Block RAM plus UltraRAM bits."""
        return (self.need("bram") * self.bram_kbit + (self.uram or 0) * self.uram_kbit) * 1024


def board_names():
    """The shipped boards' names, sorted."""
    return sorted(p.stem for p in BOARD_DIR.glob("*.yaml"))


def _nearest(key, allowed):
    near = difflib.get_close_matches(str(key), list(allowed), n=1)
    return f"did you mean {near[0]!r}? " if near else ""


def load_board(name_or_path):
    """A `Board` from a shipped board's name or a YAML file's path; `BoardError` (one line) on
    any problem."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = BOARD_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise BoardError(f"board: unknown board {name_or_path!r}; {_nearest(name_or_path, board_names())}"
                             f"allowed: {', '.join(board_names())} or a board YAML file")
    if not path.is_file():
        raise BoardError(f"board: no such file {str(name_or_path)!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BoardError(f"board: {path.name} is not valid YAML{where}") from None
    names = [f.name for f in fields(Board) if f.name not in ("assumed", "source")]
    if not isinstance(data, dict):
        raise BoardError(f"board: {path.name} must be a mapping of {', '.join(names)}")
    assume = data.pop("assume", None) or {}
    if not isinstance(assume, dict):
        raise BoardError("board.assume: must be a mapping of field: {value: ..., why: ...}")
    for key in list(data) + list(assume):
        if key not in names:
            raise BoardError(f"board.{key}: unknown key; {_nearest(key, names)}allowed: {', '.join(names)}, assume")
    required = [n for n in names if n not in _OPTIONAL and n not in ("uram", "uram_kbit")]
    for n in required:
        if data.get(n) is None:
            raise BoardError(f"board.{n}: missing; every board file gives {', '.join(required)}")
    for n in _OPTIONAL:
        data.setdefault(n, None)
    assumed = {}
    for key, entry in assume.items():
        if not isinstance(entry, dict) or "value" not in entry or "why" not in entry:
            raise BoardError(f"board.assume.{key}: must be {{value: ..., why: ...}}")
        if data.get(key) is not None:
            raise BoardError(f"board.assume.{key}: the file gives {key} already; an assumption is for a null value")
        data[key], assumed[key] = entry["value"], f"{entry['value']} ({entry['why']})"
    try:
        mems = data["memories"]
        if not isinstance(mems, list):
            raise BoardError("board.memories: must be a list of {name, kind, gbps, capacity_mb}")
        memories = []
        for i, m in enumerate(mems):
            if not isinstance(m, dict):
                raise BoardError(f"board.memories[{i}]: must be a mapping of name, kind, gbps, capacity_mb")
            try:
                memories.append(Memory(**m))
            except TypeError:
                raise BoardError(f"board.memories[{i}]: expected keys name, kind, gbps, capacity_mb; "
                                 f"got {', '.join(map(str, m))}") from None
            except ValueError as exc:
                raise BoardError(f"board.memories[{i}].{exc}") from None
        data["memories"] = tuple(memories)
        if isinstance(data.get("static_w"), list):
            data["static_w"] = tuple(data["static_w"])
        return Board(**data, assumed=assumed, source=str(path))
    except ValueError as exc:
        if isinstance(exc, BoardError):
            raise
        raise BoardError(f"board.{exc}") from None
