from __future__ import annotations

from pathlib import Path

import pytest

from simulation.gateway import GatewayProcess, write_overlay

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


# -- running the gate on two workers (pytest-xdist, `--dist loadgroup`) --------------------------------
# Tests of one module share its module-scoped fixtures (a gateway, downloaded data, a running bot), so a
# module is one group and runs on one worker. The heaviest module is split by strategy: each strategy's
# backtest, lookahead- and recursive-analysis share only that strategy's data.
SPLIT_BY_PARAM = {"test_ensemble_strategies": "strategy"}
# Measured seconds per group (durations of a 2-core run), heaviest first, so the long groups start at
# once and the short ones fill in around them. Groups not listed count as quick.
EXPECTED_SECONDS: dict[str, float] = {
    "test_simulation_e2e": 250, "test_freqai_e2e": 200, "test_testbench": 150, "test_ensemble_strategies[ArbitrageScout]": 140,
    "test_bench_models": 135, "test_frequi": 135, "test_ensemble_strategies[MeanReversionEnsemble]": 110,
    "test_ensemble_strategies[TrendFollowingEnsemble]": 90, "test_regime": 70, "test_regime_strategy": 55,
    "test_operator_controls": 35, "test_freqtrade_e2e": 30,
}


def _group(item: pytest.Item) -> str:
    module = item.module.__name__.rsplit(".", 1)[-1]
    param = SPLIT_BY_PARAM.get(module)
    callspec = getattr(item, "callspec", None)
    if param and callspec is not None and param in callspec.params:
        return f"{module}[{callspec.params[param]}]"
    if param and item.name.startswith("test_tight_limits"):
        return f"{module}[MeanReversionEnsemble]"
    return module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
    order = {id(item): i for i, item in enumerate(items)}
    weight = {id(it): EXPECTED_SECONDS.get(_group(it), 0.0) for it in items}
    module_weight: dict[str, float] = {}
    for it in items:  # a module stays contiguous (its module-scoped fixtures are set up once per worker)
        module_weight[it.module.__name__] = max(module_weight.get(it.module.__name__, 0.0), weight[id(it)])
    items.sort(key=lambda it: (-module_weight[it.module.__name__], it.module.__name__ if module_weight[it.module.__name__] else "",
                               -weight[id(it)], order[id(it)]))
