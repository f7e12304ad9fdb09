"""The upstream relay: a second local gateway (replayed market, x60) stands in for the live exchange,
reached through ccxt's binance client pointed at it. The relay serves what the upstream serves, and
records every candle it relays in freqtrade's own format."""

from __future__ import annotations

import asyncio
import json
import os
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
                       (["--upstream", "binance", "--pairs", "BTC/USDT", "--venue"], "needs SIMULATOR_API_KEY"),
                       (["--upstream", "kraken", "--upstream-url", dead, "--pairs", "BTC/USDT"], "Binance-compatible"),
                       (["--upstream", "binance"], "needs --pairs")):
        env = {k: v for k, v in os.environ.items() if k not in ("SIMULATOR_API_KEY", "SIMULATOR_API_SECRET")}
        out = subprocess.run([sys.executable, "-m", "simulation.gateway", "--port", str(free_port()), *args], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120, check=False, env=env)
        assert out.returncode == 2 and text in out.stderr, (args, out.stderr[-1500:])
        assert "Traceback" not in out.stderr, out.stderr[-1500:]


def _store():
    import pandas as pd

    from simulation.marketdata.relay import LiveCandleStore, RelaySource
    from simulation.markets import MarketSpec

    t0 = 1_700_000_100_000 // 300_000 * 300_000
    hist = pd.DataFrame({"date": pd.to_datetime([t0 - 300_000], unit="ms", utc=True), "open": [100.0], "high": [101.0],
                         "low": [99.0], "close": [100.0], "volume": [10.0]})
    src = RelaySource({"BTC/USDT": {"5m": hist}}, {"BTC/USDT": MarketSpec("BTC", "USDT", 0.01, 0.00001)}, "test")
    return LiveCandleStore(src), t0


def test_traded_range_between_polls_comes_from_what_the_polls_saw():
    store, t0 = _store()
    # polls at t0+1s, +2s, +3s of the forming candle: the high rises to 103 between the 1st and 2nd
    store.update("BTC/USDT", "5m", [[t0, 100, 101, 99.5, 100.5, 1.0]], t0 + 1000)
    store.update("BTC/USDT", "5m", [[t0, 100, 103, 99.5, 102.0, 3.0]], t0 + 2000)
    store.update("BTC/USDT", "5m", [[t0, 100, 103, 98.0, 99.0, 4.5]], t0 + 3000)
    assert store.traded_range("BTC/USDT", t0 + 1000, t0 + 2000) == (102.0, 103.0, 2.0)
    assert store.traded_range("BTC/USDT", t0 + 2000, t0 + 3000) == (98.0, 99.0, 1.5)
    low, high, vol = store.traded_range("BTC/USDT", t0 + 3000, t0 + 4000)  # nothing polled: last price, no volume
    assert (low, high, vol) == (99.0, 99.0, 0.0)
    # the forming candle is served as polled; once a newer candle appears it is closed and kept
    assert store.candles("BTC/USDT", "5m", None, limit=1)[0].close == 99.0
    assert store.update("BTC/USDT", "5m", [[t0, 100, 103, 98.0, 99.5, 5.0], [t0 + 300_000, 99.5, 99.5, 99.5, 99.5, 0.1]],
                        t0 + 300_500) == [[t0, 100, 103, 98.0, 99.5, 5.0]]
    assert [c.open_time for c in store.candles("BTC/USDT", "5m", None)] == [t0 - 300_000, t0, t0 + 300_000]


def test_paper_orders_on_the_relay_fill_against_the_relayed_book(tmp_path):
    from urllib.parse import urlencode

    from simulation.venue import ApiCredentials
    from simulation.venue.auth import KEY_ENV, SECRET_ENV

    creds = ApiCredentials("k" * 64, "s" * 64)
    env = {**os.environ, KEY_ENV: creds.key, SECRET_ENV: creds.secret}
    upstream_args = ["--synthetic", "--seed", "6", "--days", "20", "--replay", "--speed", "60", "--pairs", "BTC/USDT"]
    with GatewayProcess(upstream_args, log_path=tmp_path / "up.log") as up, \
         GatewayProcess(["--upstream", "binance", "--upstream-url", up.url, "--pairs", "BTC/USDT", "--record", str(tmp_path / "rec"),
                         "--relay-poll", "1", "--relay-history", "300", "--venue", "--balances", "USDT=100000"],
                        log_path=tmp_path / "relay.log", env=env) as relay:
        book = requests.get(f"{relay.url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 20}, timeout=10).json()
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
                  "timestamp": requests.get(f"{relay.url}/api/v3/time", timeout=5).json()["serverTime"]}
        q = urlencode(params)
        r = requests.post(f"{relay.url}/api/v3/order?{q}&signature={creds.sign(q)}", headers={"X-MBX-APIKEY": creds.key}, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "FILLED"
    price = float(body["fills"][0]["price"])
    asks = [float(p) for p, _ in book["asks"]]
    # the relayed book at most one poll earlier; market impact may push the price past the touch
    assert min(asks) * 0.99 <= price <= max(asks) * 1.01, (price, asks[:3])
