"""Cycle model: properties, bad input, the SCALE-Sim-convention mode against SCALE-Sim itself,
and the CLI. (Equality with the RTL's cycles is checked in test_gemm.py.)"""

import json
import subprocess
import sys

import pytest

from specmx.models.config import FMAConfig, GemmConfig, PerfConfig
from specmx.models.perf.gemm import gemm_cycles, scalesim_compute_cycles
from specmx.scalesim import run_scalesim

SHAPES = [(100, 60, 70), (7, 13, 29), (1, 1, 1), (64, 64, 64), (33, 17, 5), (16, 8, 100),
          (3, 200, 9), (128, 32, 16), (17, 17, 17), (50, 3, 40), (9, 90, 2)]


def test_phases_add_up_and_utilization_is_bounded():
    for df in ("os", "ws"):
        r = gemm_cycles(GemmConfig(rows=32, cols=32, dataflow=df, pe_stages=2), 512, 512, 512, PerfConfig(250))
        assert r.total_cycles == r.load_cycles + r.array_cycles + r.drain_cycles + r.stall_cycles
        assert 0 < r.utilization <= 1
        assert r.throughput_gflops == pytest.approx(2 * 512 ** 3 / (r.total_cycles / 250e6) / 1e9)


def test_bandwidth_limit_adds_stalls_only_when_it_binds():
    ws = GemmConfig(rows=8, cols=8, dataflow="ws")
    free = gemm_cycles(ws, 64, 64, 64)
    assert gemm_cycles(ws, 64, 64, 64, PerfConfig(bandwidth=1000)).stall_cycles == 0
    slow = gemm_cycles(ws, 64, 64, 64, PerfConfig(bandwidth=1))
    # (2*64*64*2 + 64*64*4) bytes in, 64*64*4 out, at 1 byte/cycle
    assert slow.stall_cycles == (32768 + 1 - free.load_cycles) + (16384 + 1 - free.drain_cycles)


def test_operand_widths_come_from_the_fma_config():
    """Under a bandwidth limit, fp8 operands with a bf16 accumulator move fewer bytes than bf16
    operands with fp32: (2*64*64*1 + 64*64*2) bytes in at 1 byte/cycle."""
    narrow = GemmConfig(FMAConfig("e4m3", "bf16"), rows=8, cols=8, dataflow="ws")
    slow = gemm_cycles(narrow, 64, 64, 64, PerfConfig(bandwidth=1))
    free = gemm_cycles(narrow, 64, 64, 64)
    assert slow.stall_cycles == (16384 + 1 - free.load_cycles) + (8192 + 1 - free.drain_cycles)
    wide = gemm_cycles(GemmConfig(rows=8, cols=8, dataflow="ws"), 64, 64, 64, PerfConfig(bandwidth=1))
    assert wide.stall_cycles > slow.stall_cycles


def test_input_gaps_delay_the_load_phase_by_the_slowest_stream():
    e = GemmConfig(rows=2, cols=3)
    base = gemm_cycles(e, 7, 13, 29).load_cycles             # max(7*29, 29*13, 7*13) + 1 = 378
    assert gemm_cycles(e, 7, 13, 29, input_gaps=(100, 0, 0)).load_cycles == base   # A: 303 < 377
    assert gemm_cycles(e, 7, 13, 29, input_gaps=(0, 5, 0)).load_cycles == base + 5


@pytest.mark.parametrize("kw,message", [
    (dict(M=0), "M: must be an integer >= 1, got 0"),
    (dict(engine=dict(rows=-2)), "rows: must be >= 1, got -2"),
    (dict(engine=dict(dataflow="rs")), "dataflow: unknown value 'rs'; allowed: os, ws"),
    (dict(perf=dict(bandwidth=0)), "bandwidth: must be a finite number > 0, got 0"),
    (dict(perf=dict(clock_mhz="fast")), "clock_mhz: must be a number, got 'fast'"),
])
def test_bad_input(kw, message):
    with pytest.raises(ValueError, match=message):
        engine = GemmConfig(**kw.get("engine", {}))
        perf = PerfConfig(**kw.get("perf", {}))
        gemm_cycles(engine, kw.get("M", 8), 8, 8, perf)


def _disagreements(model, dataflow, cycles):
    """The shapes on which `model` (a SCALE-Sim-convention cycle formula) differs from
    SCALE-Sim's measured compute cycles."""
    return [shape for shape, measured in zip(SHAPES, cycles) if model(16, 8, dataflow, *shape) != measured]


@pytest.mark.parametrize("dataflow", ["os", pytest.param("ws", marks=pytest.mark.regress),
                                      pytest.param("is", marks=pytest.mark.regress)])
def test_scalesim_mode_reproduces_scalesim(dataflow, tmp_path):
    """specmx's SCALE-Sim-convention mode equals SCALE-Sim 3.0.0's compute cycles on 11 shapes,
    and the same comparison catches a plausible wrong convention (the fold count taken over
    the other operand dimension), so the shape set can tell conventions apart."""
    cycles, _ = run_scalesim(16, 8, dataflow, SHAPES, workdir=tmp_path)
    assert _disagreements(scalesim_compute_cycles, dataflow, cycles) == []
    assert cycles[0] == {"os": 5151, "ws": 5519, "is": 6369}[dataflow]   # TOOLCHAIN.md's figures

    def swapped(rows, cols, df, M, N, K):          # negative control: M and K swapped
        return scalesim_compute_cycles(rows, cols, df, K, N, M)
    assert len(_disagreements(swapped, dataflow, cycles)) >= 5


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "specmx.cli", *args], capture_output=True, text=True)


def test_gemm_perf_json():
    proc = _cli("gemm", "perf", "--rows", "32", "--cols", "32", "--dataflow", "ws",
                "--shape", "512,512,512", "--clock", "300", "--bandwidth", "64", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("total_cycles", "compute_cycles", "stall_cycles", "utilization", "throughput_gflops"):
        assert key in out
    engine = GemmConfig(rows=32, cols=32, dataflow="ws")
    assert out["total_cycles"] == gemm_cycles(engine, 512, 512, 512, PerfConfig(300, 64)).total_cycles


def test_old_form_still_works_and_names_the_new_one():
    new = _cli("gemm", "perf", "--rows", "8", "--json")
    old = _cli("perf", "gemm", "--rows", "8", "--json")
    assert old.returncode == new.returncode == 0
    assert json.loads(old.stdout)["total_cycles"] == json.loads(new.stdout)["total_cycles"]
    assert old.stderr.strip() == "specmx: note: 'specmx perf gemm' is now 'specmx gemm perf'"


def test_spec_file_and_flags_override_it(tmp_path):
    """--spec sets the engine, the FMA (operand bytes) and the operating point; a flag wins."""
    spec = tmp_path / "e.yaml"
    spec.write_text("fma: {in_fmt: e4m3, acc_fmt: bf16}\ngemm: {rows: 8, cols: 8, dataflow: ws}\n"
                    "perf: {clock_mhz: 100, bandwidth: 1}\n")
    out = json.loads(_cli("gemm", "perf", "--spec", str(spec), "--shape", "64,64,64", "--json").stdout)
    engine = GemmConfig(FMAConfig("e4m3", "bf16"), rows=8, cols=8, dataflow="ws")
    assert out["total_cycles"] == gemm_cycles(engine, 64, 64, 64, PerfConfig(100, 1)).total_cycles
    out = json.loads(_cli("gemm", "perf", "--spec", str(spec), "--shape", "64,64,64", "--rows", "4",
                          "--json").stdout)
    engine = GemmConfig(FMAConfig("e4m3", "bf16"), rows=4, cols=8, dataflow="ws")
    assert out["total_cycles"] == gemm_cycles(engine, 64, 64, 64, PerfConfig(100, 1)).total_cycles


def test_scalesim_config_and_topology(tmp_path):
    """A SCALE-Sim .cfg + GEMM topology: one row per layer plus a total, on the cfg's array."""
    proc = _cli("gemm", "perf", "--scalesim-config", "examples/scalesim_16x8_ws.cfg",
                "--topology", "examples/mamba130m_decode_gemms.csv", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    engine = GemmConfig(rows=16, cols=8, dataflow="ws")
    assert [r["layer"] for r in out["layers"]] == ["in_proj", "x_proj", "dt_proj", "out_proj", "lm_head"]
    first = gemm_cycles(engine, 1, 3072, 768)
    assert out["layers"][0]["total_cycles"] == first.total_cycles
    assert out["total"]["total_cycles"] == sum(r["total_cycles"] for r in out["layers"])
    assert out["layers"][0]["scalesim_mode_cycles"] == scalesim_compute_cycles(16, 8, "ws", 1, 3072, 768)
    # USER bandwidth: 4 words/cycle of bf16 = 8 bytes/cycle
    cfg = tmp_path / "user.cfg"
    cfg.write_text(open("examples/scalesim_16x8_ws.cfg").read().replace("Bandwidth: 10", "Bandwidth: 4")
                   .replace("InterfaceBandwidth: CALC", "InterfaceBandwidth: USER"))
    out = json.loads(_cli("gemm", "perf", "--scalesim-config", str(cfg), "--topology",
                          "examples/mamba130m_decode_gemms.csv", "--json").stdout)
    assert out["bandwidth_bytes_per_cycle"] == 8
    assert out["layers"][0]["total_cycles"] == gemm_cycles(engine, 1, 3072, 768, PerfConfig(bandwidth=8)).total_cycles


def test_gemm_sweep_writes_json_and_plot(tmp_path):
    proc = _cli("gemm", "sweep", "--rows", "2,4,8", "--shapes", "64,64,64;7,13,29", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert len(data["points"]) == 3 * 2 * 2
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_streaming_schedule_reaches_the_utilization_target():
    """Issue target: at least 0.90 on 512^3 with 16x16 and 32x32 arrays, both dataflows (os:
    s = 1, 2, where R*s divides 512; with s = 3 a 32x32 tile is 96 rows and the padded last row
    of tiles costs 11%)."""
    for n in (16, 32):
        for df, stages in (("os", (1, 2)), ("ws", (1, 2, 3))):
            for s in stages:
                engine = GemmConfig(rows=n, cols=n, dataflow=df, pe_stages=s, schedule="streaming")
                phased = gemm_cycles(GemmConfig(rows=n, cols=n, dataflow=df, pe_stages=s), 512, 512, 512)
                streamed = gemm_cycles(engine, 512, 512, 512)
                assert streamed.utilization >= 0.90 > phased.utilization, (n, df, s, streamed)


def test_weight_streaming_within_five_percent_of_the_bandwidth_bound():
    """Issue target: M = 1..16, K = N = 2048, within 5% of weight bytes / bandwidth, at the
    bandwidths up to the engine's weight rate (C words per cycle for ws, C/s for os)."""
    for df in ("os", "ws"):
        engine = GemmConfig(rows=16, cols=16, dataflow=df, pe_stages=1, schedule="streaming")
        for bw in (4, 8, 16, 32):
            for M in (1, 2, 4, 8, 16):
                total = gemm_cycles(engine, M, 2048, 2048, PerfConfig(bandwidth=bw)).total_cycles
                assert total <= 1.05 * (2048 * 2048 * 2 / bw), (df, bw, M, total)


def test_streaming_schedule_closed_form():
    """The figure from the schedule in hdl/stream_gemm.py, by hand for one case, and the
    window-bound period when K*s is short."""
    e = GemmConfig(rows=2, cols=3, pe_stages=2, schedule="streaming")
    # RS=4, D=2+2+3-3=4, ks=2*5=10, P=max(10, 4+4+1)=10, MT=ceil(9/4)=3, NT=ceil(7/3)=3
    assert gemm_cycles(e, 9, 7, 5).total_cycles == 4 + (3 * 3 - 1) * 10 + 10 + 4 + (9 - 2 * 4)
    # K=1: ks=2 < RS+D+1 = 9, so the tiles run every 9 cycles
    assert gemm_cycles(e, 9, 7, 1).total_cycles == 4 + 8 * 9 + 2 + 4 + 1
    assert gemm_cycles(e, 9, 7, 5, stalls=17).total_cycles == gemm_cycles(e, 9, 7, 5).total_cycles + 17
    slow = gemm_cycles(e, 9, 7, 5, PerfConfig(bandwidth=1))
    assert slow.stall_cycles > 0 and slow.total_cycles > gemm_cycles(e, 9, 7, 5).total_cycles


def test_ws_streaming_closed_form():
    """hdl/stream_gemm.py's WS schedule by hand: 2x3, s=2, L = R*s + C = 7, blocks of 4 rows."""
    e = GemmConfig(rows=2, cols=3, dataflow="ws", pe_stages=2, schedule="streaming")
    # M=9: blocks 4, 4, 1 rows; K=5: KT=3; N=7: NT=3. P = max(rows, 2, 2): 4, 4, 2.
    # pass lengths max(NT*P, L+1): 12 (blocks 1, 2), 8 (block 3); 9 passes, the last one partial
    start = 6 * 12 + 2 * 8
    assert gemm_cycles(e, 9, 7, 5).total_cycles == 2 + start + 2 * 2 + 1 + 7
    # N=3: one fold per pass, so passes are spaced by L + 1 = 8, not P = 4
    assert gemm_cycles(e, 4, 3, 5).total_cycles == 2 + 2 * 8 + 0 + 4 + 7


def test_streaming_schedule_names():
    with pytest.raises(ValueError, match="schedule: unknown value"):
        GemmConfig(schedule="overlapped")


def test_memory_stalls_endpoint_form_equals_beat_by_beat_recurrence():
    """`memory_stall_cycles` evaluates each run of weight beats at its ends; the recurrence
    D_i = max(D_{i-1}, a_i - g_i - 1) over every beat gives the same on random engines, shapes
    and memories (the RTL check of the recurrence is in test_gemm.py)."""
    import numpy as np

    from specmx.models.perf.gemm import memory_stall_cycles, weight_beat_cycles
    rng = np.random.default_rng(0)
    for _ in range(200):
        R, C, s = (int(v) for v in rng.integers(1, 6, 3))
        M, N, K = (int(v) for v in rng.integers(1, 40, 3))
        engine = GemmConfig(FMAConfig("bf16", "fp32"), R, C, str(rng.choice(["os", "ws"])), s, 64, 64, 64, "streaming")
        latency, words = int(rng.integers(0, 50)), int(rng.integers(1, 10))
        need = weight_beat_cycles(engine, M, N, K)
        arrive = latency + (np.arange(1, need.size + 1) * C + words - 1) // words
        stalls = 0
        for a, g in zip(arrive, need):
            stalls = max(stalls, int(a - g - 1))
        assert memory_stall_cycles(engine, M, N, K, latency, words) == stalls
    assert memory_stall_cycles(engine, M, N, K, latency + 1000, words) > stalls      # latency counts


def test_memory_stalls_at_rational_rates_equal_the_recurrence():
    """The system model's board memories give a rational number of words per cycle (num words
    every den cycles: beat i there at latency + ceil((i+1)*C*den/num)); the endpoint form
    equals the beat-by-beat recurrence there too, and an integer Fraction equals the integer."""
    from fractions import Fraction

    import numpy as np

    from specmx.models.perf.gemm import memory_stall_cycles, weight_beat_cycles
    rng = np.random.default_rng(1)
    for _ in range(200):
        R, C, s = (int(v) for v in rng.integers(1, 6, 3))
        M, N, K = (int(v) for v in rng.integers(1, 40, 3))
        engine = GemmConfig(FMAConfig("bf16", "fp32"), R, C, str(rng.choice(["os", "ws"])), s, 64, 64, 64, "streaming")
        latency = int(rng.integers(0, 50))
        rate = Fraction(int(rng.integers(1, 40)), int(rng.integers(1, 9)))
        need = weight_beat_cycles(engine, M, N, K)
        arrive = [latency + -(-(i + 1) * C // rate) for i in range(need.size)]
        stalls = max([0] + [int(a - g - 1) for a, g in zip(arrive, need)])
        assert memory_stall_cycles(engine, M, N, K, latency, rate) == stalls
        whole = int(rng.integers(1, 10))
        assert memory_stall_cycles(engine, M, N, K, latency, Fraction(whole)) == \
            memory_stall_cycles(engine, M, N, K, latency, whole)
    assert memory_stall_cycles(engine, M, N, K, latency, rate / 100) > stalls        # a slower memory stalls more
