# Two commands on a fresh machine:  `make run`  and  `make test`.
# Both create/reuse .venv and install the pinned stack first (package registries only).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
PYTEST_ARGS ?=

.PHONY: setup run test test-quick lint clean-data

$(STAMP): pyproject.toml constraints.txt scripts/setup_system.sh scripts/install_frequi.py
	bash scripts/setup_system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	$(PY) -m scripts.install_frequi
	$(VENV)/bin/freqtrade create-userdir --userdir user_data > /dev/null
	touch $(STAMP)

setup: $(STAMP)

## Main job: the test bench on the synthetic market in a few minutes: 3 walk-forward folds with FreqAI
## retrained per fold (LightGBM-only stacking), Monte Carlo, 3 stress scenarios, the recommendation.
## The simulator stage is skipped here: on the compute clock a simulated day of this bot takes ~11 min
## of wall time (its per-loop cost, ~23 ms every 5 s; docs/results/2026-12-06-compute-clock.md).
## With the default arguments it then checks that the README quotes this very run (scripts/readme_figures.py).
RUN_OUT := user_data/testbench/make-run
BENCH_ARGS ?= --strategy TrendFollowingEnsemble --extra-config config/testbench-light.json --folds 3 --fold-days 7 \
	--skip-sim --workers 2 --out $(RUN_OUT)
run: setup
	$(PY) -m scripts.testbench $(BENCH_ARGS)
ifeq ($(origin BENCH_ARGS),file)
	-$(PY) -m scripts.readme_figures $(RUN_OUT)/summary.json
endif

## The full gate (what CI runs through .ci/run): two workers, the slowest tests listed at the end.
test: setup
	$(PY) -m pytest -n 2 --dist loadscope --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

## The inner loop: everything that does not start real freqtrade processes.
test-quick: setup
	$(PY) -m pytest -n 2 --dist loadscope --no-loadscope-reorder -m "not slow" --durations=10 $(PYTEST_ARGS)

## Style and the one-way layer order (.importlinter).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

clean-data:
	rm -rf user_data/data user_data/backtest_results user_data/testbench user_data/simulation
