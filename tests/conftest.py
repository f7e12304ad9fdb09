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
