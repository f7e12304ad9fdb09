# Two commands on a fresh machine:  `make run`  and  `make test`.
# Both create/reuse .venv and install the pinned stack first (package registries only).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
PYTEST_ARGS ?=

.PHONY: setup run test clean-data

$(STAMP): pyproject.toml constraints.txt scripts/setup_system.sh scripts/install_frequi.py
	bash scripts/setup_system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	$(PY) -m scripts.install_frequi
	$(VENV)/bin/freqtrade create-userdir --userdir user_data > /dev/null
	touch $(STAMP)

setup: $(STAMP)

## Main job: the test bench, reduced (synthetic market, 3 walk-forward folds, LightGBM-only stacking,
## half a day of x300 simulation + a quarter day of paper, 3 stress scenarios, 2 Ray workers).
BENCH_ARGS ?= --strategy TrendFollowingEnsemble --extra-config config/testbench-light.json --folds 3 --fold-days 7 \
	--sim-days 0.5 --paper-days 0.25 --workers 2 --out user_data/testbench/make-run
run: setup
	$(PY) -m scripts.testbench $(BENCH_ARGS)

## Test suite (the same command CI runs through .ci/run).
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

clean-data:
	rm -rf user_data/data user_data/backtest_results user_data/testbench
