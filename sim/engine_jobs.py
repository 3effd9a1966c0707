"""What the host sends to and reads from the engine's units for one operation, in numpy: the
beats of a conv or scan run in tree mode (an optional load token with the starting state, then
one token per node reading slot `src` and writing `dst`), of a linear layer on the matrix
engine, of an RMSNorm and of a softplus run, and the decoding of their output words into
values. Shared by the co-simulations (`sim/tb_tree_ssm.py`, `sim/tb_mamba_engine.py`)."""

import numpy as np

from specmx.models.formats import decode, encode
from specmx.models.gemm_streams import block_rows, result_beats, stream_beats, tiles
from specmx.hdl.rmsnorm import rmsnorm_layout
from specmx.hdl.scan import scan_records
from specmx.sim.ssm_check import _conv_records, pack_beats
from specmx.sim.streams import pack_lanes

__all__ = ["bf16", "state_mismatches", "words_of", "conv_job", "scan_job", "linear_job", "norm_job", "function_job",
           "channel_job"]

F32_MASK = (1 << 32) - 1


def bf16(ops, x):
    """Values as the bf16 words a multiplier sees (round to nearest even, NaN canonical)."""
    return encode(ops.operand(np.asarray(x, np.float64)), "bf16")


def state_mismatches(ops, gold, rtl):
    """Words that differ between two lists of states (per-layer conv windows compared as the bf16
    operands they hold, SSM states as raw fp32 bit patterns)."""
    bad = 0
    for g, r in zip(gold, rtl):
        bad += sum(int(np.sum(bf16(ops, a) != bf16(ops, b))) for a, b in zip(g.conv, r.conv))
        bad += sum(int(np.sum(a.view(np.int32) != b.view(np.int32))) for a, b in zip(g.ssm, r.ssm))
    return bad


def words_of(beats, bits, lanes):
    """[beats, lanes] words from beats packed lane 0 low."""
    mask = (1 << bits) - 1
    return np.array([[(b >> (bits * l)) & mask for l in range(lanes)] for b in beats], dtype=np.int64)


def conv_job(cfg, layout, ops, L, start, pre, src, dst, corrupt_weight=False):
    """Conv unit run: a load token writing `start` (the starting window [D, K-1], or None for no
    load) into slot 0, then a token per row of `pre` reading `src` and writing `dst`.
    Returns (input beats, output beats, state beats, decode(o, s) -> (outputs [n, D] fp32
    values, new windows [n, D, K-1] as the values of their bf16 words))."""
    K, D, n = cfg.kernel, cfg.d_inner, len(src)
    load = start is not None
    rows = n + load
    x = np.zeros((rows, D), dtype=np.int64)
    x[load:] = encode(np.asarray(pre, np.float64), "fp32")
    win = np.zeros((rows, D, K - 1), dtype=np.int64)
    if load:
        win[0] = bf16(ops, start)
    w, b = bf16(ops, L["conv_w"]), bf16(ops, L["conv_b"])
    if corrupt_weight:
        w = w.copy()
        w[0, 0] ^= 1                                          # one weight word, one bit
    v = {"clear": np.zeros(rows, np.int64), "src": [0] * load + list(src), "dst": [0] * load + list(dst),
         "load": [1] * load + [0] * n, "win": win}
    beats = pack_lanes(pack_beats(layout, _conv_records(cfg, x, w, b, v)), 64)
    groups = D // cfg.lanes

    def decoded(outs, states):
        y = words_of(outs, 32, cfg.lanes).reshape(n, D)
        windows = words_of(states, 16, cfg.lanes * (K - 1)).reshape(n, D, K - 1)
        return decode(y, "fp32").astype(np.float32), decode(windows, "bf16").astype(np.float32)

    return beats, n * groups, n * groups, decoded


def scan_job(cfg, layout, ops, L, start, u, dt, z, B, C, src, dst):
    """Scan unit run: a load token writing `start` (or None), then a token per node. Returns
    (input beats, output beats, state beats, decode(o, s) -> (gated outputs [n, d_inner], new
    states [n, *state shape]))."""
    n, load = len(src), start is not None
    f32 = lambda a: encode(np.asarray(a, np.float64), "fp32")
    pad = (lambda a: np.concatenate([np.zeros((1,) + np.shape(a)[1:]), a])) if load else (lambda a: np.asarray(a))
    rows = n + load
    h = np.zeros((rows, cfg.d_inner, cfg.d_state), dtype=np.int64)
    if load:
        h[0] = f32(np.asarray(start).reshape(cfg.d_inner, cfg.d_state))
    v = {"dt": f32(pad(dt)), "u": f32(pad(u)), "z": f32(pad(z)), "A": bf16(ops, L["A"]),
         "B": bf16(ops, pad(B)), "C": bf16(ops, pad(C)), "D": bf16(ops, L["D"]),
         "clear": np.zeros(rows, np.int64), "src": [0] * load + list(src), "dst": [0] * load + list(dst),
         "load": [1] * load + [0] * n, "h": h}
    beats = pack_lanes(pack_beats(layout, scan_records(cfg, v)), 64)
    per_node = cfg.d_inner * cfg.d_state // cfg.lanes
    mamba2 = cfg.family == "mamba2"
    shape = (cfg.heads, cfg.d_inner // cfg.heads, cfg.d_state) if mamba2 else (cfg.d_inner, cfg.d_state)

    def decoded(outs, states):
        hs = words_of(states, 32, cfg.lanes)
        return (decode(np.array(outs, dtype=np.int64).reshape(n, cfg.d_inner), "fp32").astype(np.float32),
                decode(hs.reshape((n,) + shape), "fp32").astype(np.float32))

    return beats, n * cfg.d_inner, n * per_node, decoded


def word_pairs(low, high):
    """64-bit lane words from two arrays of 32-bit words (unsigned, so the high word's sign bit
    stays one bit instead of spreading into the lanes above when packed)."""
    return np.asarray(low).astype(np.uint64) | (np.asarray(high).astype(np.uint64) << np.uint64(32))


def linear_job(gemm, ops, x, weight_t, adds=(None, None)):
    """Matrix engine run of `ops.linear(x, weight_t)` (x [M, K], weight_t [K, N]) followed by the
    engine's two result adds, (r + adds[0]) + adds[1] (each broadcast to [M, N]; None: -0, which
    leaves every word as it is): the A beats (x as operands), the B beats (the weights, served
    by the memory model), the addend beats (per lane a1 low, a2 high), the number of result
    beats and decode(results) -> [M, N] float32 (C0 is +0 on chip)."""
    a_words, w_words = bf16(ops, x), bf16(ops, weight_t)
    M, N = a_words.shape[0], w_words.shape[1]
    a, b, _ = stream_beats(gemm, a_words, w_words, np.zeros((M, N), dtype=np.int64))
    width = gemm.fma.in_f.width
    a1, a2 = (result_beats(gemm, encode(np.broadcast_to(np.float32(-0.0) if v is None else np.asarray(v, np.float32),
                                                        (M, N)).astype(np.float64), "fp32"))[0] for v in adds)
    count = len(a1)                                           # one addend beat per result beat
    add_beats = pack_lanes(word_pairs(a1, a2), 64)

    def decoded(results):
        words = words_of(results, 32, gemm.cols)
        out = np.zeros((M, -(-N // gemm.cols) * gemm.cols), dtype=np.int64)
        row = 0
        for m0, n0 in tiles(gemm, M, N):
            top = min(m0 + block_rows(gemm), M)
            out[m0:top, n0:n0 + gemm.cols] = words[row:row + top - m0]
            row += top - m0
        return decode(out[:, :N], "fp32").astype(np.float32)

    return pack_lanes(a, width), pack_lanes(b, width), b.shape[1], add_beats, count, decoded


def norm_job(ops, x, weight):
    """RMSNorm unit run of `ops.rmsnorm` (x [n, D]) or `ops.group_norm` (the unit's length D /
    groups: each row goes in as `groups` vectors): one beat per element, x as its fp32 word and
    the weight as its bf16 word. Returns (input beats, output beats, decode(o) -> [n, D] float32)."""
    x = np.asarray(x, np.float32)
    xs = encode(x.astype(np.float64), "fp32").reshape(-1)
    ws = bf16(ops, np.broadcast_to(np.asarray(weight, np.float32), x.shape)).reshape(-1)
    beats = pack_lanes(pack_beats(rmsnorm_layout(), ({"x": a, "w": b} for a, b in zip(xs, ws))), 64)

    def decoded(outs):
        return decode(np.array(outs, dtype=np.int64).reshape(x.shape), "fp32").astype(np.float32)

    return beats, x.size, decoded


def function_job(x, lanes, bias=None):
    """Function unit run over the words of x (any shape, in C order), `lanes` words per beat, the
    last beat padded with +0. With `bias` (broadcast to x), each lane carries x and its bias
    (64 bits, x low): the engine's softplus unit takes f(x + bias). Returns (input beats, output
    beats, decode(o) -> x's shape, float32)."""
    x = np.asarray(x, np.float32)
    words = encode(x.astype(np.float64), "fp32").reshape(-1)
    bits = 32
    if bias is not None:
        b = np.broadcast_to(np.asarray(bias, np.float32), x.shape)
        words = word_pairs(words, encode(b.astype(np.float64), "fp32").reshape(-1))
        bits = 64
    rows = -(-words.size // lanes)
    padded = np.zeros(rows * lanes, dtype=words.dtype)
    padded[:words.size] = words

    def decoded(outs):
        got = words_of(outs, 32, lanes).reshape(-1)[:words.size]
        return decode(got.reshape(x.shape), "fp32").astype(np.float32)

    return pack_lanes(padded.reshape(rows, lanes), bits), rows, decoded


def channel_job(arrays, words_per_beat):
    """A memory-channel transfer of `arrays` (any shapes) as fp32 words, in order, C order within
    each, `words_per_beat` words a beat (lane 0 low, the last beat padded with +0). Returns
    (beats, decode(beats) -> the arrays back, float32, in their shapes)."""
    flat = [np.asarray(a, np.float32) for a in arrays]
    words = np.concatenate([encode(a.astype(np.float64), "fp32").reshape(-1) for a in flat] or [np.zeros(0, np.int64)])
    rows = max(1, -(-words.size // words_per_beat))
    padded = np.zeros(rows * words_per_beat, dtype=np.int64)
    padded[:words.size] = words

    def decoded(beats):
        got = words_of(beats, 32, words_per_beat).reshape(-1)[:words.size]
        out, at = [], 0
        for a in flat:
            out.append(decode(got[at:at + a.size].reshape(a.shape), "fp32").astype(np.float32))
            at += a.size
        return out

    return pack_lanes(padded.reshape(rows, words_per_beat), 32), decoded
