"""The upstream relay: a second local gateway (replayed market, x60) stands in for the live exchange,
reached through ccxt's binance client pointed at it. The relay serves what the upstream serves, and
records every candle it relays in freqtrade's own format."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import aiohttp
import pytest
import requests
from bot_helpers import wait_for
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
    upstream_args = [
        "--synthetic",
        "--seed",
        "6",
        "--days",
        "20",
        "--replay",
        "--speed",
        "60",
        "--pairs",
        "BTC/USDT",
        "ETH/USDT",
    ]
    with (
        GatewayProcess(upstream_args, log_path=tmp_path / "up.log") as up,
        GatewayProcess(
            [
                "--upstream",
                "binance",
                "--upstream-url",
                up.url,
                "--pairs",
                "BTC/USDT",
                "ETH/USDT",
                "--record",
                str(rec),
                "--relay-poll",
                "1",
                "--relay-history",
                "300",
            ],
            log_path=tmp_path / "relay.log",
        ) as relay,
    ):
        first = _klines(relay.url, "BTCUSDT", "5m", limit=3)
        wait_for(  # two or more 5m closes relayed (x60 upstream: one every 5 s), for the pair read below
            lambda: _klines(relay.url, "ETHUSDT", "5m", limit=3)[-2][0] > first[-1][0], 60, "new closes of ETH"
        )
        got = _klines(relay.url, "ETHUSDT", "5m", limit=1000)
        assert len(got) >= 300, "the history fetched at start, then the relayed candles"
        closed = got[:-1]
        assert closed[-1][0] > first[-1][0], "new candles were relayed"
        want = _klines(up.url, "ETHUSDT", "5m", startTime=closed[0][0], limit=len(closed))
        assert [r[:6] for r in closed] == [r[:6] for r in want], "closed candles equal the upstream's"
        hourly = _klines(relay.url, "BTCUSDT", "1h", limit=5)
        assert [r[:6] for r in hourly[:-1]] == [
            r[:6] for r in _klines(up.url, "BTCUSDT", "1h", startTime=hourly[0][0], limit=4)
        ]
        depth = requests.get(f"{relay.url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5}, timeout=10).json()
        push = asyncio.run(_one_kline_push(relay.url))
        books = [json.loads(line) for line in (rec / "books" / "BTC_USDT.jsonl").read_text().splitlines()]
        time.sleep(1.5)  # let the relay finish writing the poll in flight
    # the relay serves the book it recorded (one of its last snapshots), and streams its candles
    assert any(
        [[float(p), float(q)] for p, q in depth["bids"]] == [[float(p), float(q)] for p, q, *_ in b["bids"][:5]]
        for b in books[-3:]
    ), (depth, books[-1])
    assert push["e"] == "kline" and push["s"] == "BTCUSDT"
    # the recording: freqtrade's own handler reads exactly the closed candles the relay served
    handler = FeatherDataHandler(rec)
    recorded = handler.ohlcv_load("ETH/USDT", "5m", candle_type=CandleType.SPOT)
    stamps = recorded["date"].dt.as_unit("ms").astype("int64").tolist()
    assert stamps[: len(closed)] == [r[0] for r in closed]
    assert recorded[["open", "close"]].to_numpy()[: len(closed)].tolist() == [
        [float(r[1]), float(r[4])] for r in closed
    ]
    run_freqtrade(["list-data", "--datadir", str(rec), "--data-format-ohlcv", "feather"], tmp_path / "list.log")
    assert "ETH/USDT" in (tmp_path / "list.log").read_text()


def test_relay_refuses_bad_starts_with_one_line(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    for args, text in (
        (["--upstream", "binance", "--upstream-url", dead, "--pairs", "BTC/USDT"], "cannot start the relay"),
        (["--upstream", "binance", "--pairs", "BTC/USDT", "--venue"], "needs SIMULATOR_API_KEY"),
        (["--upstream", "kraken", "--upstream-url", dead, "--pairs", "BTC/USDT"], "Binance-compatible"),
        (["--upstream", "binance"], "needs --pairs"),
        (
            ["--upstream", "binance", "--upstream-url", dead, "--pairs", "BTC/USDT", "--relay-poll", "nan"],
            "--relay-poll must be",
        ),
    ):
        env = {k: v for k, v in os.environ.items() if k not in ("SIMULATOR_API_KEY", "SIMULATOR_API_SECRET")}
        out = subprocess.run(
            [sys.executable, "-m", "simulation.gateway", "--port", str(free_port()), *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        assert out.returncode == 2 and text in out.stderr, (args, out.stderr[-1500:])
        assert "Traceback" not in out.stderr, out.stderr[-1500:]


@pytest.mark.parametrize(
    "extra, text",
    [
        (["--relay-poll", "inf"], "--relay-poll must be"),
        (["--relay-poll", "-1"], "--relay-poll must be"),
        (["--upstream-timeout", "nan"], "--upstream-timeout must be"),
        (["--relay-history", "10000000"], "--relay-history must be"),
        (["--relay-history", "0"], "--relay-history must be"),
        (["--relay-timeframes", "5m", "7m"], "unknown '7m'"),
        (["--pairs", "BTC/USDT", "btc-usdt"], "not BASE/QUOTE"),
        (["--pairs", "BTC/USDT", "BTC/USDT"], "must not repeat"),
    ],
)
def test_relay_arguments_are_checked_before_any_network_call(extra, text):
    """Issue 33 (low): NaN/inf periods, a huge history, bad pairs and timeframes were found (or not) only
    after the upstream answered."""
    from simulation.gateway.__main__ import build_parser, relay_argument_problem

    args = build_parser().parse_args(["--upstream", "binance", "--pairs", "BTC/USDT", *extra])
    assert text in (relay_argument_problem(args) or ""), relay_argument_problem(args)
    assert relay_argument_problem(build_parser().parse_args(["--upstream", "binance", "--pairs", "BTC/USDT"])) is None


def _store():
    import pandas as pd

    from simulation.marketdata.relay import LiveCandleStore, RelaySource
    from simulation.markets import MarketSpec

    t0 = 1_700_000_100_000 // 300_000 * 300_000
    hist = pd.DataFrame(
        {
            "date": pd.to_datetime([t0 - 300_000], unit="ms", utc=True),
            "open": [100.0],
            "high": [101.0],
            "low": [99.0],
            "close": [100.0],
            "volume": [10.0],
        }
    )
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
    assert store.update(
        "BTC/USDT", "5m", [[t0, 100, 103, 97.0, 99.5, 5.0], [t0 + 300_000, 99.5, 100.2, 99.4, 100.0, 0.5]], t0 + 300_500
    ) == [[t0, 100, 103, 97.0, 99.5, 5.0]]
    assert [c.open_time for c in store.candles("BTC/USDT", "5m", None)] == [t0 - 300_000, t0, t0 + 300_000]
    # what this poll brought: the closed candle's final low (97) and the whole range of the candle that
    # opened since (up to 100.2); volume 0.5 + 0.5. Stamped on arrival: a venue that checked its orders
    # up to just before the poll still matches them against it
    assert store.traded_range("BTC/USDT", t0 + 300_499, t0 + 300_500) == (97.0, 100.2, 1.0)
    assert store.traded_range("BTC/USDT", t0 + 3000, t0 + 300_499)[2] == 0.0, "nothing arrived before the poll"


def test_paper_orders_on_the_relay_fill_against_the_relayed_book(tmp_path):
    from urllib.parse import urlencode

    from simulation.venue import ApiCredentials
    from simulation.venue.auth import KEY_ENV, SECRET_ENV

    creds = ApiCredentials("k" * 64, "s" * 64)
    env = {**os.environ, KEY_ENV: creds.key, SECRET_ENV: creds.secret}
    upstream_args = ["--synthetic", "--seed", "6", "--days", "20", "--replay", "--speed", "60", "--pairs", "BTC/USDT"]
    with (
        GatewayProcess(upstream_args, log_path=tmp_path / "up.log") as up,
        GatewayProcess(
            [
                "--upstream",
                "binance",
                "--upstream-url",
                up.url,
                "--pairs",
                "BTC/USDT",
                "--record",
                str(tmp_path / "rec"),
                "--relay-poll",
                "1",
                "--relay-history",
                "300",
                "--venue",
                "--balances",
                "USDT=100000",
            ],
            log_path=tmp_path / "relay.log",
            env=env,
        ) as relay,
    ):
        book = requests.get(f"{relay.url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 20}, timeout=10).json()
        params = {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.01",
            "timestamp": requests.get(f"{relay.url}/api/v3/time", timeout=5).json()["serverTime"],
        }
        q = urlencode(params)
        r = requests.post(
            f"{relay.url}/api/v3/order?{q}&signature={creds.sign(q)}", headers={"X-MBX-APIKEY": creds.key}, timeout=10
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "FILLED"
    price = float(body["fills"][0]["price"])
    asks = [float(p) for p, _ in book["asks"]]
    # the relayed book at most one poll earlier; market impact may push the price past the touch
    assert min(asks) * 0.99 <= price <= max(asks) * 1.01, (price, asks[:3])


def test_paper_session_on_a_relayed_market_is_recorded_and_compared(tmp_path):
    """`simulation.run --upstream local`: the bot trades on the relay's venue, the relay records what it
    relays, and the backtest replays exactly that recording against the bot's trades."""
    import pandas as pd

    from simulation.marketdata import open_source
    from simulation.synthetic import SyntheticConfig

    out = tmp_path / "relayed"
    # the constant clock: the relay polls its upstream every 2 s of session time on the compute clock, a
    # real relay's compute for 6 h (measured: > 15 min of wall time); at x300 it polls every 60 s
    cmd = [
        sys.executable,
        "-m",
        "simulation.run",
        "--strategy",
        "ReferenceStrategy",
        "--synthetic",
        "--clock",
        "constant",
        "--speed",
        "300",
        "--upstream",
        "local",
        "--mode",
        "paper",
        "--timerange",
        "20240301T1000-20240301T1600",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "comparison.json").read_text())
    rec = result["recording"]
    assert rec["complete"] and rec["expected_per_pair"] == 72, rec
    assert all(p["book_snapshots"] > 0 for p in rec["pairs"].values())
    assert {"setting": "market data", "differs": False}.items() <= next(
        r for r in result["comparability"] if r["setting"] == "market data"
    ).items()
    assert result["assumptions"]["path"].startswith("relayed")
    # while it ran: the bot's own figures only (its backtest replays the recording, made as it ran)
    live = json.loads((out / "user_data" / "live_comparison.json").read_text())
    assert live["trades_matched"] is None and live["trades_bot"] <= result["trades_sim"] and live["elapsed_ratio"] > 0.9
    # the recording is the upstream's market, candle for candle (the relay invents nothing)
    truth = open_source(synthetic=SyntheticConfig(seed=42), pairs=["BTC/USDT", "ETH/USDT"]).load("BTC/USDT", "5m")
    recorded = pd.read_feather(out / "recording" / "BTC_USDT-5m.feather")
    both = recorded.merge(truth, on="date", suffixes=("", "_up"))
    assert len(both) >= 72 and len(both) == len(recorded)
    assert (
        both[["open", "high", "low", "close"]].to_numpy()
        == both[["open_up", "high_up", "low_up", "close_up"]].to_numpy()
    ).all()
    # the bot traded on the relay's venue; its limit orders filled only where the relayed market traded through
    venue = json.loads((out / "venue_orders.json").read_text())
    fills = [(o, t) for o in venue["orders"] if o["type"] == "LIMIT" for t in o["trades"]]
    assert fills, "the venue filled the bot's orders on the relayed market"
    bars = {
        p: pd.read_feather(out / "recording" / f"{p.replace('/', '_')}-5m.feather").set_index("date")
        for p in ("BTC/USDT", "ETH/USDT")
    }
    for order, trade in fills:
        at = pd.Timestamp(trade["time"], unit="ms", tz="UTC").floor("5min")
        near = bars[order["pair"]].loc[at - pd.Timedelta("5min") : at]  # this candle, or the one whose close it learned
        assert (near.low < trade["price"]).any() if order["side"] == "BUY" else (near.high > trade["price"]).any(), (
            order,
            near,
        )
    assert result["reconciliation"]["ok"], result["reconciliation"]
    # the discrepancy report over the recorded session: its invariants hold
    gap, matched = result["gap"], result["trades_matched"]
    assert result["trades_backtest"] >= 1 and result["trades_sim"] >= 1
    assert abs(gap["waterfall"]["residual"]) < 1e-6
    assert (
        matched + gap["missed_unfilled"] + gap["missed_no_signal"] + gap["reentries_after_cancel"]
        == result["trades_backtest"]
    )
    assert (out / "report.html").stat().st_size > 10_000


def test_live_session_arguments_fail_with_one_line():
    from simulation.run.__main__ import build_parser, make_spec

    base = ["--strategy", "ReferenceStrategy", "--synthetic"]
    for extra, text in (
        (["--upstream", "binance"], "needs --duration"),
        (
            ["--upstream", "binance", "--duration", "4h", "--timerange", "20240301-20240302"],
            "--timerange is for replayed",
        ),
        (["--upstream", "binance", "--duration", "4x"], "expected a number and a unit"),
        (
            ["--upstream", "binance", "--duration", "4h", "--speed", "10"],
            "runs on the wall clock: no --clock, no --speed",
        ),
        (["--duration", "4h"], "--duration is for a live --upstream"),
        (["--upstream-url", "http://127.0.0.1:1"], "--upstream-url needs --upstream"),
    ):
        with pytest.raises(ValueError, match=re.escape(text)):
            make_spec(build_parser().parse_args(base + extra))
    spec = make_spec(build_parser().parse_args([*base, "--upstream", "kraken", "--duration", "90m"]))
    assert spec.live and spec.speed == 1 and spec.end_ms - spec.start_ms == 90 * 60_000 and spec.start_ms % 300_000 == 0
    assert spec.start_ms >= time.time() * 1000 + 25_000 - 1, "trading starts after the warm-up"


class _Upstream:
    """A ccxt-like async upstream over a list of 5m candles, at a time the test moves: the candle
    forming at `now` is served partial (its close still moving)."""

    def __init__(self, t0: int, n: int) -> None:
        self.rows = [[t0 + i * 300_000, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0] for i in range(n)]
        self.now = t0
        self.on_page = None  # called after each page (time passes while paging)

    async def fetch_time(self):
        return self.now

    async def fetch_ohlcv(self, pair, tf, since=None, limit=500):
        live = [r for r in self.rows if r[0] <= self.now and (since is None or r[0] >= since)]
        page = [list(r) for r in live[:limit]]
        if page and page[-1][0] + 300_000 > self.now:
            page[-1][4] = 0.0  # partial: not the final close
        if self.on_page:
            self.on_page()
        return page

    async def fetch_order_book(self, pair, limit=20):
        return {"bids": [], "asks": []}


def test_relay_history_and_polls_never_keep_a_partial_candle_or_skip_one():
    import pandas as pd

    from simulation.marketdata.relay import LiveCandleStore, RelaySource, UpstreamRelay
    from simulation.markets import MarketSpec

    t0 = 1_700_000_100_000 // 300_000 * 300_000
    up = _Upstream(t0, 3000)
    start = up.now = t0 + 1000 * 300_000 + 150_000  # 1000 candles closed, the 1001st forming

    def moves():  # the first page (1000 rows) ends with the forming candle; by the next page it has closed
        up.now += 300_000

    up.on_page = moves
    relay = UpstreamRelay("binance", ["BTC/USDT"], ["5m"], None, history=1000)
    relay.exchange = up
    rows = asyncio.run(relay._history("BTC/USDT", "5m", start))
    assert len(rows) == 1000 and all(r[4] != 0.0 for r in rows), "only candles closed before paging began"
    up.on_page = None
    hist = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
    hist["date"] = pd.to_datetime(hist["date"], unit="ms", utc=True)
    relay.store = LiveCandleStore(
        RelaySource({"BTC/USDT": {"5m": hist}}, {"BTC/USDT": MarketSpec("BTC", "USDT", 0.01, 0.00001)}, "t")
    )
    up.now += 20 * 300_000  # an outage of 20 candles before the next poll
    asyncio.run(relay.poll_once())
    got = relay.store.candles("BTC/USDT", "5m", None, limit=2000)
    closed = [c for c in got if c.open_time + 300_000 <= up.now]
    assert [c.open_time for c in closed] == [r[0] for r in up.rows if r[0] + 300_000 <= up.now], "no candle skipped"
    assert all(c.close == up.rows[(c.open_time - t0) // 300_000][4] for c in closed), "every closed candle final"
