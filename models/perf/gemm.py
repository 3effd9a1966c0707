"""Cycle model of `hdl.gemm.GEMMEngine` (plain Python, no Amaranth): exact for the RTL.

The engine runs three phases back to back (see the schedule in `hdl/gemm.py`):
  load     L + 1,  L = max(M*K, K*N, M*N) words, all three streams at one word per cycle
           (plus the gaps each source leaves between words, when it leaves any)
  compute  OS: MT*NT*(2R + C + K*s - 1) + R + 1
           WS: NT*KT*(M + R + R*s + C + 1)
  drain    M*N + 1
The streaming schedule (`hdl/stream_gemm.py`, RS = R*s, D = s + R + C - 3, ks = K*s,
P = max(ks, RS + D + 1), MT = ceil(M/RS), NT = ceil(N/C)) overlaps the three:
  load     RS                 C0 of the first tile
  compute  (MT*NT - 1)*P + ks  every tile's steps, one per cycle
  drain    D + (M - (MT-1)*RS) the last tile's results leave the array
and the RTL check adds its measured stall cycles (`stalls`). With a bandwidth limit it streams
(MT*K*s*R + MT*NT*K*C input words: A once, B once per row of tiles; 2*NT*M*C accumulator words)
and takes at least
bytes / bandwidth cycles: a bound, not a schedule the RTL was checked against.
With a memory bandwidth limit (bytes per cycle shared by the load and drain streams), a phase
takes at least its bytes / bandwidth cycles; the excess is reported as stall cycles.
`compute_cycles` counts the cycles in which the array does useful MACs' worth of work (the
M*N*K MACs at R*C per cycle); utilization = compute_cycles / total_cycles.
"""

from dataclasses import asdict, dataclass
from fractions import Fraction
from math import ceil

import numpy as np

from specmx.models.config import DATAFLOWS, GemmConfig, PerfConfig

__all__ = ["GemmCycles", "gemm_cycles", "weight_beat_cycles", "memory_stall_cycles", "scalesim_compute_cycles", "DATAFLOWS", "SCALESIM_DATAFLOWS"]


@dataclass(frozen=True)
class GemmCycles:
    total_cycles: int
    load_cycles: int
    array_cycles: int
    drain_cycles: int
    stall_cycles: int
    compute_cycles: int
    utilization: float
    throughput_gflops: float
    runtime_us: float

    def as_dict(self):
        return asdict(self)


def _positive(name, value, high=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (high and value > high):
        rng = f"1..{high}" if high else ">= 1"
        raise ValueError(f"{name}: must be an integer {rng}, got {value!r}")


def _ws_streaming_cycles(engine: GemmConfig, M, N, K, perf: PerfConfig, stalls):
    """Weight-stationary streaming schedule (hdl/stream_gemm.py): blocks of MB = 2R rows;
    per block KT passes of NT folds, P = max(rows, R, 2) cycles per fold and at least L + 1 per
    pass (L = R*s + C); the last result leaves L cycles after the last row is accepted."""
    R, C, s = engine.rows, engine.cols, engine.pe_stages
    MB, L = 2 * R, R * s + C
    KT, NT = ceil(K / R), ceil(N / C)
    blocks = [min(MB, M - m0) for m0 in range(0, M, MB)]
    passes = [(rows, max(rows, R, 2)) for rows in blocks for _ in range(KT)]
    start = sum(max(NT * period, L + 1) for _, period in passes[:-1])
    rows, period = passes[-1]
    load, array, drain = R, start + (NT - 1) * period + rows, L
    stall = stalls
    if perf.bandwidth is not None:
        words_in = len(blocks) * KT * NT * R * C + KT * M * R
        nbytes = words_in * engine.in_bytes + 2 * NT * M * C * engine.acc_bytes
        stall += max(0, ceil(nbytes / perf.bandwidth) - (load + array + drain))
    return load, array, drain, stall


def _streaming_cycles(engine: GemmConfig, M, N, K, perf: PerfConfig, stalls):
    if engine.dataflow == "ws":
        return _ws_streaming_cycles(engine, M, N, K, perf, stalls)
    R, C, s = engine.rows, engine.cols, engine.pe_stages
    RS, D, ks = R * s, s + R + C - 3, K * s
    MT, NT = ceil(M / RS), ceil(N / C)
    period = max(ks, RS + D + 1)
    load, array, drain = RS, (MT * NT - 1) * period + ks, D + M - (MT - 1) * RS
    stall = stalls
    if perf.bandwidth is not None:
        words_in = MT * K * s * R + MT * NT * K * C
        nbytes = words_in * engine.in_bytes + 2 * NT * M * C * engine.acc_bytes
        stall += max(0, ceil(nbytes / perf.bandwidth) - (load + array + drain))
    return load, array, drain, stall


def gemm_cycles(engine: GemmConfig, M, N, K, perf: PerfConfig = PerfConfig(), input_gaps=(0, 0, 0),
                stalls=0):
    """Cycles of C = A x B + C0 (M x K times K x N) on the engine `engine` at the operating
    point `perf` (clock; interface bytes per cycle, or None for the engine's own
    one-word-per-stream-per-cycle rate). Operand and result widths come from `engine.fma`.
    `input_gaps` (phased schedule) are the idle cycles the A, B and C0 sources leave between
    words: the load phase ends when the slowest stream is complete. `stalls` (streaming
    schedule) are the cycles the engine froze for a missing beat or a refused result.
    Returns a GemmCycles.
    """
    for name, v in (("M", M), ("N", N), ("K", K)):
        _positive(name, v)
    if engine.schedule == "streaming":
        return _result(engine, M, N, K, perf, *_streaming_cycles(engine, M, N, K, perf, stalls))
    R, C, s = engine.rows, engine.cols, engine.pe_stages
    in_bytes, acc_bytes, bandwidth = engine.in_bytes, engine.acc_bytes, perf.bandwidth
    MT, NT, KT = ceil(M / R), ceil(N / C), ceil(K / R)
    gap_a, gap_b, gap_c = input_gaps
    load = max(M * K + gap_a, K * N + gap_b, M * N + gap_c) + 1
    drain = M * N + 1
    if engine.dataflow == "os":
        array = MT * NT * (2 * R + C + K * s - 1) + R + 1
    else:
        array = NT * KT * (M + R + R * s + C + 1)
    stall = 0
    if bandwidth is not None:
        load_bw = ceil(((M * K + K * N) * in_bytes + M * N * acc_bytes) / bandwidth) + 1
        drain_bw = ceil(M * N * acc_bytes / bandwidth) + 1
        stall = max(0, load_bw - load) + max(0, drain_bw - drain)
    return _result(engine, M, N, K, perf, load, array, drain, stall)


def _weight_segments(engine: GemmConfig, M, N, K):
    """The B beats in runs taken at a fixed stride: (cycle of each run's first beat, beats per
    run, stride). Output stationary: a run per tile (K beats, s apart, tile t from RS + t*P);
    weight stationary: a run per fold (R beats, 1 apart; fold 0 at 0, fold f+1 from T_f + 1)."""
    if engine.schedule != "streaming":
        raise ValueError("engine.schedule: weight beats are timed for the streaming schedule only")
    R, C, s = engine.rows, engine.cols, engine.pe_stages
    NT = ceil(N / C)
    if engine.dataflow == "os":
        RS, D = R * s, s + R + C - 3
        period = max(K * s, RS + D + 1)
        return RS + np.arange(ceil(M / RS) * NT, dtype=np.int64) * period, K, s
    MB, L, KT = 2 * R, R * s + C, ceil(K / R)
    fold_starts, start = [], R
    for m0 in range(0, M, MB):
        period = max(min(MB, M - m0), R, 2)
        for _ in range(KT):
            fold_starts.append(start + np.arange(NT, dtype=np.int64) * period)
            start += max(NT * period, L + 1)
    return np.concatenate([[0], np.concatenate(fold_starts)[:-1] + 1]), R, 1


def _candidate_runs(engine: GemmConfig, M, N, K):
    """The runs of B beats at which the memory stalls can peak: (run indices, their first beats'
    cycles, beats per run, stride), as `_weight_segments` gives them for every run. Output
    stationary: the first and last tile. Weight stationary: run 0, and for each block of rows
    the runs after the corner folds of its grid of k passes x n folds (run f+1 starts the cycle
    after fold f; the last fold has no run after it)."""
    R, C, s = engine.rows, engine.cols, engine.pe_stages
    NT = ceil(N / C)
    if engine.dataflow == "os":
        RS, D = R * s, s + R + C - 3
        period, tiles = max(K * s, RS + D + 1), ceil(M / RS) * NT
        run = np.array(sorted({0, tiles - 1}), dtype=np.int64)
        return run, RS + run * period, K, s
    MB, L, KT = 2 * R, R * s + C, ceil(K / R)
    blocks = ceil(M / MB)
    runs, firsts, start, base = [0], [0], R, 0
    for b in range(blocks):
        period = max(min(MB, M - b * MB), R, 2)
        pass_len = max(NT * period, L + 1)
        last = b == blocks - 1
        rects = [(KT - 1, NT - 1)] if not last else [(KT - 2, NT - 1), (KT - 1, NT - 2)]
        corners = set()
        for kt_hi, nf_hi in rects:                          # rectangles kt in 0..kt_hi, nf in 0..nf_hi
            if kt_hi < 0 or nf_hi < 0:
                continue
            lo_kt = KT - 1 if (last and nf_hi == NT - 2) else 0
            corners |= {(kt, nf) for kt in (lo_kt, kt_hi) for nf in (0, nf_hi)}
        for kt, nf in sorted(corners):
            fold = base + kt * NT + nf
            runs.append(fold + 1)
            firsts.append(start + kt * pass_len + nf * period + 1)
        start += KT * pass_len
        base += KT * NT
    return np.array(runs, dtype=np.int64), np.array(firsts, dtype=np.int64), R, 1


def weight_beat_cycles(engine: GemmConfig, M, N, K):
    """When the streaming engine takes each B beat (C weight words) in its unstalled schedule:
    cycles counted from the engine's first input cycle (0 = the cycle after the command).
    Output stationary: tile t's steps start at RS + t*P and take B beat k at step k*s.
    Weight stationary: fold 0's R beats at 0..R-1, fold f+1's R beats at T_f + 1 .. T_f + R
    (T_f: fold f's start; T_0 = R, folds P apart within a k pass, a pass at least L + 1 after
    the previous). Returns an int64 array, one entry per B beat in stream order."""
    first, count, stride = _weight_segments(engine, M, N, K)
    return (first[:, None] + np.arange(count, dtype=np.int64)[None, :] * stride).ravel()


def memory_stall_cycles(engine: GemmConfig, M, N, K, latency, words_per_cycle):
    """Cycles the streaming engine stalls when its B beats (the weights) come from an external
    memory: requested with the command, the first word `latency` cycles later, then
    `words_per_cycle` words per cycle (an integer, or a Fraction for the system model's board
    memories), delivered in order and buffered until taken
    (`sim.streams.MemorySource`), while A, C0 and the results move without stalls.
    Beat i is there from cycle a_i = latency + ceil((i+1)*C / words_per_cycle) (cycle 0 = the
    command) and needed at g_i + 1 (`weight_beat_cycles`); the engine freezes until it comes,
    so the stalls before beat i are D_i = max(D_{i-1}, a_i - g_i - 1), and the run is
    D_last = max(0, max_i(a_i - g_i - 1)) cycles longer. Within a run of beats taken `stride`
    apart, a_i - g_i is monotone (a_i steps by floor or ceil of C/words, an integer stride is
    never strictly between), so only each run's first and last beat are evaluated; and so is the
    run-to-run step of each evenly spaced family of runs (the tiles; the folds of a k pass, and
    the k passes of a block), so only the runs at the corners of each family are
    (`_candidate_runs`): a handful per GEMM at any size."""
    rate = Fraction(words_per_cycle)
    if latency < 0 or not rate > 0:
        raise ValueError(f"memory: latency >= 0 and words per cycle > 0, got {latency}, {words_per_cycle}")
    num, den = rate.numerator, rate.denominator          # a rational rate: num words every den cycles
    run, first, count, stride = _candidate_runs(engine, M, N, K)
    index = run * count                                                      # each run's first beat
    slack = []
    for offset in (0, count - 1):
        arrive = latency + ((index + offset + 1) * engine.cols * den + num - 1) // num
        slack.append(arrive - (first + offset * stride) - 1)
    return int(max(0, np.max(slack[0]), np.max(slack[1])))


def _result(engine, M, N, K, perf, load, array, drain, stall):
    total = load + array + drain + stall
    compute = ceil(M * N * K / (engine.rows * engine.cols))
    seconds = total / (perf.clock_mhz * 1e6)
    return GemmCycles(total, load, array, drain, stall, compute, compute / total,
                      2 * M * N * K / seconds / 1e9, seconds * 1e6)


SCALESIM_DATAFLOWS = ("os", "ws", "is")


def scalesim_compute_cycles(rows, cols, dataflow, M, N, K):
    """SCALE-Sim's no-stall compute cycles for a GEMM (its `Total Cycles` column), computed
    with its conventions rather than specmx's RTL schedule:
      os: folds = ceil(M/R)*ceil(N/C), per fold K + R + C - 2 (skewed fill and drain; the
          output drain of one fold overlaps the next fold's fill);
      ws: folds = ceil(K/R)*ceil(N/C), per fold M + 2R + C - 2 (R cycles of weight load);
      is: folds = ceil(K/R)*ceil(M/C), per fold N + 2R + C - 2;
    total = folds * per_fold - 1 (it counts from cycle 0 to the last cycle). No operand
    load/result drain phases, no C0 and no pipelined PEs are modelled.
    """
    for name, v in (("M", M), ("N", N), ("K", K), ("rows", rows), ("cols", cols)):
        _positive(name, v)
    R, C = rows, cols
    if dataflow == "os":
        folds, per = ceil(M / R) * ceil(N / C), K + R + C - 2
    elif dataflow == "ws":
        folds, per = ceil(K / R) * ceil(N / C), M + 2 * R + C - 2
    elif dataflow == "is":
        folds, per = ceil(K / R) * ceil(M / C), N + 2 * R + C - 2
    else:
        raise ValueError(f"dataflow: unknown {dataflow!r}; allowed: {', '.join(SCALESIM_DATAFLOWS)}")
    return folds * per - 1
