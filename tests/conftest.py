from __future__ import annotations

import os

from simulation.freqtrade_runner import LOG_COLUMNS, thread_env  # loads no numeric library

# Two xdist workers share two cores: one compute thread per process (and per freqtrade child, which
# inherits this), with passive OpenMP waits. Left at "all cores", OpenMP threads spin against the other
# worker's and a 1-second LightGBM fit takes 80 (measured). Set before numpy, LightGBM or TensorFlow load.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var, _value in thread_env(1).items():
        os.environ.setdefault(_var, _value)

from pathlib import Path

import pytest

from simulation.gateway import GatewayProcess, write_overlay

# The bots the tests start log through rich: the same wide lines as run_freqtrade's, so logs read back unwrapped.
os.environ.setdefault("COLUMNS", LOG_COLUMNS)

SYNTH_ARGS = ["--synthetic", "--seed", "7", "--days", "60", "--start", "2024-01-01"]


@pytest.fixture(scope="session")
def synthetic_gateway(tmp_path_factory) -> GatewayProcess:
    """Real gateway process on a 60-day synthetic market, static clock."""
    log = tmp_path_factory.mktemp("gw") / "gateway.log"
    with GatewayProcess(SYNTH_ARGS, log_path=log) as gw:
        yield gw


@pytest.fixture(scope="session")
def synthetic_overlay(synthetic_gateway, tmp_path_factory) -> Path:
    return write_overlay(tmp_path_factory.mktemp("cfg") / "exchange.json", synthetic_gateway.url)


# -- running the gate on two workers (pytest-xdist, `--dist loadscope`) ---------------------------------
# A worker takes a whole module (a whole class, where a module groups its tests in classes), so a module's
# fixtures — a gateway, downloaded candles, a running bot — are set up once, on one worker. The heaviest
# module, test_ensemble_strategies.py, has a class per strategy. Scopes start heaviest first, so the long
# ones run side by side from the start and the short ones fill in around them.
# Measured seconds per scope (durations of a 2-core run); scopes not listed count as quick.
EXPECTED_SECONDS: dict[str, float] = {  # from a 2-core run of 2026-11-28 (298 tests, 15.3 min)
    "test_clock_fidelity": 650,
    "test_simulation_e2e": 490,
    "test_freqai_e2e": 165,
    "test_relay": 155,
    "test_testbench": 130,
    "test_frequi": 120,
    "test_predictions_live": 115,
    "test_operator_controls": 105,
    "test_gateway_streams": 100,
    "test_ensemble_strategies::TestArbitrageScout": 70,
    "test_ensemble_strategies::TestMeanReversionEnsemble": 65,
    "test_regime": 55,
    "test_bench_models": 55,
    "test_regime_strategy": 50,
    "test_ensemble_strategies::TestTrendFollowingEnsemble": 45,
    "test_freqai_models": 35,
    "test_freqtrade_e2e": 30,
}


def _scope(item: pytest.Item) -> str:
    module = item.module.__name__.rsplit(".", 1)[-1]
    return f"{module}::{item.cls.__name__}" if item.cls is not None else module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = {id(item): i for i, item in enumerate(items)}
    weight = {id(it): EXPECTED_SECONDS.get(_scope(it), 0.0) for it in items}
    module_weight: dict[str, float] = {}
    for it in items:  # a module stays contiguous (its module-scoped fixtures are set up once per worker)
        module_weight[it.module.__name__] = max(module_weight.get(it.module.__name__, 0.0), weight[id(it)])

    def key(it: pytest.Item) -> tuple:
        mw = module_weight[it.module.__name__]
        return (-mw, it.module.__name__ if mw else "", -weight[id(it)], _scope(it), order[id(it)])

    items.sort(key=key)
