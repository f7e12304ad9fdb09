"""The gateway: Binance shapes and error codes on its own app in-process (no process to start for what
is the HTTP layer's), ccxt compatibility and the lifecycle against a real process."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import ccxt
import pytest
import requests

from simulation.gateway import GatewayProcess
from simulation.gateway.freqtrade_config import exchange_overlay


@pytest.fixture(scope="module")
def inprocess_gateway():
    from conftest import SYNTH_ARGS
    from sim_helpers import InProcessGateway

    with InProcessGateway(SYNTH_ARGS) as gw:
        yield gw


def get(gw, path, **params):
    return requests.get(f"{gw.url}{path}", params=params, timeout=10)


def test_ping_time_and_exchange_info(inprocess_gateway):
    gw = inprocess_gateway
    assert get(gw, "/api/v3/ping").json() == {}
    assert isinstance(get(gw, "/api/v3/time").json()["serverTime"], int)
    info = get(gw, "/api/v3/exchangeInfo").json()
    symbols = {s["symbol"]: s for s in info["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "ADAUSDT", "USDCUSDT"} <= set(symbols)
    filters = {f["filterType"]: f for f in symbols["BTCUSDT"]["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert float(filters["NOTIONAL"]["minNotional"]) == 5.0
    one = get(gw, "/api/v3/exchangeInfo", symbol="ADAUSDT").json()
    assert [s["symbol"] for s in one["symbols"]] == ["ADAUSDT"]


def test_tickers_and_depth_agree_with_last_candle(inprocess_gateway):
    gw = inprocess_gateway
    last = get(gw, "/api/v3/klines", symbol="ETHUSDT", interval="5m", limit=1).json()[0]
    close = float(last[4])
    t = get(gw, "/api/v3/ticker/24hr", symbol="ETHUSDT").json()
    assert float(t["lastPrice"]) == close
    assert float(t["bidPrice"]) < close < float(t["askPrice"])
    assert float(t["lowPrice"]) <= close <= float(t["highPrice"])
    day = get(gw, "/api/v3/klines", symbol="ETHUSDT", interval="5m", limit=288).json()
    assert float(t["volume"]) == pytest.approx(sum(float(k[5]) for k in day), rel=1e-9)
    assert float(get(gw, "/api/v3/ticker/price", symbol="ETHUSDT").json()["price"]) == close
    all_prices = get(gw, "/api/v3/ticker/price").json()
    assert isinstance(all_prices, list) and len(all_prices) >= 8
    some = get(gw, "/api/v3/ticker/24hr", symbols='["BTCUSDT","ADAUSDT"]').json()
    assert [x["symbol"] for x in some] == ["BTCUSDT", "ADAUSDT"]
    book = get(gw, "/api/v3/depth", symbol="ETHUSDT", limit=20).json()
    bids = [(float(p), float(q)) for p, q in book["bids"]]
    asks = [(float(p), float(q)) for p, q in book["asks"]]
    assert len(bids) >= 10 and len(asks) >= 10
    assert all(b1[0] > b2[0] for b1, b2 in itertools.pairwise(bids))
    assert all(a1[0] < a2[0] for a1, a2 in itertools.pairwise(asks))
    assert bids[0][0] < close < asks[0][0]
    spread = (asks[0][0] - bids[0][0]) / close
    assert 0.0001 <= spread <= 0.0011, "base spread 0.02%, at most x1.5 in high volatility"
    bt = get(gw, "/api/v3/ticker/bookTicker", symbol="ETHUSDT").json()
    assert float(bt["bidPrice"]) == bids[0][0] and float(bt["askPrice"]) == asks[0][0]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v3/klines", {"symbol": "NOPEUSDT", "interval": "1h"}, 400, -1121),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "7h"}, 400, -1120),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"}, 400, -1120),  # finer than data
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": "abc"}, 400, -1100),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": "1001"}, 400, -1130),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": "0"}, 400, -1130),
        ("/api/v3/klines", {"interval": "1h"}, 400, -1102),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h", "startTime": "5", "endTime": "1"}, 400, -1023),
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "5001"}, 400, -1130),
        ("/api/v3/depth", {"symbol": "XYZ"}, 400, -1121),
        ("/api/v3/ticker/24hr", {"symbol": "XYZ"}, 400, -1121),
        ("/api/v3/ticker/price", {"symbols": "not-json"}, 400, -1100),
        ("/api/v3/ticker/price", {"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, 400, -1128),
        ("/api/v3/exchangeInfo", {"symbol": "XYZ"}, 400, -1121),
        ("/api/v3/doesNotExist", {}, 404, -1000),
    ],
)
def test_binance_style_errors(inprocess_gateway, path, params, status, code):
    r = get(inprocess_gateway, path, **params)
    assert r.status_code == status
    body = r.json()
    assert body["code"] == code and isinstance(body["msg"], str)
    assert "Traceback" not in r.text


def test_ccxt_binance_client_works_against_gateway(synthetic_gateway):
    """The real ccxt client, configured the way freqtrade configures it."""
    cfg = exchange_overlay(synthetic_gateway.url)["exchange"]["ccxt_config"]
    ex = ccxt.binance(cfg)
    markets = ex.load_markets()
    assert markets["BTC/USDT"]["precision"]["price"] == 0.01
    assert markets["BTC/USDT"]["limits"]["cost"]["min"] == 5.0
    since = ex.parse8601("2024-01-10T00:00:00Z")
    ohlcv = ex.fetch_ohlcv("BTC/USDT", "4h", since=since, limit=6)
    assert [c[0] for c in ohlcv] == [since + i * 4 * 3_600_000 for i in range(6)]
    ob = ex.fetch_order_book("ETH/USDT", limit=10)
    assert len(ob["bids"]) == 10 and ob["bids"][0][0] < ob["asks"][0][0]
    tickers = ex.fetch_tickers(["BTC/USDT", "ETH/USDT"])
    assert set(tickers) == {"BTC/USDT", "ETH/USDT"}
    with pytest.raises(ccxt.BadSymbol):
        ex.fetch_ohlcv("DOGE/USDT", "1h")


def test_sigterm_is_a_clean_shutdown(tmp_path):
    gw = GatewayProcess(["--synthetic", "--days", "3"], log_path=tmp_path / "gw.log").start()
    assert gw.stop() == 0
    assert "gateway stopped" in (tmp_path / "gw.log").read_text()


def test_bad_datadir_fails_fast_with_a_clear_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "simulation.gateway", "--datadir", str(tmp_path / "missing"), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_replay_gateway_serves_live_shifted_candles(tmp_path):
    from simulation.clock import wall_ms

    with GatewayProcess(
        ["--synthetic", "--days", "20", "--replay", "--replay-start", "2024-01-10"], log_path=tmp_path / "gw.log"
    ) as gw:
        server = get(gw, "/api/v3/time").json()["serverTime"]
        assert abs(server - wall_ms()) < 5_000, "replay at x1 runs on the wall clock"
        kl = get(gw, "/api/v3/klines", symbol="BTCUSDT", interval="5m", limit=3).json()
        assert kl[-1][0] <= server <= kl[-1][6], "last kline is the forming one"
        assert kl[-2][6] < server
        # Asking for the future returns nothing.
        assert get(gw, "/api/v3/klines", symbol="BTCUSDT", interval="5m", startTime=server + 3_600_000).json() == []


def test_a_port_taken_before_the_gateway_binds_it_is_chosen_again(tmp_path):
    """Issue 34 §4: ports are chosen, then bound; another worker can take one in between. The gateway
    says so (exit 98) and GatewayProcess picks another, when it chose the port."""
    import socket

    from simulation.gateway.process import EXIT_PORT_IN_USE, GatewayProcess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gw = GatewayProcess(["--synthetic", "--seed", "3", "--days", "3"], log_path=tmp_path / "gw.log")
        gw.port = port  # as if another worker bound it after free_port() chose it
        with gw:
            assert gw.port != port and requests.get(f"{gw.url}/api/v3/ping", timeout=5).ok
        assert "address already in use" in (tmp_path / "gw.log").read_text()
        fixed = GatewayProcess(
            ["--synthetic", "--seed", "3", "--days", "3"], port=port, log_path=tmp_path / "fixed.log"
        )
        with pytest.raises(RuntimeError, match="address in use"):
            fixed.start()
        assert fixed.proc.returncode == EXIT_PORT_IN_USE


def test_no_gateway_outlives_a_failed_start(tmp_path):
    """Any error while waiting for the gateway (here the wait itself is interrupted) stops it first."""
    from simulation.gateway.process import GatewayProcess

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    gw = GatewayProcess(["--synthetic", "--seed", "3", "--days", "3"], log_path=tmp_path / "gw.log", wait=interrupted)
    with pytest.raises(KeyboardInterrupt):
        gw.start()
    assert gw.proc.poll() is not None, "the gateway was left running"


@pytest.mark.parametrize("ahead", [False, True])
def test_a_public_answer_is_as_of_its_arrival_and_back_a_round_trip_later(ahead):
    """Handled on arrival (two timers) or built at receipt as of the arrival (`answer_ahead`: one timer,
    a stop fewer on the session clock), the client sees the same: the server's time half a round trip
    after it sent, the answer a full round trip after."""
    from conftest import SYNTH_ARGS
    from sim_helpers import InProcessGateway

    from simulation.execution import LatencyModel

    rtt = LatencyModel(mean_ms=400, std_ms=0, min_ms=0, max_ms=1000)
    with InProcessGateway([*SYNTH_ARGS, "--replay"], latency=rtt, answer_ahead=ahead) as gw:
        for _ in range(3):
            sent = time.time() * 1000
            server = get(gw, "/api/v3/time").json()["serverTime"]
            back = time.time() * 1000
            assert back - sent >= 400, "a full round trip"
            assert 195 <= server - sent <= 300, "the answer is as of its arrival, half a round trip after sending"
