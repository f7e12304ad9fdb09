"""Stock freqtrade against the gateway: list-markets, download-data, backtesting, trade --dry-run."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from freqtrade_client import FtRestClient

from simulation.freqtrade_runner import REPO_ROOT, freqtrade_executable, latest_backtest_stats, run_freqtrade
from simulation.gateway import GatewayProcess, write_overlay
from simulation.gateway.process import free_port
from simulation.paths import SHARED_DATA
from simulation.synthetic import SyntheticConfig, generate

pytestmark = pytest.mark.slow
CONFIG = "config/backtest.json"


def _ft(tmp_path: Path, overlay: Path, *args: str, name: str):
    return run_freqtrade([args[0], "--config", CONFIG, "--config", str(overlay), *args[1:]], tmp_path / f"{name}.log")


@pytest.fixture(scope="module")
def synthetic_source_market():
    # Same parameters as the session gateway fixture (conftest.SYNTH_ARGS).
    return generate(SyntheticConfig(seed=7, days=60, start="2024-01-01"))


def test_list_markets(tmp_path, synthetic_overlay):
    run = _ft(tmp_path, synthetic_overlay, "list-markets", "--print-json", name="list")
    pairs = json.loads(run.log_path.read_text().strip().splitlines()[-1])
    assert {"BTC/USDT", "ETH/USDT", "BNB/USDT", "ADA/USDT"} <= set(pairs)


def test_download_data_equals_source_and_backtest_trades(tmp_path, synthetic_overlay, synthetic_source_market):
    datadir = tmp_path / "data"
    _ft(
        tmp_path,
        synthetic_overlay,
        "download-data",
        "--datadir",
        str(datadir),
        "--pairs",
        "BTC/USDT",
        "ETH/USDT",
        "--timeframes",
        "5m",
        "1h",
        "--timerange",
        "20240101-20240220",
        name="download",
    )
    for pair in ("BTC/USDT", "ETH/USDT"):
        src = synthetic_source_market.candles[pair]
        got = pd.read_feather(datadir / f"{pair.replace('/', '_')}-5m.feather")
        assert len(got) > 14_000
        merged = got.merge(src, on="date", suffixes=("", "_src"), how="left")
        for col in ("open", "high", "low", "close", "volume"):
            assert np.array_equal(merged[col].to_numpy(), merged[f"{col}_src"].to_numpy()), f"{pair} {col}"
        hourly = pd.read_feather(datadir / f"{pair.replace('/', '_')}-1h.feather").set_index("date")
        ref = src.set_index("date").resample("1h").agg({"open": "first", "high": "max", "low": "min", "close": "last"})
        # same timestamps and values (freqtrade stores ms, pandas resamples in us: compare times, not units)
        pd.testing.assert_frame_equal(
            hourly[["open", "high", "low", "close"]], ref.loc[hourly.index], check_index_type=False
        )

    results = tmp_path / "results"
    results.mkdir()
    _ft(
        tmp_path,
        synthetic_overlay,
        "backtesting",
        "--datadir",
        str(datadir),
        "--pairs",
        "BTC/USDT",
        "ETH/USDT",
        "--strategy",
        "ReferenceStrategy",
        "--timerange",
        "20240103-20240215",
        "--export",
        "trades",
        "--backtest-directory",
        str(results),
        "--cache",
        "none",
        name="backtest",
    )
    stats = latest_backtest_stats(results)["strategy"]["ReferenceStrategy"]
    assert stats["total_trades"] > 10
    assert set(stats["pairlist"]) == {"BTC/USDT", "ETH/USDT"}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="real Binance data (../shared/data) not on this machine")
def test_download_from_real_binance_data_is_byte_exact(tmp_path):
    with GatewayProcess(["--datadir", str(SHARED_DATA)], log_path=tmp_path / "gw.log") as gw:
        overlay = write_overlay(tmp_path / "exchange.json", gw.url)
        datadir = tmp_path / "data"
        _ft(
            tmp_path,
            overlay,
            "download-data",
            "--datadir",
            str(datadir),
            "--pairs",
            "BTC/USDT",
            "LINK/USDT",
            "--timeframes",
            "1h",
            "--timerange",
            "20250101-20250301",
            name="download",
        )
    for pair in ("BTC_USDT", "LINK_USDT"):
        got = pd.read_feather(datadir / f"{pair}-1h.feather")
        src = pd.read_feather(SHARED_DATA / f"{pair}-1h.feather")
        src = src[src["date"].isin(got["date"])]
        assert len(src) == len(got) > 1000
        for col in ("open", "high", "low", "close", "volume"):
            assert np.array_equal(got[col].to_numpy(), src[col].to_numpy()), f"{pair} {col}"


def test_dry_run_bot_trades_on_replayed_market(tmp_path):
    """freqtrade trade --dry-run against the replay gateway; checked through its REST API."""
    api_port = free_port()
    password = secrets.token_urlsafe(16)
    with GatewayProcess(
        ["--synthetic", "--seed", "3", "--days", "30", "--replay", "--replay-start", "2024-01-20"],
        log_path=tmp_path / "gw.log",
    ) as gw:
        overlay = write_overlay(tmp_path / "exchange.json", gw.url, ["BTC/USDT", "ETH/USDT"])
        api_cfg = tmp_path / "api.json"
        api_cfg.write_text(
            json.dumps(
                {
                    "api_server": {
                        "enabled": True,
                        "listen_ip_address": "127.0.0.1",
                        "listen_port": api_port,
                        "username": "tester",
                        "jwt_secret_key": secrets.token_hex(16),
                        "ws_token": secrets.token_hex(8),
                    }
                }
            )
        )
        env = {**os.environ, "FREQTRADE__API_SERVER__PASSWORD": password}
        log = tmp_path / "trade.log"
        cmd = [
            *freqtrade_executable(),
            "trade",
            "--config",
            "config/simulation.json",
            "--config",
            str(overlay),
            "--config",
            str(api_cfg),
            "--db-url",
            f"sqlite:///{tmp_path / 'dry.sqlite'}",
            "--dry-run",
        ]
        with open(log, "w") as fh:
            bot = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            client = FtRestClient(f"http://127.0.0.1:{api_port}", "tester", password)
            candles = None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and bot.poll() is None:
                try:
                    candles = client.pair_candles("BTC/USDT", "5m", limit=300)
                    if candles and candles.get("length", 0) > 0:
                        break
                except Exception:  # noqa: BLE001, S110 (API not up yet)
                    pass
                time.sleep(2)
            assert bot.poll() is None, log.read_text()[-3000:]
            assert candles and candles["length"] >= 200, candles
            cols = candles["columns"]
            last = candles["data"][-1]
            last_date = pd.Timestamp(last[cols.index("date")])
            age = pd.Timestamp.now(tz="UTC") - last_date
            assert pd.Timedelta(0) <= age <= pd.Timedelta(minutes=11), f"latest closed candle {last_date} is {age} old"
            assert "ema_fast" in cols and "rsi" in cols, "strategy indicators computed on gateway candles"
            assert client.show_config()["dry_run"] is True
            assert isinstance(client.status(), list)
        finally:
            bot.send_signal(signal.SIGINT)
            try:
                bot.wait(60)
            except subprocess.TimeoutExpired:  # a slow shutdown is not what this test is about
                bot.kill()
                bot.wait()
    text = log.read_text()
    assert " - ERROR - " not in text, [ln for ln in text.splitlines() if " - ERROR - " in ln][:5]
    assert "Outdated history" not in text
