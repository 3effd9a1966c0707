"""Switching-activity power proxy: toggles of the FMA's synthesized gate-level netlist over
operand streams taken from a real workload (all-MiniLM-L6-v2's linear layers).

Method:
1. The combinational FMA (`hdl.fma.FMA`, stages=0) is synthesized by Yosys to the same
   technology-neutral 2-input gates and muxes that `fma synth` counts (`synth -flatten; abc -g
   AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX`) and written as a JSON netlist.
2. `GateNetlist` evaluates that netlist in numpy, every gate over the whole stream at once (zero
   delay), and its outputs are checked bit for bit against the golden FMA on the same stream,
   so the netlist, the evaluator and the stream agree.
3. Streams are output-stationary PEs: for a few output elements (m, n) of each captured layer,
   the PE sees a = A[m, k], b = B[k, n] and its own running sum c for k = 0..K-1, one multiply-
   add per cycle, the chain computed with the configuration under test (an approximate PE sees
   its own partial sums).
4. Toggles: for every gate output, the cycles on which it differs from the cycle before;
   weighted by the gate's relative switched capacitance (`GATE_WEIGHTS`, static CMOS input
   capacitance in units of an inverter's, from logical effort: NAND2 4/3, NOR2 5/3, ...) and
   summed, per multiply-add. The same streams through the exact FMA give the ratio.

Limits: zero-delay evaluation counts no glitches (which favour shallower logic); no wire or
clock-tree capacitance, no registers (a PE's registers toggle with its operands either way);
one PE's netlist, not a placed array; relative figures between configurations only.
"""

import json
import tempfile
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np

__all__ = ["GATE_WEIGHTS", "GateNetlist", "fma_netlist", "minilm_layers", "pe_streams", "toggles_per_mac",
           "power_study"]

# Relative switched capacitance per gate output toggle, in inverter input capacitances
# (logical effort, Sutherland/Sproull/Harris: NAND2 4/3, NOR2 5/3; AND/OR = NAND/NOR + INV;
# XOR2/XNOR2 4; MUX2 (transmission-gate) 2).
GATE_WEIGHTS = {"$_NOT_": 1.0, "$_NAND_": 4 / 3, "$_NOR_": 5 / 3, "$_AND_": 4 / 3 + 1, "$_OR_": 5 / 3 + 1,
                "$_ANDNOT_": 4 / 3 + 1, "$_ORNOT_": 5 / 3 + 1, "$_XOR_": 4.0, "$_XNOR_": 4.0, "$_MUX_": 2.0,
                "$_BUF_": 1.0}
_OPS = {
    "$_NOT_": lambda v: ~v["A"], "$_BUF_": lambda v: v["A"],
    "$_AND_": lambda v: v["A"] & v["B"], "$_NAND_": lambda v: ~(v["A"] & v["B"]),
    "$_OR_": lambda v: v["A"] | v["B"], "$_NOR_": lambda v: ~(v["A"] | v["B"]),
    "$_XOR_": lambda v: v["A"] ^ v["B"], "$_XNOR_": lambda v: ~(v["A"] ^ v["B"]),
    "$_ANDNOT_": lambda v: v["A"] & ~v["B"], "$_ORNOT_": lambda v: v["A"] | ~v["B"],
    "$_MUX_": lambda v: np.where(v["S"], v["B"], v["A"]),
}


def fma_netlist(cfg, folder):
    """The combinational FMA of `cfg` synthesized to 2-input gates: a JSON netlist in `folder`,
    named by a hash of the RTL so that a cached netlist is reused only for the same design."""
    import hashlib

    from amaranth.back import rtlil

    from specmx.hdl.fma import FMA
    from specmx.synth import GATE_LIBRARY, _yosys
    text = rtlil.convert(FMA(cfg, 0), name="fma")
    path = Path(folder) / f"netlist_{cfg.slug}_{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="specmx-power-") as tmp:
        (Path(tmp) / "fma.il").write_text(text)
        _yosys(f"read_rtlil fma.il; synth -top fma -flatten; abc -g {GATE_LIBRARY}; opt_clean; "
               f"write_json netlist.json", tmp)
        (Path(tmp) / "netlist.json").replace(path)
    return path


def minilm_layers(fmt="bf16", sentences=1, layers=(0, 5)):
    """Operand matrices (A bits, B bits in input format `fmt`) of the query, intermediate and
    output linear layers of the given encoder layers, from all-MiniLM-L6-v2 on the first
    `sentences` of the evaluation set (float forward; operands rounded to `fmt` as the engine
    takes them, E4M3 saturating at +-448)."""
    from specmx.models.bert import MiniLM, float_matmul
    from specmx.models.formats import encode, get_format
    from specmx.models.minilm_eval import load_eval
    model = MiniLM.from_pretrained()
    wanted = {id(model.w[f"encoder.layer.{i}.{name}.weight"]): f"layer {i} {name}" for i in layers
              for name in ("attention.self.query", "intermediate.dense", "output.dense")}
    captured = []
    fmt = get_format(fmt)

    def recording(A, B, bias=None):
        if id(B) in wanted:
            captured.append((encode(A.reshape(-1, A.shape[-1]).astype(np.float64), fmt, overflow="saturate"),
                             encode(B.astype(np.float64), fmt, overflow="saturate")))
        return float_matmul(A, B, bias)
    model.embed(load_eval(1).sentences[:sentences], recording)
    return captured


class GateNetlist:
    """A flat netlist of Yosys internal gate cells, evaluated over streams of input words."""

    def __init__(self, path, top="fma"):
        module = json.loads(Path(path).read_text())["modules"][top]
        self.ports = {name: (p["direction"], p["bits"]) for name, p in module["ports"].items()}
        self.cells = []
        graph = nx.DiGraph()
        for name, cell in module["cells"].items():
            if cell["type"] not in _OPS:
                raise ValueError(f"netlist: cell {name} of type {cell['type']} is not a 2-input gate or mux")
            conn = {pin: bits[0] for pin, bits in cell["connections"].items()}
            self.cells.append((cell["type"], conn))
            graph.add_node(len(self.cells) - 1)
        driver = {conn["Y"]: i for i, (_, conn) in enumerate(self.cells)}
        for i, (_, conn) in enumerate(self.cells):
            for pin, bit in conn.items():
                if pin != "Y" and bit in driver:
                    graph.add_edge(driver[bit], i)
        self.order = list(nx.topological_sort(graph))

    def counts(self):
        """Gates per cell type."""
        return dict(Counter(kind for kind, _ in self.cells))

    def run(self, inputs):
        """Evaluate on `inputs` ({port: int array of words}, one element per cycle). Returns
        (outputs {port: int64 words}, toggles {cell type: count}) where a toggle is a gate
        output differing from its value on the cycle before."""
        n = len(next(iter(inputs.values())))
        nets = {"0": np.zeros(n, bool), "1": np.ones(n, bool), "x": np.zeros(n, bool)}
        for name, (direction, bits) in self.ports.items():
            if direction == "input":
                words = np.asarray(inputs.get(name, np.zeros(n, np.int64)), np.int64)
                for j, bit in enumerate(bits):
                    nets[bit] = ((words >> j) & 1).astype(bool)
        toggles = {}
        for i in self.order:
            kind, conn = self.cells[i]
            y = _OPS[kind]({pin: nets[bit] for pin, bit in conn.items() if pin != "Y"})
            nets[conn["Y"]] = y
            toggles[kind] = toggles.get(kind, 0) + int(np.count_nonzero(y[1:] != y[:-1]))
        outputs = {}
        for name, (direction, bits) in self.ports.items():
            if direction == "output":
                word = np.zeros(n, np.int64)
                for j, bit in enumerate(bits):
                    word |= nets[bit].astype(np.int64) << j
                outputs[name] = word
        return outputs, toggles


def pe_streams(cfg, layers, per_layer=8, seed=0):
    """Operand streams of output-stationary PEs: for `per_layer` random output elements (m, n)
    of each captured layer (A_bits [M, K], B_bits [K, N]), the cycles k = 0..K-1 with a =
    A[m, k], b = B[k, n] and c the PE's running sum under `cfg` (from +0). Returns (a, b, c, r)
    int64 arrays, streams concatenated."""
    from specmx.models.fma import fma, to_internal
    rng = np.random.default_rng(seed)
    parts = []
    for A, B in layers:
        m = rng.integers(0, A.shape[0], per_layer)
        n = rng.integers(0, B.shape[1], per_layer)
        a_k, b_k = A[m, :].T, B[:, n]                            # [K, streams]
        start = np.zeros(per_layer, np.int64)
        chain = [to_internal(start, cfg) if cfg.internal else start]
        for k in range(A.shape[1]):
            chain.append(fma(a_k[k], b_k[k], chain[-1], cfg))
        chain = np.stack(chain)                                  # [K + 1, streams]: c before, r after each cycle
        parts.append([x.T.reshape(-1) for x in (a_k, b_k, chain[:-1], chain[1:])])   # stream after stream
    return tuple(np.concatenate(column) for column in zip(*parts))


def toggles_per_mac(netlist, streams):
    """Run `streams` (a, b, c, r) through `netlist`: (weighted toggles per multiply-add,
    unweighted toggles per multiply-add, number of cycles whose output differs from r)."""
    a, b, c, r = streams
    outputs, toggles = netlist.run({"a": a, "b": b, "c": c, "valid": np.ones_like(a), "en": np.ones_like(a)})
    mismatches = int(np.count_nonzero(outputs["r"] != r))
    weighted = sum(GATE_WEIGHTS[k] * v for k, v in toggles.items())
    return weighted / len(a), sum(toggles.values()) / len(a), mismatches


def power_study(cfg, folder="out/power", streams_per_layer=8, sentences=1, quiet=False):
    """Weighted toggles per multiply-add of `cfg` and of exact normalization with the same
    formats, on the same MiniLM operands (`toggles_per_mac` for each), and their ratio."""
    import sys

    from specmx.models.config import FMAConfig
    layers = minilm_layers(cfg.in_fmt, sentences)
    exact = FMAConfig(cfg.in_fmt, cfg.acc_fmt, rounding=cfg.rounding, subnormals=cfg.subnormals)
    out = {"config": cfg.name, "exact": exact.name, "layers": len(layers), "streams_per_layer": streams_per_layer}
    for key, c in (("config", cfg), ("exact", exact)):
        if not quiet:
            print(f"  power: synthesizing and simulating {c.name}", file=sys.stderr, flush=True)
        netlist = GateNetlist(fma_netlist(c, folder))
        streams = pe_streams(c, layers, streams_per_layer)
        weighted, plain, bad = toggles_per_mac(netlist, streams)
        if bad:
            raise RuntimeError(f"power: the gate-level netlist of {c.name} disagrees with the golden FMA "
                               f"on {bad} of {len(streams[0])} cycles")
        prefix = "" if key == "config" else "exact_"
        out.update({f"{prefix}toggles_per_mac": weighted, f"{prefix}toggles_per_mac_unweighted": plain,
                    f"{prefix}gates": sum(netlist.counts().values()), f"{prefix}macs": len(streams[0])})
    out["ratio_vs_exact"] = out["toggles_per_mac"] / out["exact_toggles_per_mac"]
    out["gates_vs_exact"] = out["gates"] / out["exact_gates"]
    return out
