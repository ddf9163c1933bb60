# Quick start: `make demo` runs the workflow on the bundled demo dataset; `make test` runs the fast tests
# (every module plus one small workflow run and the experiments' plans); `make test-all` adds the heavy
# end-to-end runs (pytest marker `heavy`: the demo, the experiments, degenerate datasets, SIGKILL resume,
# the real clips, the local SLURM cluster, the browser check).
# Both create .venv from the pinned requirements first when it is missing or out of date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
# make test: one pytest worker per core, each taking whole test files (a file's module-scoped runs stay
# in one worker). TEST_WORKERS=0 runs the tier in one process.
TEST_WORKERS ?= auto

# The py-feat backend's extras (requirements-pyfeat.txt): test-all installs them, so its end-to-end
# test runs there (IMPRESSIONS_REQUIRE_PYFEAT turns the test's skip into a failure); make test does not.
PYFEAT_STAMP := $(VENV)/.installed-pyfeat

.PHONY: demo test test-all lint format clean rulegraph

$(STAMP): requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# --no-compile: byte-compiling every installed module (torch's included) costs more than compiling
	# the few a run imports, which Python does on first import.
	$(BIN)/python -m pip install -q --no-compile -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-compile --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-compile --no-deps -e .
	touch $@

$(PYFEAT_STAMP): $(STAMP) requirements-pyfeat.txt
	$(BIN)/python -m pip install -q --no-compile --no-deps -r requirements-pyfeat.txt
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	@echo "Outputs: results/report/index.html (report), results/tables/ (dataset tables), results/models/, results/logs/"

test: $(STAMP)
	$(BIN)/pytest -m "not heavy" -n $(TEST_WORKERS) --dist loadfile

# The fast tier on every core, then the heavy runs one at a time (the SLURM and browser tests share
# machine state, and the heavy runs each use every core already).
test-all: $(STAMP) $(PYFEAT_STAMP)
	$(BIN)/pytest -m "not heavy" -n $(TEST_WORKERS) --dist loadfile
	IMPRESSIONS_REQUIRE_PYFEAT=1 $(BIN)/pytest -m heavy
	IMPRESSIONS_TEST_SEARCH=full $(BIN)/pytest tests/test_workflow.py

lint: $(STAMP)
	$(BIN)/ruff check impressions tests workflow_scripts benchmarks
	$(BIN)/ruff format --check impressions tests workflow_scripts benchmarks
	$(BIN)/lint-imports
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

format: $(STAMP)
	$(BIN)/ruff format impressions tests workflow_scripts benchmarks
	$(BIN)/snakefmt Snakefile rules

# The rule graph of the default (demo) config: docs/rulegraph.dot (canonical text, checked by
# tests/test_registry.py) and docs/rulegraph.svg, rendered by Graphviz's `dot` when it is installed.
rulegraph: $(STAMP)
	$(BIN)/snakemake --rulegraph --quiet all 2>/dev/null | $(BIN)/python -m impressions.rulegraph > docs/rulegraph.dot
	if command -v dot >/dev/null; then dot -Tsvg docs/rulegraph.dot -o docs/rulegraph.svg; \
	else echo "Graphviz's dot is not installed (apt-get install graphviz): docs/rulegraph.svg not rendered"; fi

clean:
	rm -rf results .snakemake
