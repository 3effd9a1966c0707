"""`make demo`: the flow end to end on a small scale.

1. FMA: accuracy of exact vs approximate normalization on chained bf16 dot products (golden
   model), the RTL simulated in cocotb/Verilator against the golden model, and synthesis
   (gates, LUT4, ECP5 LUTs, Fmax) with the ratio to exact;
2. matrix engine: the 2x3 array of examples/demo_engine.yaml running a 7x13x29 GEMM in both
   dataflows, simulated with random operand gaps and result back-pressure, bit- and
   cycle-exactly against the golden GEMM and the cycle model; then a cycle-model query next to
   SCALE-Sim.
3. Mamba: speculative decoding on a random-weight model with noisy drafts, and the trained
   byte-level py-mamba1 with its trained draft continuing a line of Python (identical to greedy).
4. Boards: the system model's tokens/s and joules/token on each board, plain and speculative
   with the acceptance just measured on the trained pair.
5. Bitstream: the fp8 FMA self-test built for the iCEBreaker (Yosys, nextpnr-ice40, icepack).
Results go to out/demo/demo.json next to a readable table (out/demo/demo.md).
"""

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from specmx.models.config import FMAConfig, PerfConfig
from specmx.models.fma import fma, normalize, to_internal
from specmx.models.formats import decode, encode

OUT = Path("out/demo")
SPEC = Path("examples/demo_engine.yaml")       # the engine of the GEMM part (2x3, bf16 x bf16 + fp32)
CONFIGS = [
    FMAConfig("bf16", "fp32"),
    FMAConfig("bf16", "fp32", window=4, step=4, policy="internal"),
    FMAConfig("bf16", "bf16"),
    FMAConfig("bf16", "bf16", window=4, step=2, policy="round"),
]


def chained_dot_error(cfg, length=256, count=2000, seed=0):
    """Relative error (median, 99th percentile) of `count` length-`length` dot products
    accumulated in one chain of FMAs, against float64 sums of the same bf16 inputs."""
    rng = np.random.default_rng(seed)
    a = encode(rng.standard_normal((count, length)), "bf16")
    b = encode(rng.standard_normal((count, length)), "bf16")
    acc = np.zeros(count, dtype=np.int64)
    if cfg.internal:
        acc = to_internal(acc, cfg)
    for k in range(length):
        acc = fma(a[:, k], b[:, k], acc, cfg)
    if cfg.internal:
        acc = normalize(acc, cfg)
    got = decode(acc, cfg.acc_f)
    ref = np.sum(decode(a, "bf16") * decode(b, "bf16"), axis=1)
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-30)
    return float(np.median(rel)), float(np.percentile(rel, 99))


def _fma_row(cfg):
    """Accuracy, RTL check and synthesis of one FMA configuration (one worker process each)."""
    from specmx.hdl.fma import FMA
    from specmx.sim.fma_check import check_fma
    from specmx.synth import synthesize
    t0 = time.perf_counter()
    med, p99 = chained_dot_error(cfg)
    sim = check_fma(cfg, vectors=5000, stages=2, stall=0.05)
    area = synthesize(FMA(cfg, 0), "fma", fmax=True)
    row = {"config": cfg.name, "dot256_rel_err_median": med, "dot256_rel_err_p99": p99,
           "rtl_vectors": sim["vectors"], "rtl_mismatches": sim["mismatches"], **area}
    print(f"[fma] {cfg.name}: dot-256 error median {med:.2e} p99 {p99:.2e}; "
          f"RTL {sim['vectors']} vectors, {sim['mismatches']} mismatches; "
          f"{area['gates']} gates, {area['fmax_mhz']} MHz ({time.perf_counter() - t0:.0f} s)", flush=True)
    return row


def run_demo(jobs=2):
    from concurrent.futures import ProcessPoolExecutor
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"specmx demo: {len(CONFIGS)} FMA configurations (accuracy, RTL check, synthesis), "
          f"{jobs} at a time", flush=True)
    with ProcessPoolExecutor(jobs) as pool:
        rows = list(pool.map(_fma_row, CONFIGS))
    base = {r["config"].split(":")[0]: r for r, c in zip(rows, CONFIGS) if c.exact}
    lines = ["| config | dot-256 rel. err (median) | p99 | RTL mismatches | gates | vs exact | Fmax MHz |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = base[r["config"].split(":")[0]]
        r["gate_ratio"] = r["gates"] / ref["gates"]
        lines.append(f"| {r['config']} | {r['dot256_rel_err_median']:.2e} | {r['dot256_rel_err_p99']:.2e} | "
                     f"{r['rtl_mismatches']}/{r['rtl_vectors']} | {r['gates']} | {r['gate_ratio']:.3f} | "
                     f"{r['fmax_mhz']} |")
    gemm_rows, gemm_lines = _demo_gemm()
    mamba_rows, mamba_lines = _demo_mamba()
    trained, trained_lines = _demo_trained()
    board_rows, board_lines = _demo_boards(trained["tokens_per_target_pass"])
    bitstream, bitstream_lines = _demo_bitstream()
    table = "\n".join(lines + [""] + gemm_lines + [""] + mamba_lines + [""] + trained_lines + [""] + board_lines
                      + [""] + bitstream_lines)
    (OUT / "demo.json").write_text(json.dumps({"fma": rows, "gemm": gemm_rows, "mamba": mamba_rows,
                                               "trained": trained, "boards": board_rows, "bitstream": bitstream},
                                              indent=2))
    (OUT / "demo.md").write_text(table + "\n")
    print("\n" + table + f"\n\nsaved {OUT / 'demo.json'} and {OUT / 'demo.md'}")
    ok = bitstream["timing_met"] and trained["equal_to_greedy"] and all(r["equal_to_greedy"] for r in mamba_rows) and all(r["rtl_mismatches"] == 0 for r in rows) and all(
        g["mismatches"] == 0 and g["cycles"] == g["predicted_cycles"] for g in gemm_rows if "cycles" in g)
    return 0 if ok else 1


def _demo_gemm():
    from specmx.models.perf.gemm import gemm_cycles, scalesim_compute_cycles
    from specmx.scalesim import run_scalesim
    from specmx.sim.gemm_check import check_gemm
    from specmx.spec import load_spec
    demo_engine = load_spec(SPEC).gemm
    rows = []
    lines = ["| GEMM | array | dataflow | mismatches | measured cycles | predicted |", "|---|---|---|---|---|---|"]
    for df in ("os", "ws"):
        t0 = time.perf_counter()
        r = check_gemm(replace(demo_engine, dataflow=df), (7, 13, 29), backpressure=0.2, idle=0.1)
        rows.append({"shape": "7x13x29", "array": "2x3", "dataflow": df, **{k: r[k] for k in
                     ("mismatches", "cycles", "predicted_cycles", "backpressure_cycles")}})
        print(f"[gemm {df}] 7x13x29 on 2x3: {r['mismatches']} mismatches, measured {r['cycles']} cycles, "
              f"predicted {r['predicted_cycles']} ({time.perf_counter() - t0:.0f} s)", flush=True)
        lines.append(f"| 7x13x29 | 2x3 | {df} | {r['mismatches']} | {r['cycles']} | {r['predicted_cycles']} |")
    big = replace(demo_engine, rows=32, cols=32, dataflow="ws")
    q = gemm_cycles(big, 512, 512, 512, PerfConfig(clock_mhz=300))
    ss, seconds = run_scalesim(32, 32, "ws", [(512, 512, 512)])
    rows.append({"query": "512x512x512 on 32x32 ws @300MHz", **q.as_dict(),
                 "scalesim_compute_cycles": ss[0],
                 "specmx_scalesim_mode_cycles": scalesim_compute_cycles(32, 32, "ws", 512, 512, 512)})
    lines += ["", "| 512x512x512 on 32x32 ws | specmx RTL schedule | SCALE-Sim compute | specmx SCALE-Sim mode |",
              "|---|---|---|---|",
              f"| cycles | {q.total_cycles} (array phase {q.array_cycles}) | {ss[0]} ({seconds:.1f} s) | "
              f"{rows[-1]['specmx_scalesim_mode_cycles']} |"]
    return rows, lines


def _demo_mamba():
    from specmx.models.mamba import MambaLM, get_preset
    from specmx.models.specdec import make_draft, speculative_generate
    target = MambaLM.random(get_preset("small"), seed=1)
    ref = target.greedy([1, 2, 3], 64)
    rows = []
    lines = ["| Mamba draft (tree 3,2,1, 64 tokens) | acceptance | tokens / target pass | == greedy |",
             "|---|---|---|---|"]
    for spec in ("noise0.02", "noise0.05", "noise0.1"):
        toks, st = speculative_generate(target, make_draft(target, spec, seed=2), [1, 2, 3], 64, (3, 2, 1))
        s = st.summary()
        rows.append({"draft": spec, "acceptance_rate": s["acceptance_rate"],
                     "tokens_per_target_pass": s["tokens_per_target_pass"], "equal_to_greedy": toks == ref})
        print(f"[mamba {spec}] acceptance {s['acceptance_rate']:.2f}, {s['tokens_per_target_pass']:.2f} "
              f"tokens per target pass, identical to greedy: {toks == ref}", flush=True)
        lines.append(f"| {spec} | {s['acceptance_rate']:.2f} | {s['tokens_per_target_pass']:.2f} | {toks == ref} |")
    return rows, lines


def _demo_trained():
    """The shipped byte-level py-mamba1 continuing a line of Python, plain greedy and
    speculative with its trained draft: identical output, and the measured acceptance."""
    from specmx.models.corpus import ids_to_text, text_to_ids
    from specmx.models.mamba import MambaLM, pretrained_dir
    from specmx.models.specdec import speculative_generate
    target = MambaLM.from_pretrained(pretrained_dir("py-mamba1"))
    draft = MambaLM.from_pretrained(pretrained_dir("py-mamba1-draft"))
    prompt_text = "def parse(self, text):\n    "
    prompt = text_to_ids(prompt_text)
    t0 = time.perf_counter()
    plain = target.greedy(prompt, 96)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    spec, stats = speculative_generate(target, draft, prompt, 96, (3, 2, 1))
    t_spec = time.perf_counter() - t0
    s = stats.summary()
    row = {"prompt": prompt_text, "text": ids_to_text(plain), "equal_to_greedy": spec == plain,
           "acceptance_rate": s["acceptance_rate"], "tokens_per_target_pass": s["tokens_per_target_pass"],
           "plain_tokens_per_s": 96 / t_plain, "speculative_tokens_per_s": 96 / t_spec}
    print(f"[py-mamba1] {prompt_text + row['text']!r}\n[py-mamba1 + draft, tree 3,2,1] identical to greedy: "
          f"{row['equal_to_greedy']}; acceptance {row['acceptance_rate']:.2f}, "
          f"{row['tokens_per_target_pass']:.2f} tokens per target pass", flush=True)
    lines = ["| trained py-mamba1, 96 bytes | acceptance (draft py-mamba1-draft, tree 3,2,1) | tokens / target pass "
             "| == greedy |", "|---|---|---|---|",
             f"| `{(prompt_text + row['text'])[:60]!r}...` | {row['acceptance_rate']:.2f} | "
             f"{row['tokens_per_target_pass']:.2f} | {row['equal_to_greedy']} |"]
    return row, lines


def _demo_boards(measured_tokens):
    """One board comparison table from the system model: Mamba2-2.7B (int4 weights, the
    largest engine that fits) on the AMD boards, the trained py-mamba2 on the ECP5 boards
    (bf16, the co-simulated micro engine at 11.8 MHz, the whole engine's placed-and-routed ECP5
    Fmax, README engine section);
    plain decode and a 3,2,1 tree with the acceptance measured on the trained pair above."""
    from specmx.boards.board import load_board
    from specmx.boards.costs import largest_fit
    from specmx.models.config import EngineConfig
    from specmx.models.perf.engine import model_dims
    from specmx.models.perf.system import system_perf
    from specmx.cli.engine import model_config
    from specmx.sim.engine_check import MICRO_ENGINE
    big = EngineConfig(rows=16, cols=64, lanes=32, tile=16, state_slots=6, mem_latency=40)
    cases = [(b, "mamba2-2.7b", "mamba2-130m", "int4", big, None) for b in ("vck190", "vhk158", "u280")]
    cases += [(b, "py-mamba2", "py-mamba2-draft", "bf16", MICRO_ENGINE, 11.8) for b in ("ulx3s-85f", "orangecrab-85f")]
    rows = []
    lines = [f"| board | model | weights | engine | MHz | plain tokens/s | 3,2,1 tokens/s ({measured_tokens:.2f} "
             "tokens/pass) | J/token (3,2,1) | bottleneck |", "|---|---|---|---|---|---|---|---|---|"]
    for board_name, model, draft, weights, base, clock in cases:
        board = load_board(board_name)
        dims, ddims = model_dims(model_config(model)), model_dims(model_config(draft))
        engine = largest_fit(board, base, dims, weights) if base is big else base
        plain = system_perf(board, engine, dims, weights, clock)
        spec = system_perf(board, engine, dims, weights, clock, draft=ddims, widths=(3, 2, 1),
                           acceptance=("measured", measured_tokens))
        rows.append({"board": board_name, "model": model, "weights": weights, "arrays": engine.arrays,
                     "rows": engine.rows, "cols": engine.cols, "lanes": engine.lanes, "clock_mhz": plain["clock_mhz"],
                     "plain_tokens_per_s": plain["tokens_per_s"], "spec_tokens_per_s": spec["tokens_per_s"],
                     "spec_joules_per_token": spec["joules_per_token"], "bottleneck": spec["bottleneck"],
                     "assumptions": spec["assumptions"]})
        j = spec["joules_per_token"]
        lines.append(f"| {board_name}{'*' if spec['assumptions'] else ''} | {model} | {weights} | {engine.arrays} x "
                     f"{engine.rows}x{engine.cols}, {engine.lanes} lanes | {plain['clock_mhz']:g} | "
                     f"{plain['tokens_per_s']:,.2f} | {spec['tokens_per_s']:,.2f} | {j['low']:.3g} .. {j['high']:.3g} | "
                     f"{spec['bottleneck']} |")
    lines.append("(* resources assumed: the VHK158's are not known here; `specmx boards show vhk158`)")
    print("[boards] system model: " + ", ".join(f"{r['board']} {r['spec_tokens_per_s']:,.1f} tokens/s" for r in rows),
          flush=True)
    return rows, lines


def _demo_bitstream():
    """The iCEBreaker's fp8 FMA self-test built end to end (about 20 s)."""
    from specmx.bitstream import build_bitstream, default_fma
    t0 = time.perf_counter()
    s = build_bitstream("icebreaker", default_fma("icebreaker"), out=OUT / "bitstream_icebreaker")
    lc = s["utilization"]["ICESTORM_LC"]
    print(f"[bitstream] icebreaker {s['config']} self-test: {lc['used']:,}/{lc['available']:,} LCs, Fmax "
          f"{s['fmax_mhz']} MHz at {s['clock_mhz']:g} MHz, signature {s['signature']} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    lines = ["| bitstream | design | LCs | Fmax | clock | signature | file |", "|---|---|---|---|---|---|---|",
             f"| icebreaker | {s['config']} self-test, {s['ops']} operations | {lc['used']:,} / {lc['available']:,} | "
             f"{s['fmax_mhz']} MHz | {s['clock_mhz']:g} MHz ({'met' if s['timing_met'] else 'missed'}) | "
             f"{s['signature']} | {s['bitstream']} |"]
    return s, lines
