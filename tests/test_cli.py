"""The command line: `specmx <noun> <verb>`, and bad input everywhere ending in one stderr line
that names the field, exit code 2, and no new files."""

import json
import os
import subprocess
import sys

import pytest

from specmx.models.mamba import MambaLM, get_preset

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "specmx.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


def _model_dir(root, name, corrupt=None):
    """A saved micro model, then damaged by `corrupt(directory)`."""
    d = root / name
    MambaLM.random(get_preset("micro"), seed=0).save_pretrained(d)
    if corrupt:
        corrupt(d)
    return str(d)


def _truncate(d):
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[:len(data) // 2])


def _config(edit):
    def corrupt(d):
        cfg = json.loads((d / "config.json").read_text())
        edit(cfg)
        (d / "config.json").write_text(json.dumps(cfg))
    return corrupt


def _write(name, text):
    def make(root):
        path = root / name
        path.write_text(text)
        return str(path)
    return make


CFG = open(os.path.join(EXAMPLES, "scalesim_16x8_ws.cfg")).read()

# (arguments, text the one stderr line must contain); a callable argument makes an input file
# (or model directory) in the test's scratch folder and stands for its path.
BAD = [
    # fma
    (["fma", "check", "--in", "fp12"], "argument --in: invalid choice: 'fp12'"),
    (["fma", "check", "--norm", "window=99"], "window: must be an integer in 1..42"),
    (["fma", "check", "--norm", "window=8,step=0"], "step: must be one of 1, 2, 4, 8"),
    (["fma", "check", "--norm", "window=8,policy=drop"], "policy: unknown value 'drop'"),
    (["fma", "check", "--norm", "bogus"], "norm: cannot parse 'bogus'"),
    (["fma", "check", "--norm", "window=x"], "window: expected an integer, got 'x'"),
    (["fma", "check", "--vectors", "0"], "vectors: must be 1..10000000, got 0"),
    (["fma", "check", "--sim", "xsim"], "argument --sim: invalid choice: 'xsim'"),
    (["fma", "check", "--stages", "13"], "stages: must be 0..12, got 13"),
    (["fma", "check", "--stages", "two"], "argument --stages: invalid int value: 'two'"),
    (["fma", "check", "--stall", "1.5"], "stall: must be a probability"),
    (["fma", "synth", "--acc", "e4m3"], "argument --acc: invalid choice: 'e4m3'"),
    (["fma", "synth", "--norm", "window=4,step=1,policy=flush,extra=1"], "norm: cannot parse 'extra=1'"),
    # gemm check
    (["gemm", "check", "--rows", "4,4"], "argument --rows: invalid int value: '4,4'"),
    (["gemm", "check", "--rows", "65"], "rows: must be 1..64, got 65"),
    (["gemm", "check", "--cols", "0"], "cols: must be >= 1, got 0"),
    (["gemm", "check", "--shape", "8,8"], "shape: expected three integers M,N,K, got '8,8'"),
    (["gemm", "check", "--shape", "8,8,40", "--buffers", "8,8,32"], "shape: K=40 exceeds the engine's limit"),
    (["gemm", "check", "--schedule", "streaming", "--buffers", "70000,8,8", "--shape", "8,8,8"],
     "max_m: must be 1..65535, got 70000"),
    (["gemm", "perf", "--schedule", "later"], "argument --schedule: invalid choice: 'later'"),
    (["gemm", "check", "--buffers", "5000,8,8", "--shape", "8,8,8"], "max_m: must be 1..4096, got 5000"),
    (["gemm", "check", "--dataflow", "is"], "argument --dataflow: invalid choice: 'is'"),
    (["gemm", "check", "--backpressure", "1"], "backpressure: must be a probability"),
    (["gemm", "check", "--idle", "-0.1"], "idle: must be a probability"),
    (["gemm", "check", "--stages", "0"], "pe_stages: must be in 1..12, got 0"),
    # gemm perf, with SCALE-Sim files
    (["gemm", "perf", "--shape", "4,-1,4"], "shape: N must be >= 1, got -1"),
    (["gemm", "perf", "--clock", "0"], "clock_mhz: must be a finite number > 0, got 0.0"),
    (["gemm", "perf", "--bandwidth", "-1"], "bandwidth: must be a finite number > 0, got -1.0"),
    (["gemm", "perf", "--scalesim-config", "missing.cfg", "--topology", "missing.csv"],
     "scalesim-config: no such file 'missing.cfg'"),
    (["gemm", "perf", "--topology", os.path.join(EXAMPLES, "mamba130m_decode_gemms.csv")],
     "scalesim-config: --scalesim-config and --topology go together"),
    (["gemm", "perf", "--scalesim-config", os.path.join(EXAMPLES, "scalesim_16x8_ws.cfg"),
      "--topology", _write("conv.csv", "Layer name, IFMAP Height, IFMAP Width,\nc1, 3, 3,\n")],
     "topology: expected a GEMM topology with the header 'Layer, M, N, K'"),
    (["gemm", "perf", "--scalesim-config", os.path.join(EXAMPLES, "scalesim_16x8_ws.cfg"),
      "--topology", _write("bad.csv", "Layer, M, N, K,\ng0, 4, x, 4,\n")], "topology: line 2: expected 'name, M, N, K'"),
    (["gemm", "perf", "--scalesim-config", _write("is.cfg", CFG.replace("Dataflow: ws", "Dataflow: is")),
      "--topology", os.path.join(EXAMPLES, "mamba130m_decode_gemms.csv")],
     "scalesim-config: Dataflow 'is' has no specmx engine; allowed: os, ws"),
    (["gemm", "perf", "--scalesim-config", _write("h.cfg", CFG.replace("ArrayHeight: 16", "ArrayHeight: x")),
      "--topology", os.path.join(EXAMPLES, "mamba130m_decode_gemms.csv")],
     "scalesim-config: architecture_presets.ArrayHeight: expected an integer, got 'x'"),
    (["gemm", "perf", "--scalesim-config", _write("junk.cfg", "not an ini file\n"),
      "--topology", os.path.join(EXAMPLES, "mamba130m_decode_gemms.csv")], "scalesim-config: cannot read"),
    # gemm sweep and synth
    (["gemm", "sweep", "--rows", "2,x"], "rows: expected comma-separated integers, got '2,x'"),
    (["gemm", "sweep", "--dataflow", "os,xs"], "dataflow: unknown 'xs'; allowed: os, ws"),
    (["gemm", "sweep", "--shapes", "1,2,3;4"], "shapes: expected three integers M,N,K, got '4'"),
    (["gemm", "synth", "--rows", "17"], "rows: must be 1..16, got 17"),
    (["gemm", "synth", "--device", "12k"], "argument --device: invalid choice: '12k'"),
    # mamba generate: names, numbers, saved models that are damaged
    # ssm check/synth: units, formats, shapes
    (["ssm", "check", "--unit", "tanh"], "argument --unit: invalid choice: 'tanh'"),
    (["ssm", "check", "--unit", "exp", "--acc", "bf16"], "fma.acc_fmt: the SSM datapath keeps its state and function units in fp32"),
    (["ssm", "check", "--unit", "exp", "--family", "mamba2", "--d-inner", "16", "--heads", "3"], "heads: must divide d_inner=16, got 3"),
    (["ssm", "check", "--unit", "conv", "--d-inner", "6", "--lanes", "4"], "lanes: must divide d_inner=6, got 4"),
    (["ssm", "check", "--unit", "conv", "--in", "fp16"], "in_fmt: the conv unit takes bf16 operands"),
    (["ssm", "check", "--unit", "exp", "--lanes", "17"], "lanes: must be 1..16, got 17"),
    (["ssm", "synth", "--unit", "conv", "--kernel", "9"], "kernel: must be 1..8, got 9"),
    (["ssm", "check", "--unit", "exp", "--idle", "1.5"], "idle: must be a probability"),
    (["ssm", "check", "--unit", "scan", "--d-state", "8", "--lanes", "3"], "lanes: must divide d_state=8, got 3"),
    (["ssm", "check", "--unit", "scan", "--d-inner", "1", "--d-state", "4", "--lanes", "4"],
     "d_inner: the scan unit needs d_inner * d_state / lanes >= 2 beats per token, got 1"),
    (["ssm", "synth", "--unit", "scan", "--d-state", "512"], "d_state: must be 1..256, got 512"),
    (["ssm", "check", "--unit", "rmsnorm", "--lanes", "2"], "lanes: the rmsnorm unit takes one element per cycle"),
    (["ssm", "check", "--unit", "rmsnorm", "--eps", "2"], "eps: must be a number in [0, 1), got 2.0"),
    (["ssm", "check", "--unit", "scan", "--in", "fp16"], "fma.in_fmt: the scan unit takes bf16 operands"),
    (["mamba", "generate", "--model", "nosuch"], "model: unknown model 'nosuch' and no such directory"),
    (["mamba", "generate", "--model", "tiny", "--prompt-text", "def f("], "prompt-text: needs a byte-level model"),
    (["mamba", "generate", "--model", "mamba2-micro", "--draft", "py-mamba1-draft"],
     "draft: vocabulary 256 differs from the target's 16"),
    (["mamba", "generate", "--model", "py-mamba1", "--prompt-text", ""], "prompt-text: must not be empty"),
    (["mamba", "generate", "--prompt", "1,a"], "prompt: expected comma-separated token ids, got '1,a'"),
    (["mamba", "generate", "--prompt", "99999"], "prompt: token ids must be in 0..511"),
    (["mamba", "generate", "--tree", "3,0"], "tree: every width must be an integer >= 1"),
    (["mamba", "generate", "--backtrack", "undo"], "argument --backtrack: invalid choice: 'undo'"),
    (["mamba", "generate", "--tokens", "0"], "tokens: must be 1..100000, got 0"),
    (["mamba", "generate", "--temperature", "0"], "temperature: must be > 0, got 0.0"),
    (["mamba", "generate", "--draft", "noiseX"], "draft: expected noise<sigma>, got 'noiseX'"),
    (["mamba", "generate", "--model", lambda r: _model_dir(r, "trunc", _truncate)],
     "model: model.safetensors: cannot load it"),
    (["mamba", "generate", "--model", lambda r: _model_dir(r, "empty", lambda d: (d / "model.safetensors").write_bytes(b""))],
     "model: model.safetensors: cannot load it"),
    (["mamba", "generate", "--model", lambda r: _model_dir(r, "nokey", _config(lambda c: c.pop("vocab_size")))],
     "model: config.json: missing key 'vocab_size'"),
    (["mamba", "generate", "--model", lambda r: _model_dir(r, "type", _config(lambda c: c.update(hidden_size="64")))],
     "model: config.json: hidden_size: must be a positive integer, got '64'"),
    (["mamba", "generate", "--model", lambda r: _model_dir(r, "json", lambda d: (d / "config.json").write_text("{oops"))],
     "model: config.json: invalid JSON at line 1"),
    (["mamba", "generate", "--model", lambda r: _model_dir(r, "noweights", lambda d: (d / "model.safetensors").unlink())],
     "has no model.safetensors"),
    (["mamba", "generate", "--model", lambda r: _model_dir(r, "cfgdir", lambda d: ((d / "config.json").unlink(),
                                                                                  (d / "config.json").mkdir()))],
     "model: config.json: cannot read it (IsADirectoryError)"),
    (["mamba", "generate", "--model", _write("afile", "x")], "is not a directory"),
    (["mamba", "generate", "--model", "tiny", "--draft", lambda r: _model_dir(r, "draft", None)],
     "draft: vocabulary 16 differs from the target's 512"),
    # spec files, directly and through a command
    (["spec", "check", _write("t.yaml", "gemm: {rows: '4'}\n")], "gemm.rows: must be an integer, got '4'"),
    (["spec", "check", _write("u.yaml", "gemm: {rowz: 4}\n")], "gemm.rowz: unknown key; did you mean 'rows'?"),
    (["spec", "check", _write("l.yaml", "gemm: [1, 2]\n")], "gemm: expected a mapping of fma, rows, cols"),
    (["spec", "check", _write("e.yaml", "")], "empty spec; expected a mapping with any of: fma, gemm, perf"),
    (["spec", "check", _write("m.yaml", "gemm: {rows: 4\n")], "is not valid YAML at line"),
    (["spec", "check", _write("top.yaml", "- fma\n- gemm\n")], "expected a mapping with any of: fma, gemm, perf, ssm, engine, got a list"),
    (["spec", "check", _write("s.yaml", "gemmm: {rows: 4}\n")], "gemmm: unknown key; did you mean 'gemm'?"),
    (["spec", "check", _write("f.yaml", "fma: {in_fmt: fp12}\n")], "fma.in_fmt: unknown value 'fp12'; allowed: bf16"),
    (["spec", "check", _write("z.yaml", "gemm: {rows: 0}\n")], "gemm.rows: must be >= 1, got 0"),
    (["spec", "check", _write("w.yaml", "gemm: {fma: {window: 99}}\n")], "gemm.fma.window: must be an integer in 1..42"),
    (["spec", "check", _write("p.yaml", "perf: {clock_mhz: -5}\n")], "perf.clock_mhz: must be a finite number > 0, got -5"),
    (["spec", "check", _write("b.yaml", "perf: {bandwidth: true}\n")], "perf.bandwidth: must be a number, got True"),
    (["spec", "show", "nosuch.yaml"], "spec: no such file 'nosuch.yaml'"),
    (["spec", "show", lambda r: str(r)], "is a directory, not a YAML file"),
    (["gemm", "perf", "--spec", _write("d.yaml", "gemm: {dataflow: is}\n")],
     "gemm.dataflow: unknown value 'is'; allowed: os, ws"),
    (["fma", "synth", "--spec", _write("g.yaml", "fma: {step: 3}\n"), "--out", "out"], "fma.step: must be one of 1, 2, 4, 8"),
    (["engine", "perf", "--parents=-1,0,3"], "parent: node 2 has parent 3; a parent must be a node before it"),
    (["engine", "perf", "--parents=0,0"], "parent: node 0 is the root and needs parent -1"),
    (["engine", "perf", "--model", "nope"], "model: unknown model 'nope'"),
    (["engine", "perf", "--tree", "budget=4"], "tree: a budget tree's shape depends on the draft"),
    (["engine", "perf", "--tree", "3,3", "--state-slots", "2"], "tree: needs 4 live states per layer; engine.state_slots holds 2"),
    (["engine", "perf", "--tree", "1,1", "--accepted", "9"], "path: accepted nodes on the path must be 1..3"),
    (["engine", "perf", "--spec", _write("en.yaml", "engine: {mem_words: 0}\n")], "engine.mem_words: must be >= 1, got 0"),
    (["engine", "check", "--tokens", "0"], "tokens: must be 1..256, got 0"),
    (["engine", "check", "--model", "small"], "model: the co-simulation runs a random model of each family; allowed: micro, tiny"),
    (["engine", "check", "--tree", "3,3", "--state-slots", "2"], "tree: needs up to 4 live states per layer; engine.state_slots holds 2"),
    (["engine", "check", "--sim", "icarus"], "sim: the engine co-simulation runs on verilator"),
    (["engine", "check", "--rows", "64"], "engine.rows: the co-simulation takes at most 8, got 64"),
    (["engine", "check", "--mem-words", "0"], "mem_words: must be >= 1, got 0"),
    (["engine", "check", "--idle", "1.5"], "idle: must be a probability in 0..1"),
    (["engine", "perf", "--spec", _write("ea.yaml", "engine: {fma: {acc_fmt: bf16}}\n")], "engine.fma.acc_fmt: the engine keeps fp32 states"),
]


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("case", range(len(BAD)), ids=lambda i: "-".join(a for a in BAD[i][0][:2]) + f"-{i}")
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
    args, message = BAD[case]
    args = [a(tmp_path) if callable(a) else a for a in args]
    before = _listing(tmp_path)
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specmx: error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert _listing(tmp_path) == before


def test_there_are_at_least_40_bad_invocations():
    assert len(BAD) >= 40


def test_fma_check_prints_summary_line():
    proc = run("fma", "check", "--in", "bf16", "--acc", "fp32", "--norm", "exact",
               "--vectors", "800", "--sim", "verilator")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("800 vectors, 0 mismatches")


def test_ssm_check_rmsnorm_prints_summary_and_cycles():
    # the unit of tests/test_rmsnorm_unit.py (length 7): the simulator build is shared
    proc = run("ssm", "check", "--unit", "rmsnorm", "--d-inner", "7", "--tokens", "6", "--sim", "verilator")
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    assert first.startswith("42 vectors, 0 mismatches (rmsnorm, 1 lanes"), first
    assert second.startswith("cycles: measured ") and second.endswith("match"), second


def test_gemm_synth_saves_pe_and_array_figures(tmp_path):
    proc = run("gemm", "synth", "--rows", "1", "--cols", "2", "--dataflow", "os", "--in", "e5m2",
               "--acc", "bf16", "--stages", "1", "--no-fmax", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    saved, = (json.loads(p.read_text()) for p in tmp_path.glob("synth_gemm_1x2_os_s1_*.json"))
    assert saved == result
    assert 2 * result["pe_gates"] <= result["array_gates"] and 2 * result["pe_lut4"] <= result["array_lut4"]
    assert result["array_ecp5_dsp"] == 2


def test_streaming_example_spec_meets_the_utilization_target():
    proc = run("gemm", "perf", "--spec", os.path.join(EXAMPLES, "stream_os_16x16.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["utilization"] >= 0.9 and result["stall_cycles"] == 0
    phased = json.loads(run("gemm", "perf", "--spec", os.path.join(EXAMPLES, "stream_os_16x16.yaml"),
                            "--schedule", "phased", "--json").stdout)
    assert phased["utilization"] < 0.5


def test_spec_show_prints_every_field_and_round_trips(tmp_path):
    import yaml
    proc = run("spec", "show", os.path.join(EXAMPLES, "approx_ws_4x4.yaml"))
    assert proc.returncode == 0, proc.stderr
    shown = yaml.safe_load(proc.stdout)
    assert shown["gemm"]["fma"] == shown["fma"] and shown["fma"]["window"] == 4
    assert shown["gemm"]["pe_stages"] == 2 and shown["perf"]["bandwidth"] == 16
    again = tmp_path / "again.yaml"
    again.write_text(proc.stdout)
    assert yaml.safe_load(run("spec", "show", str(again)).stdout) == shown
