"""The upstream relay: a second local gateway (replayed market, x60) stands in for the live exchange,
reached through ccxt's binance client pointed at it. The relay serves what the upstream serves, and
records every candle it relays in freqtrade's own format."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import pytest
import requests
from freqtrade.data.history.datahandlers.featherdatahandler import FeatherDataHandler
from freqtrade.enums import CandleType

from simulation.freqtrade_runner import run_freqtrade
from simulation.gateway import GatewayProcess
from simulation.gateway.process import free_port
from simulation.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def _klines(url: str, symbol: str, tf: str, **params) -> list:
    return requests.get(f"{url}/api/v3/klines", params={"symbol": symbol, "interval": tf, **params}, timeout=10).json()


async def _one_kline_push(url: str) -> dict:
    async with aiohttp.ClientSession() as s, s.ws_connect(url.replace("http", "ws") + "/ws/btcusdt@kline_5m") as ws:
        return json.loads((await ws.receive(timeout=20)).data)


def test_relay_serves_and_records_what_the_upstream_serves(tmp_path):
    rec = tmp_path / "record"
    upstream_args = ["--synthetic", "--seed", "6", "--days", "20", "--replay", "--speed", "60", "--pairs", "BTC/USDT", "ETH/USDT"]
    with GatewayProcess(upstream_args, log_path=tmp_path / "up.log") as up, \
         GatewayProcess(["--upstream", "binance", "--upstream-url", up.url, "--pairs", "BTC/USDT", "ETH/USDT",
                         "--record", str(rec), "--relay-poll", "1", "--relay-history", "300"],
                        log_path=tmp_path / "relay.log") as relay:
        first = _klines(relay.url, "BTCUSDT", "5m", limit=3)
        time.sleep(12)  # two or more 5m closes upstream at x60
        got = _klines(relay.url, "ETHUSDT", "5m", limit=1000)
        assert len(got) >= 300, "the history fetched at start, then the relayed candles"
        closed = got[:-1]
        assert closed[-1][0] > first[-1][0], "new candles were relayed"
        want = _klines(up.url, "ETHUSDT", "5m", startTime=closed[0][0], limit=len(closed))
        assert [r[:6] for r in closed] == [r[:6] for r in want], "closed candles equal the upstream's"
        hourly = _klines(relay.url, "BTCUSDT", "1h", limit=5)
        assert [r[:6] for r in hourly[:-1]] == [r[:6] for r in _klines(up.url, "BTCUSDT", "1h", startTime=hourly[0][0], limit=4)]
        depth = requests.get(f"{relay.url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5}, timeout=10).json()
        push = asyncio.run(_one_kline_push(relay.url))
        books = [json.loads(line) for line in (rec / "books" / "BTC_USDT.jsonl").read_text().splitlines()]
        time.sleep(1.5)  # let the relay finish writing the poll in flight
    # the relay serves the book it recorded (one of its last snapshots), and streams its candles
    assert any([[float(p), float(q)] for p, q in depth["bids"]] == [[float(p), float(q)] for p, q, *_ in b["bids"][:5]]
               for b in books[-3:]), (depth, books[-1])
    assert push["e"] == "kline" and push["s"] == "BTCUSDT"
    # the recording: freqtrade's own handler reads exactly the closed candles the relay served
    handler = FeatherDataHandler(rec)
    recorded = handler.ohlcv_load("ETH/USDT", "5m", candle_type=CandleType.SPOT)
    stamps = recorded["date"].dt.as_unit("ms").astype("int64").tolist()
    assert stamps[: len(closed)] == [r[0] for r in closed]
    assert recorded[["open", "close"]].to_numpy()[: len(closed)].tolist() == [[float(r[1]), float(r[4])] for r in closed]
    run_freqtrade(["list-data", "--datadir", str(rec), "--data-format-ohlcv", "feather"], tmp_path / "list.log")
    assert "ETH/USDT" in (tmp_path / "list.log").read_text()


def test_relay_refuses_bad_starts_with_one_line(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    for args, text in ((["--upstream", "binance", "--upstream-url", dead, "--pairs", "BTC/USDT"], "cannot start the relay"),
                       (["--upstream", "binance", "--pairs", "BTC/USDT", "--venue"], "not built yet"),
                       (["--upstream", "kraken", "--upstream-url", dead, "--pairs", "BTC/USDT"], "Binance-compatible"),
                       (["--upstream", "binance"], "needs --pairs")):
        out = subprocess.run([sys.executable, "-m", "simulation.gateway", "--port", str(free_port()), *args], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 2 and text in out.stderr, (args, out.stderr[-1500:])
        assert "Traceback" not in out.stderr, out.stderr[-1500:]
