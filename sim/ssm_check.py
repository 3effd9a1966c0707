"""Host side of the SSM datapath regressions: vectors, golden results, simulation, cycle check."""

import functools
import tempfile
from pathlib import Path

import numpy as np

from specmx.models import function_units as fu
from specmx.models.config import SSMConfig
from specmx.models.formats import encode
from specmx.models.perf.ssm import conv_cycles, fadd_cycles, function_unit_cycles, rmsnorm_cycles, scan_cycles
from specmx.models.ssm_numerics import HardwareOps, conv_stream, rmsnorm_stream, scan_slots_stream, scan_stream
from specmx.models.ssm_stimulus import scan_vectors
from specmx.sim.runner import build_root, run_cocotb, to_verilog
from specmx.sim.streams import pack_lanes

__all__ = ["function_vectors", "check_function", "conv_vectors", "check_conv", "scan_vectors", "check_scan",
           "scan_tree_vectors", "check_scan_tree", "conv_tree_vectors", "check_conv_tree", "rmsnorm_vectors", "check_rmsnorm", "pack_beats", "EDGES",
           "fadd_vectors", "check_fadd"]

# Range edges of the fp32 function units: zeros, the smallest/largest subnormal and normal, one,
# the saturation threshold 128 and its neighbours, exp's overflow/underflow thresholds, inf, NaN.
EDGES = np.array([0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF,
                  0x00800000, 0x80800000, 0x3F800000, 0xBF800000, 0x42FFFFFF, 0xC2FFFFFF,
                  0x43000000, 0xC3000000, 0x42B17217, 0x42B17218, 0xC2CFF1B4, 0xC2CFF1B5,
                  0xC2AEAC4F, 0xC2AEAC50, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000,
                  0x7FC00000, 0xFFC00001, 0x7F800001, 0x41A00000, 0xC1A00000, 0x33800000],
                 dtype=np.int64)


def function_vectors(random=4000, seed=0, exhaustive_bf16=True):
    """fp32 input words: every bf16 pattern widened to fp32 (65536), `random` uniformly random
    32-bit patterns, and the range edges."""
    parts = [np.arange(1 << 16, dtype=np.int64) << 16] if exhaustive_bf16 else []
    parts.append(np.random.default_rng(seed).integers(0, 1 << 32, random, dtype=np.int64))
    parts.append(EDGES)
    return np.concatenate(parts)


@functools.lru_cache(maxsize=16)
def _rtl(toplevel, *args):
    """The component of a unit (`toplevel` names it: fu, conv, scan, rmsnorm, conv_tree,
    scan_tree) built from `args`, and its Verilog, converted once per design."""
    from specmx.hdl.conv import ConvUnit            # keep Amaranth out of model-only imports
    from specmx.hdl.fadd import FAddChain
    from specmx.hdl.function_unit import FunctionUnit
    from specmx.hdl.rmsnorm import RMSNormUnit
    from specmx.hdl.scan import ScanUnit
    make = {"fu": FunctionUnit, "conv": ConvUnit, "conv_tree": ConvUnit, "scan": ScanUnit, "scan_tree": ScanUnit,
            "rmsnorm": RMSNormUnit, "fadd": FAddChain}[toplevel]
    rtl = make(*args)
    return rtl, to_verilog(rtl, toplevel)


def _corrupt(expected, corrupt, seed):
    if corrupt:
        idx = np.random.default_rng(seed + 1).choice(expected.size, corrupt, replace=False)
        expected.ravel()[idx] ^= 1
    return expected


def _run_stream_unit(rtl, verilog, toplevel, inputs, expected, lanes, simulator, seed, idle,
                     backpressure, waves, word_bits=32, optimize="-O1", beat_limbs=None):
    build_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_root()) as tmp:
        path = Path(tmp) / "vectors.npz"
        extra = {} if beat_limbs is None else {"beat_limbs": beat_limbs}
        np.savez(path, inputs=inputs, expected=expected, **extra)
        result = run_cocotb(rtl, toplevel, "specmx.sim.tb_stream_unit",
                            {"SPECMX_VECTORS": path, "SPECMX_SEED": seed, "SPECMX_IDLE": idle,
                             "SPECMX_BACKPRESSURE": backpressure, "SPECMX_LANES": lanes,
                             "SPECMX_WORD_BITS": word_bits}, simulator,
                            verilog_text=verilog, waves=waves, optimize=optimize)
    report = {"mismatches": None, "cycles": None, "starved": 0, "held": 0, "first_mismatches": [],
              "vectors": int(len(inputs))}
    report.update(result.report)
    report.update(passed=result.passed, log_dir=str(result.log_dir),
                  waves=str(result.waves) if result.waves else None)
    return report


def _judged(report, predicted):
    """Add the cycle model's verdict: `predicted_cycles`, `cycles_match`, and `ok` (the run
    passed, every word matched, and the measured cycles equal the prediction)."""
    report["predicted_cycles"] = predicted.total
    report["cycles_match"] = report["cycles"] == predicted.total
    report["ok"] = bool(report["passed"] and report["mismatches"] == 0 and report["cycles_match"])
    return report


def check_function(name, inputs=None, lanes=1, simulator="verilator", seed=0, idle=0.0,
                   backpressure=0.0, corrupt=0, waves=None, cycle_model=function_unit_cycles):
    """Simulate function unit `name` (`lanes` words per beat) on fp32 words `inputs` (default:
    `function_vectors`, padded with +0 to whole beats) and compare every result with the golden
    model and the measured cycles with the cycle model.

    `name` may be a tuple of functions, one per lane: every input word then goes through every
    lane (one build and one run check them all). `corrupt` flips a bit of that many expected
    words and `cycle_model` replaces the cycle model (negative controls). Returns the testbench
    report plus `predicted_cycles`, `cycles_match` and `ok` (bits and cycles right)."""
    names = tuple(name) if isinstance(name, (tuple, list)) else None
    for one in names or (name,):
        if one not in fu.FUNCTIONS:
            raise ValueError(f"unit: unknown function {one!r}; allowed: {', '.join(fu.FUNCTIONS)}")
    inputs = function_vectors(seed=seed) if inputs is None else np.asarray(inputs, dtype=np.int64)
    if names:
        lanes = len(names)
        words = np.repeat(inputs, lanes)                        # word j of beat i = inputs[i]
        expected = np.stack([fu.evaluate(one, inputs) for one in names], axis=1).reshape(-1)
    else:
        words = np.concatenate([inputs, np.zeros(-len(inputs) % lanes, dtype=np.int64)])
        expected = fu.evaluate(name, words)
    expected = _corrupt(expected, corrupt, seed)
    rtl, verilog = _rtl("fu", names or name, lanes)
    report = _run_stream_unit(rtl, verilog, "fu", words, expected, lanes, simulator, seed,
                              idle, backpressure, waves)
    return _judged(report, cycle_model(names or name, len(words), report["starved"], report["held"], lanes))


def fadd_vectors(n, adders, seed=0):
    """[words, adders + 1] fp32 operands of an add chain: uniformly random 32-bit patterns;
    operands close in magnitude with opposite signs (cancellation); subnormals; neighbours a few
    ulps apart; and every pair of the range edges (`EDGES`, the other addends random)."""
    rng = np.random.default_rng(seed)
    k = adders + 1
    word = lambda size: rng.integers(0, 1 << 32, size, dtype=np.int64)
    base = word((n, 1))
    parts = [word((n, k)),
             base ^ (rng.integers(0, 1 << 8, (n, k)) | (rng.integers(0, 2, (n, k)) << 31)),
             rng.integers(0, 1 << 24, (n, k), dtype=np.int64) | (rng.integers(0, 2, (n, k)) << 31),
             (base + rng.integers(-3, 4, (n, k))) & 0xFFFFFFFF]
    ea, eb = (g.reshape(-1, 1) for g in np.meshgrid(EDGES, EDGES))
    parts.append(np.concatenate([ea, eb, word((ea.size, k - 2))], axis=1))
    return np.concatenate(parts)


def check_fadd(lanes=1, adders=2, n=4000, simulator="verilator", seed=0, idle=0.0, backpressure=0.0, corrupt=0,
               waves=None, cycle_model=fadd_cycles):
    """Simulate an fp32 add chain (`hdl.fadd.FAddChain(lanes, adders)`) on `fadd_vectors` and
    compare every sum, bit for bit, with numpy's float32 adds (`fadd_chain`; NaN canonical) and
    the measured cycles with the cycle model. `corrupt`, `cycle_model`: negative controls."""
    operands = fadd_vectors(n, adders, seed)
    operands = np.concatenate([operands, np.zeros((-len(operands) % lanes, adders + 1), dtype=np.int64)])
    expected = _corrupt(fu.fadd_chain(operands), corrupt, seed)
    beats = pack_lanes(operands.reshape(-1, lanes * (adders + 1)), 32)       # lane 0's x lowest
    beat_limbs = _limbs(beats, 32 * (adders + 1) * lanes)
    rtl, verilog = _rtl("fadd", lanes, adders)
    report = _run_stream_unit(rtl, verilog, "fadd", operands[:, 0], expected, lanes, simulator, seed, idle,
                              backpressure, waves, beat_limbs=beat_limbs)
    return _judged(report, cycle_model(len(operands), adders, report["starved"], report["held"], lanes))


def conv_vectors(ssm: SSMConfig, tokens, seed=0, corners=True):
    """Inputs of a conv-unit run: x [T, D] fp32 words, w [D, K] and bias [D] bf16 words, clear
    [T]. Random normal values; with `corners`, tokens of zeros, of large values (1e30), of
    subnormals, one with a NaN and an inf, and a clear in the middle of the stream."""
    rng = np.random.default_rng(seed)
    D, K = ssm.d_inner, ssm.kernel
    x = rng.standard_normal((tokens, D)) * 2.0
    clear = np.zeros(tokens, dtype=np.int64)
    clear[0] = 1
    if corners and tokens >= 8:
        x[1] = 0.0
        x[2] = rng.choice([-1, 1], D) * 1e30
        x[3] = rng.standard_normal(D) * 1e-40           # fp32 subnormals
        x[4, 0], x[4, -1] = np.nan, -np.inf
        clear[tokens // 2] = 1
    w = encode(rng.standard_normal((D, K)) * 0.5, "bf16")
    bias = encode(rng.standard_normal(D) * 0.1, "bf16")
    return encode(x, "fp32"), w, bias, clear


def _conv_records(ssm, x, w, bias, v):
    """One record per beat in stream order (`hdl.conv.conv_layout`): per lane x, w, bias; the
    clear bit; in tree mode (`v` holds src) the slots, load flag and window of the token."""
    L, K = ssm.lanes, ssm.kernel
    for t in range(x.shape[0]):
        for g in range(ssm.d_inner // L):
            lanes = [{"x": x[t, g * L + l], "w": w[g * L + l], "bias": bias[g * L + l]} for l in range(L)]
            tree = {} if "src" not in v else {
                "src": v["src"][t], "dst": v["dst"][t], "load": v["load"][t],
                "win": sum(int(word) << (16 * i) for i, word in enumerate(v["win"][t, g * L:(g + 1) * L].reshape(-1)))}
            yield {"lanes": lanes, "clear": v["clear"][t], **tree}


def check_conv(ssm: SSMConfig, tokens=24, simulator="verilator", seed=0, idle=0.0, backpressure=0.0,
               corrupt=0, corners=True, waves=None, cycle_model=conv_cycles):
    """Simulate the conv unit of `ssm` on `tokens` tokens (`conv_vectors`) and compare every
    output word with the hardware numerics model and the cycles with the cycle model (negative
    controls: `corrupt`, `cycle_model`). Returns the report with `predicted_cycles`,
    `cycles_match` and `ok`."""
    x, w, bias, clear = conv_vectors(ssm, tokens, seed, corners)
    expected = conv_stream(HardwareOps(ssm.fma, ssm.lanes), x, w, bias, clear).reshape(-1)
    expected = _corrupt(expected, corrupt, seed)
    from specmx.hdl.conv import conv_layout
    rtl, verilog = _rtl("conv", ssm)
    beats = pack_beats(conv_layout(ssm), _conv_records(ssm, x, w, bias, {"clear": clear}))
    report = _run_stream_unit(rtl, verilog, "conv", x.reshape(-1), expected, ssm.lanes, simulator, seed,
                              idle, backpressure, waves, optimize="-O0",      # short runs: build fast
                              beat_limbs=beats)
    return _judged(report, cycle_model(ssm, tokens, report["starved"], report["held"]))


def pack_beats(layout, records):
    """Input beats of an Amaranth struct layout from nested dicts/lists of ints (one per beat),
    as 64-bit limbs (low limb first): the host side of a structured stream payload."""
    from specmx.hdl.compose import pack_struct
    return _limbs([pack_struct(layout, r) for r in records], layout.size)


def _limbs(beats, bits):
    """Beats (Python ints of `bits` bits) as rows of 64-bit limbs, low limb first."""
    limbs = -(-bits // 64)
    return np.array([[(b >> (64 * i)) & ((1 << 64) - 1) for i in range(limbs)] for b in beats], dtype=np.uint64)


def scan_tree_vectors(ssm: SSMConfig, parent, seed=0):
    """Inputs of a tree-mode scan run over the tree `parent`: a load token that puts a random
    starting state (unit scale, a few large and tiny values) into slot 0, then one token per
    node, reading and writing the slots of `specdec.assign_slots`. Returns (v, slots)."""
    from specmx.models.specdec import assign_slots
    src, dst, slots = assign_slots(parent)
    n = len(src)
    v = scan_vectors(ssm, n + 1, seed, corners=False)
    rng = np.random.default_rng(seed + 7)
    h0 = rng.standard_normal((ssm.d_inner, ssm.d_state)) * np.exp(rng.normal(0, 2, (ssm.d_inner, ssm.d_state)))
    v["clear"][:] = 0
    v["src"], v["dst"] = np.array([0] + src), np.array([0] + dst)
    v["load"] = np.array([1] + [0] * n)
    v["h"] = np.zeros((n + 1, ssm.d_inner, ssm.d_state), dtype=np.int64)
    v["h"][0] = encode(h0, "fp32")
    return v, max(slots, 2)


def _state_words(ssm, h):
    """A token's state [d_inner, d_state] (either family's layout, flattened per channel) as
    lanes-wide beats in stream order: lane l of beat (c, j) = h[c, j*lanes + l]."""
    L = ssm.lanes
    return h.reshape(ssm.d_inner, ssm.d_state // L, L).reshape(-1, L)


def check_scan(ssm: SSMConfig, tokens=16, simulator="verilator", seed=0, idle=0.0, backpressure=0.0,
               corrupt=0, corners=True, waves=None, cycle_model=scan_cycles):
    """Simulate the scan unit of `ssm` on `tokens` tokens (`scan_vectors`) and compare every
    gated output word with the hardware numerics model (`scan_stream`) and the cycles with the
    cycle model (negative controls: `corrupt`, `cycle_model`). Returns the report with
    `predicted_cycles`, `cycles_match` and `ok`."""
    from specmx.hdl.scan import scan_layout, scan_records
    v = scan_vectors(ssm, tokens, seed, corners)
    expected = scan_stream(HardwareOps(ssm.fma, ssm.lanes), ssm.family, v).reshape(-1)
    expected = _corrupt(expected, corrupt, seed)
    rtl, verilog = _rtl("scan", ssm)
    beats = pack_beats(scan_layout(ssm), scan_records(ssm, v))
    report = _run_stream_unit(rtl, verilog, "scan", np.arange(expected.size), expected, 1, simulator,
                              seed, idle, backpressure, waves, optimize="-O0", beat_limbs=beats)
    return _judged(report, cycle_model(ssm, tokens, report["starved"], report["held"]))


def check_scan_tree(ssm: SSMConfig, parent, simulator="verilator", seed=0, idle=0.0, backpressure=0.0,
                    corrupt=0, corrupt_state=0, waves=None, cycle_model=scan_cycles):
    """Simulate the scan unit in tree mode over the tree `parent` (`scan_tree_vectors`): every
    node's gated outputs and every node's new state against `scan_slots_stream`, the cycles
    against the cycle model (the load token counts as a token). Negative controls: `corrupt`
    output words, `corrupt_state` state beats, `cycle_model`. Returns the report with
    `predicted_cycles`, `cycles_match` and `ok`."""
    from specmx.hdl.scan import scan_layout, scan_records
    v, slots = scan_tree_vectors(ssm, parent, seed)
    y, states = scan_slots_stream(HardwareOps(ssm.fma, ssm.lanes), ssm.family, v, slots)
    expected = _corrupt(y.reshape(-1), corrupt, seed)
    state_beats = np.concatenate([_state_words(ssm, h) for h in states])
    state_beats = _corrupt_beats(_limbs([sum(int(w) << (32 * l) for l, w in enumerate(row)) for row in state_beats],
                                        32 * ssm.lanes), corrupt_state, seed)
    rtl, verilog = _rtl("scan_tree", ssm, slots)
    beats = pack_beats(scan_layout(ssm, slots), scan_records(ssm, v))
    report = _run_two_output_unit(rtl, verilog, "scan_tree", beats, _limbs([int(w) for w in expected], 32),
                                  state_beats, simulator, seed, idle, backpressure, waves)
    report.update(nodes=len(parent), slots=slots)
    return _judged_tree(report, cycle_model(ssm, len(parent) + 1, report["starved"], report["held"]))


def _run_two_output_unit(rtl, verilog, toplevel, beats, expected_o, expected_s, simulator, seed, idle,
                         backpressure, waves):
    """Run `tb_two_outputs` (input beats, expected `o` and `s` beats, all as 64-bit limb rows)."""
    build_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_root()) as tmp:
        path = Path(tmp) / "vectors.npz"
        np.savez(path, beat_limbs=beats, expected_o_limbs=expected_o, expected_s_limbs=expected_s)
        result = run_cocotb(rtl, toplevel, "specmx.sim.tb_two_outputs",
                            {"SPECMX_VECTORS": path, "SPECMX_SEED": seed, "SPECMX_IDLE": idle,
                             "SPECMX_BACKPRESSURE": backpressure}, simulator,
                            verilog_text=verilog, waves=waves, optimize="-O0")
    report = {"mismatches": None, "state_mismatches": None, "cycles": None, "starved": 0, "held": 0,
              "first_mismatches": [], "vectors": len(expected_o)}
    report.update(result.report)
    report.update(passed=result.passed, log_dir=str(result.log_dir),
                  waves=str(result.waves) if result.waves else None)
    return report


def _judged_tree(report, predicted):
    """`_judged`, and every state beat must match too."""
    report = _judged(report, predicted)
    report["ok"] = bool(report["ok"] and report["state_mismatches"] == 0)
    return report


def _corrupt_beats(limbs, corrupt, seed):
    """Flip the low bit of `corrupt` random beats (rows of limbs): a negative control."""
    if corrupt:
        idx = np.random.default_rng(seed + 2).choice(len(limbs), corrupt, replace=False)
        limbs[idx, 0] ^= np.uint64(1)
    return limbs


def conv_tree_vectors(ssm: SSMConfig, parent, seed=0):
    """Inputs of a tree-mode conv run over the tree `parent`: a load token that puts a random
    starting window (bf16 operands) into slot 0, then one token per node (random inputs with a
    NaN, an inf, a huge and a subnormal value among them), reading and writing the slots of
    `specdec.assign_slots`. Returns (x, w, bias, v, slots)."""
    from specmx.models.specdec import assign_slots
    src, dst, slots = assign_slots(parent)
    n = len(src)
    x, w, bias, _ = conv_vectors(ssm, n + 1, seed, corners=False)
    rng = np.random.default_rng(seed + 9)
    if n >= 4:
        x[2, 0], x[3, -1] = encode(np.array([np.nan]), "fp32")[0], encode(np.array([np.inf]), "fp32")[0]
        x[1, 0], x[1, -1] = encode(np.array([1e30, 1e-40]), "fp32")
    win = np.zeros((n + 1, ssm.d_inner, ssm.kernel - 1), dtype=np.int64)
    win[0] = encode(rng.standard_normal((ssm.d_inner, ssm.kernel - 1)) * 2.0, "bf16")
    v = {"clear": np.zeros(n + 1, dtype=np.int64), "src": np.array([0] + src), "dst": np.array([0] + dst),
         "load": np.array([1] + [0] * n), "win": win}
    return x, w, bias, v, max(slots, 2)


def check_conv_tree(ssm: SSMConfig, parent, simulator="verilator", seed=0, idle=0.0, backpressure=0.0,
                    corrupt=0, corrupt_state=0, waves=None, cycle_model=conv_cycles):
    """Simulate the conv unit in tree mode over the tree `parent` (`conv_tree_vectors`): every
    node's outputs and new window against `conv_slots_stream`, the cycles against the cycle
    model (the load token counts as a token). Negative controls: `corrupt` output words,
    `corrupt_state` window beats, `cycle_model`. Returns the report with `ok`."""
    from specmx.hdl.conv import conv_layout
    from specmx.models.ssm_numerics import conv_slots_stream
    x, w, bias, v, slots = conv_tree_vectors(ssm, parent, seed)
    y, windows = conv_slots_stream(HardwareOps(ssm.fma, ssm.lanes), x, w, bias, v, slots)
    L, K = ssm.lanes, ssm.kernel
    expected = _corrupt(y.reshape(-1, L), corrupt, seed)
    out_beats = _limbs([sum(int(word) << (32 * l) for l, word in enumerate(row)) for row in expected], 32 * L)
    win_rows = windows.reshape(-1, L * (K - 1))
    state_beats = _corrupt_beats(_limbs([sum(int(word) << (16 * i) for i, word in enumerate(row)) for row in win_rows],
                                        16 * L * (K - 1)), corrupt_state, seed)
    rtl, verilog = _rtl("conv_tree", ssm, slots)
    beats = pack_beats(conv_layout(ssm, slots), _conv_records(ssm, x, w, bias, v))
    report = _run_two_output_unit(rtl, verilog, "conv_tree", beats, out_beats, state_beats, simulator, seed,
                                  idle, backpressure, waves)
    report.update(nodes=len(parent), slots=slots, vectors=int(y.size))
    return _judged_tree(report, cycle_model(ssm, len(parent) + 1, report["starved"], report["held"]))


def rmsnorm_vectors(length, vectors, seed=0, corners=True):
    """x [V, length] fp32 words and w [V, length] bf16 words: random normal vectors at scales
    from 1e-3 to 1e3; with `corners` (V >= 6), a zero vector, one whose squares overflow
    (1e30), one of subnormals, one with a NaN and an inf, and one with a single nonzero."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((vectors, length)) * 10.0 ** rng.uniform(-3, 3, (vectors, 1))
    if corners and vectors >= 6:
        x[0] = 0.0
        x[1] *= 1e30
        x[2] = rng.standard_normal(length) * 1e-40
        x[3, 0], x[3, -1] = np.nan, -np.inf
        x[4] = 0.0
        x[4, length // 2] = -3.0
    w = 1.0 + 0.1 * rng.standard_normal((vectors, length))
    return encode(x, "fp32"), encode(w, "bf16")


def check_rmsnorm(fma, length, vectors=8, eps=1e-5, simulator="verilator", seed=0, idle=0.0,
                  backpressure=0.0, corrupt=0, corners=True, waves=None, cycle_model=rmsnorm_cycles):
    """Simulate the RMSNorm unit on `vectors` vectors of `length` words (`rmsnorm_vectors`) and
    compare every result with the hardware numerics model and the cycles with the cycle model
    (negative controls: `corrupt`, `cycle_model`). Returns the report with `predicted_cycles`,
    `cycles_match` and `ok`."""
    from specmx.hdl.rmsnorm import rmsnorm_layout
    x, w = rmsnorm_vectors(length, vectors, seed, corners)
    expected = _corrupt(rmsnorm_stream(HardwareOps(fma), x, w, eps).reshape(-1), corrupt, seed)
    rtl, verilog = _rtl("rmsnorm", fma, length, eps)
    beats = pack_beats(rmsnorm_layout(), ({"x": a, "w": b} for a, b in zip(x.reshape(-1), w.reshape(-1))))
    report = _run_stream_unit(rtl, verilog, "rmsnorm", x.reshape(-1), expected, 1, simulator, seed,
                              idle, backpressure, waves, optimize="-O0", beat_limbs=beats)
    return _judged(report, cycle_model(length, vectors, report["starved"], report["held"]))
