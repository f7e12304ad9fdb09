"""Candle store: resampling, Binance kline window semantics, replay without lookahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulation.clock import ReplayClock
from simulation.marketdata import CandleStore, DataSourceError, FeatherDirSource, SyntheticSource
from simulation.synthetic import SyntheticConfig, generate, write_market
from simulation.timeframes import DAY_MS

H = 3_600_000


@pytest.fixture(scope="module")
def store() -> CandleStore:
    return CandleStore(SyntheticSource(SyntheticConfig(seed=5, days=20, start="2024-01-01")))


def _frame(candles) -> pd.DataFrame:
    return pd.DataFrame([c.__dict__ for c in candles])


def test_resampled_interval_matches_pandas(store):
    five = store.source.load("ETH/USDT", "5m").set_index("date")
    ref = five.resample("1h").agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    got = _frame(store.candles("ETH/USDT", "1h", None, limit=1000))
    assert len(got) == len(ref)
    for col in ("open", "high", "low", "close"):
        assert np.array_equal(got[col].to_numpy(), ref[col].to_numpy()), col
    assert np.allclose(got["volume"], ref["volume"], rtol=1e-12)
    assert (got["close_time"] - got["open_time"] == H - 1).all()


def test_week_and_month_candles_follow_binance_calendar(store):
    weeks = store.candles("BTC/USDT", "1w", None)
    assert all(pd.Timestamp(c.open_time, unit="ms").day_of_week == 0 for c in weeks[1:]), "Mondays"
    months = store.candles("BTC/USDT", "1M", None)
    assert pd.Timestamp(months[0].open_time, unit="ms") == pd.Timestamp("2024-01-01")
    assert pd.Timestamp(months[0].close_time + 1, unit="ms") == pd.Timestamp("2024-02-01")


def test_kline_window_semantics(store):
    all_h = store.candles("BTC/USDT", "1h", None, limit=1000)
    t = [c.open_time for c in all_h]
    assert [c.open_time for c in store.candles("BTC/USDT", "1h", None, limit=5)] == t[-5:]
    got = store.candles("BTC/USDT", "1h", None, start=t[10], limit=3)
    assert [c.open_time for c in got] == t[10:13]
    got = store.candles("BTC/USDT", "1h", None, start=t[10] + 1, limit=3)
    assert [c.open_time for c in got] == t[11:14], "startTime mid-candle skips that candle"
    got = store.candles("BTC/USDT", "1h", None, end=t[20], limit=4)
    assert [c.open_time for c in got] == t[17:21]
    got = store.candles("BTC/USDT", "1h", None, start=t[5], end=t[8], limit=100)
    assert [c.open_time for c in got] == t[5:9]
    assert store.candles("BTC/USDT", "1h", None, start=t[-1] + H) == []


def test_replay_serves_no_candle_from_the_future(store):
    full = _frame(store.candles("BTC/USDT", "15m", None, limit=10**6)).set_index("open_time")
    start = store.data_start()
    for now in (start + 3 * DAY_MS, start + 3 * DAY_MS + 7 * 60_000, start + 5 * DAY_MS + 14 * 60_000 + 999):
        got = _frame(store.candles("BTC/USDT", "15m", now, limit=10**6))
        assert got["open_time"].iloc[-1] <= now < got["close_time"].iloc[-1] + 1, "last candle is forming"
        closed, forming = got.iloc[:-1], got.iloc[-1]
        ref = full.loc[closed["open_time"]]
        for col in ("open", "high", "low", "close", "volume"):
            assert np.array_equal(closed[col].to_numpy(), ref[col].to_numpy())
        true = full.loc[forming["open_time"]]
        assert forming["open"] == true["open"]
        assert true["low"] <= forming["low"] <= forming["close"] <= forming["high"] <= true["high"] or (
            true["low"] <= forming["low"] <= forming["high"] <= true["high"]
        )
        assert forming["volume"] <= true["volume"]


def test_replay_forming_candle_at_its_open_is_flat(store):
    c0 = store.candles("ADA/USDT", "5m", None, limit=1000)[100]
    got = store.candles("ADA/USDT", "5m", c0.open_time, limit=1)[0]
    assert (got.open, got.high, got.low, got.close, got.volume) == (c0.open, c0.open, c0.open, c0.open, 0.0)


def test_replay_clock_shifts_whole_days_and_runs_at_speed():
    start = int(pd.Timestamp("2024-03-10 00:00", tz="UTC").timestamp() * 1000)
    wall = int(pd.Timestamp("2026-11-26 10:30", tz="UTC").timestamp() * 1000)
    clock = ReplayClock(start, speed=60.0, wall_anchor_ms=wall)
    assert clock.shift_ms % DAY_MS == 0
    assert clock.to_data(wall) == start + (wall % DAY_MS)
    from simulation.clock import wall_ms

    anchor = wall_ms() - 1_000  # one wall second ago at x60 -> a minute of exchange time
    fast = ReplayClock(start, speed=60.0, wall_anchor_ms=anchor)
    assert 59_000 <= fast.now_ms() - anchor < 600_000
    with pytest.raises(ValueError):
        ReplayClock(start, speed=0)


def test_feather_source_rejects_nan_and_unsorted_candles(tmp_path):
    m = generate(SyntheticConfig(seed=1, days=2))
    write_market(m, tmp_path)
    df = m.candles["BTC/USDT"].copy()
    df.loc[10, "close"] = np.nan
    df.to_feather(tmp_path / "BTC_USDT-5m.feather")
    with pytest.raises(DataSourceError, match="NaN"):
        CandleStore(FeatherDirSource(tmp_path))
    df = m.candles["BTC/USDT"].iloc[::-1]
    df.reset_index(drop=True).to_feather(tmp_path / "BTC_USDT-5m.feather")
    with pytest.raises(DataSourceError, match="increasing"):
        CandleStore(FeatherDirSource(tmp_path))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("close", np.inf, "infinite values"),
        ("high", -np.inf, "infinite values"),
        ("open", 0.0, "prices <= 0"),
        ("low", -1.0, "prices <= 0"),
        ("high", "below_low", "high below low"),
        ("low", "above_close", "low above open or close"),
        ("volume", -5.0, "negative volume"),
    ],
)
def test_feather_source_rejects_impossible_candles(tmp_path, column, value, message):
    m = generate(SyntheticConfig(seed=1, days=2))
    write_market(m, tmp_path)
    df = m.candles["BTC/USDT"].copy()
    if value == "below_low":
        value = df.loc[10, "low"] * 0.99
    elif value == "above_close":
        value = (df.loc[10, "open"] + df.loc[10, "close"]) / 2 + abs(df.loc[10, "open"] - df.loc[10, "close"]) / 4
    df.loc[10, column] = value
    df.to_feather(tmp_path / "BTC_USDT-5m.feather")
    with pytest.raises(DataSourceError, match=message):
        CandleStore(FeatherDirSource(tmp_path))


def test_missing_datadir_and_unknown_pairs_are_clear_errors(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        FeatherDirSource(tmp_path / "nope")
    with pytest.raises(DataSourceError, match="no freqtrade spot feather files"):
        FeatherDirSource(tmp_path)
    write_market(generate(SyntheticConfig(seed=1, days=2)), tmp_path)
    with pytest.raises(DataSourceError, match="XRP/USDT"):
        FeatherDirSource(tmp_path, pairs=["BTC/USDT", "XRP/USDT"])


@pytest.fixture(scope="module")
def two_native(tmp_path_factory):
    """A datadir with native 5m and 1h files (the 1h one the 5m one's aggregate, as on Binance)."""
    d = tmp_path_factory.mktemp("native")
    five = CandleStore(SyntheticSource(SyntheticConfig(seed=11, days=4, start="2024-01-01"))).source.load(
        "BTC/USDT", "5m"
    )
    five = five[["date", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
    hour = (
        five.set_index("date")
        .resample("1h", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .reset_index()
    )
    five.to_feather(d / "BTC_USDT-5m.feather")
    hour.to_feather(d / "BTC_USDT-1h.feather")
    return CandleStore(FeatherDirSource(d))


def test_every_timeframe_forming_candle_is_cut_from_the_finest_series(two_native):
    """Issue 34 §1: mid-hour, the forming 1h candle followed its own path (a high the 5m series had not
    reached yet, a last price unlike the 5m candle's). Now it is the 5m candles so far, to the tick."""
    store = two_native
    tick = store.markets["BTC/USDT"].tick_size
    for k in range(40):
        t = store.data_start() + DAY_MS + k * 997_003  # minutes and seconds all over the hour
        hour = store.candles("BTC/USDT", "1h", t, limit=1)[-1]
        fives = store.candles("BTC/USDT", "5m", t, start=hour.open_time, limit=20)
        assert fives[-1].close_time >= t, "the last 5m candle is the forming one"
        assert hour.high == max(c.high for c in fives) and hour.low == min(c.low for c in fives), (k, hour, fives[-1])
        assert hour.close == fives[-1].close == store.last_candle("BTC/USDT", t).close
        assert hour.open == fives[0].open
        for price in (hour.high, hour.low, hour.close):
            assert abs(price / tick - round(price / tick)) < 1e-6, f"{price} is off the {tick} tick grid"


def test_before_the_first_candle_there_is_no_price(two_native):
    from simulation.marketdata.store import NoPriceYet

    before = two_native.data_start() - 1
    with pytest.raises(NoPriceYet):
        two_native.last_candle("BTC/USDT", before)
    with pytest.raises(NoPriceYet):
        two_native.window("BTC/USDT", before, DAY_MS)
    assert two_native.candles("BTC/USDT", "5m", before) == []


def test_the_api_lists_no_pair_before_its_first_candle(two_native):
    from sim_helpers import ManualClock

    from simulation.gateway.api import BinanceSpotAPI
    from simulation.marketdata.store import NoPriceYet

    api = BinanceSpotAPI(two_native, ManualClock(two_native.data_start() - 60_000))
    assert api.ticker_price({}) == [] and api.book_ticker({}) == []
    with pytest.raises(NoPriceYet):  # the server answers it as Binance's -1121 Invalid symbol.
        api.ticker_price({"symbol": "BTCUSDT"})
