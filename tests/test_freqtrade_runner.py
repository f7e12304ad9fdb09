"""The CLI driver's timeout fires on a freqtrade process that runs on and stays silent."""

from __future__ import annotations

import json

import pytest

from simulation.freqtrade_runner import FreqtradeError, run_freqtrade
from simulation.gateway.process import free_port


def test_timeout_kills_a_freqtrade_that_runs_on(tmp_path):
    # `freqtrade webserver` serves its API until stopped: a real freqtrade process that never exits.
    (tmp_path / "ud").mkdir()
    cfg = tmp_path / "web.json"
    cfg.write_text(
        json.dumps(
            {
                "api_server": {
                    "enabled": True,
                    "listen_ip_address": "127.0.0.1",
                    "listen_port": free_port(),
                    "username": "op",
                    "password": "a-long-test-password",
                    "jwt_secret_key": "x" * 32,
                },
                "dry_run": True,
                "stake_currency": "USDT",
                "exchange": {"name": "binance", "pair_whitelist": ["BTC/USDT"]},
                "user_data_dir": str(tmp_path / "ud"),
            }
        )
    )
    with pytest.raises(FreqtradeError, match="timed out after 10"):
        run_freqtrade(["webserver", "--config", str(cfg)], tmp_path / "web.log", timeout=10)
