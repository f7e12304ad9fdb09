"""Nothing the gateway or the venue answers at time t depends on data after t along the
intra-candle path (property tests over random instants, mid-candle included), and the random path
model's first leg says nothing about how the candle closes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import ManualClock

from simulation.gateway.api import BinanceSpotAPI
from simulation.marketdata import CandleStore, SyntheticSource
from simulation.marketdata.path import PathModel
from simulation.marketdata.sources import DataSource
from simulation.synthetic import SyntheticConfig
from simulation.timeframes import interval_ms
from simulation.venue.engine import Venue

PAIR, SYMBOL = "BTC/USDT", "BTCUSDT"
FIVE_MIN = interval_ms("5m")


class EditedSource(DataSource):
    """Another source's candles, cut after `cut` (open time) and with `edit` applied per frame."""

    def __init__(self, base: DataSource, cut: int | None = None, edit=None) -> None:
        self.base, self.cut, self.edit = base, cut, edit

    def pairs(self) -> list[str]:
        return self.base.pairs()

    def timeframes(self, pair: str) -> list[str]:
        return self.base.timeframes(pair)

    def load(self, pair: str, timeframe: str) -> pd.DataFrame:
        df = self.base.load(pair, timeframe).copy()
        if self.cut is not None:
            df = df[df["date"].astype("datetime64[ms, UTC]").astype("int64") <= self.cut].reset_index(drop=True)
        return self.edit(df) if self.edit else df

    def market(self, pair: str):
        return self.base.market(pair)

    def liquidity(self):
        return self.base.liquidity()


@pytest.fixture(scope="module")
def base() -> DataSource:
    return SyntheticSource(SyntheticConfig(seed=11, days=4, start="2024-02-01"))


def answers(store: CandleStore, t: int) -> dict:
    """Every public endpoint's answer at t, and the venue's market-impact inputs."""
    clock = ManualClock(t)
    api = BinanceSpotAPI(store, clock)
    out = {
        "klines_5m": api.klines({"symbol": SYMBOL, "interval": "5m", "limit": "50"}),
        "klines_1h": api.klines({"symbol": SYMBOL, "interval": "1h", "limit": "30"}),
        "ticker_24hr": api.ticker_24hr({"symbol": SYMBOL}),
        "ticker_price": api.ticker_price({"symbol": SYMBOL}),
        "book_ticker": api.book_ticker({"symbol": SYMBOL}),
        "depth": api.depth({"symbol": SYMBOL, "limit": "20"}),
    }
    venue = Venue(store, clock, lambda symbol, limit: api.book(symbol, limit))
    out["venue_daily"] = venue._daily(PAIR)
    out["venue_avg_price"] = venue._avg_price(PAIR)  # PERCENT_PRICE_BY_SIDE
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(candle=st.integers(min_value=400, max_value=900), frac=st.floats(min_value=0.0, max_value=0.999))
def test_answers_equal_those_of_a_store_cut_at_t(base, candle, frac):
    """Future candles removed: every answer at t is the same."""
    start = int(base.load(PAIR, "5m")["date"].astype("datetime64[ms, UTC]").astype("int64").iloc[0])
    t = start + candle * FIVE_MIN + int(frac * FIVE_MIN)
    full = CandleStore(base)
    cut = CandleStore(EditedSource(base, cut=t))
    assert answers(full, t) == answers(cut, t)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(candle=st.integers(min_value=400, max_value=900), frac=st.floats(min_value=0.0, max_value=0.32))
def test_the_unformed_rest_of_the_candle_changes_nothing(base, candle, frac):
    """On the backtest path the first third of a rising candle runs open -> low: its high and close
    are not yet visible, so raising both (the candle still rises) must not change any answer."""
    dates = base.load(PAIR, "5m")["date"].astype("datetime64[ms, UTC]").astype("int64")
    frame = base.load(PAIR, "5m")
    rising = np.flatnonzero((frame["close"] > frame["open"]).to_numpy())
    i = int(rising[np.searchsorted(rising, candle) % len(rising)])
    t = int(dates.iloc[i]) + int(frac * FIVE_MIN)

    def lift(df: pd.DataFrame) -> pd.DataFrame:
        at = df["date"].astype("datetime64[ms, UTC]").astype("int64") == int(dates.iloc[i])
        df.loc[at, "high"] = df.loc[at, "high"] * 1.05
        df.loc[at, "close"] = df.loc[at, "high"] * 0.999
        return df

    path = PathModel("backtest")
    same = answers(CandleStore(EditedSource(base, cut=t), path), t)
    lifted = answers(CandleStore(EditedSource(base, cut=t, edit=lift), path), t)
    assert same == lifted


class PinnedPath(PathModel):
    """The default random path, with one candle's path fixed as it was drawn from its original OHLC:
    what the stated bound allows to depend on the candle's final values is the path, nothing else."""

    def __init__(self, base: PathModel, open_time: int, points) -> None:
        object.__setattr__(self, "kind", base.kind)
        object.__setattr__(self, "seed", base.seed)
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_pinned", (open_time, points))

    def points(self, bar, pair, open_time):
        return self._pinned[1] if open_time == self._pinned[0] else self._base.points(bar, pair, open_time)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    candle=st.integers(min_value=400, max_value=900),
    frac=st.floats(min_value=0.0, max_value=0.999),
    up=st.floats(min_value=1.001, max_value=1.1),
    down=st.floats(min_value=0.9, max_value=0.999),
    close=st.floats(min_value=0.0, max_value=1.0),
)
def test_under_the_default_path_only_the_path_knows_the_forming_candles_end(base, candle, frac, up, down, close):
    """Issue 34 §1: the stated bound. Within the finest candle the price follows a path model pinned to
    that candle's final OHLC (as freqtrade's backtest assumes its order of extremes); nothing else may
    read the forming candle's later high, low or close. With the candle's path fixed as drawn, a
    higher high, a lower low and another close (the unseen part) change no answer at t."""
    frame = base.load(PAIR, "5m")
    dates = frame["date"].astype("datetime64[ms, UTC]").astype("int64")
    open_ms = int(dates.iloc[candle])
    t = open_ms + int(frac * FIVE_MIN)
    default = PathModel("random", seed=3)
    bar = tuple(float(frame[c].iloc[candle]) for c in ("open", "high", "low", "close"))
    pinned = PinnedPath(default, open_ms, default.points(bar, PAIR, open_ms))

    def unseen(df: pd.DataFrame) -> pd.DataFrame:
        at = df["date"].astype("datetime64[ms, UTC]").astype("int64") == open_ms
        hi, lo = df.loc[at, "high"] * up, df.loc[at, "low"] * down
        df.loc[at, "high"], df.loc[at, "low"] = hi, lo
        df.loc[at, "close"] = lo + (hi - lo) * close
        return df

    same = answers(CandleStore(EditedSource(base, cut=t), pinned), t)
    moved = answers(CandleStore(EditedSource(base, cut=t, edit=unseen), pinned), t)
    assert same == moved


def _candles(n: int, seed: int) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        o = 100.0
        c = o * float(np.exp(rng.normal(0, 0.01)))
        out.append((o, max(o, c) * (1 + abs(rng.normal(0, 0.005))), min(o, c) * (1 - abs(rng.normal(0, 0.005))), c))
    return out


def test_random_path_first_leg_carries_no_information_about_the_close():
    bars = _candles(4000, seed=3)
    close_up = np.array([c > o for o, _, _, c in bars], dtype=float)
    for model, expect_corr in ((PathModel("random", seed=7), None), (PathModel("backtest"), -1.0)):
        first_up = np.array([model.first_leg_up(b, PAIR, k * FIVE_MIN) for k, b in enumerate(bars)], dtype=float)
        rho = float(np.corrcoef(first_up, close_up)[0, 1])
        if expect_corr is None:
            assert abs(rho) < 3 / np.sqrt(len(bars)), (
                f"random path: corr {rho:.3f} (3 standard errors: {3 / np.sqrt(len(bars)):.3f})"
            )
        else:
            assert rho == pytest.approx(expect_corr), "the backtest convention reveals the close on purpose"


def test_paths_visit_the_candle_exactly_and_are_seeded():
    model = PathModel("random", seed=1)
    for k, bar in enumerate(_candles(300, seed=4)):
        fr, px = model.points(bar, PAIR, k * FIVE_MIN)
        o, h, low, c = bar
        assert px[0] == o and px[-1] == c and np.isclose(px.max(), h) and np.isclose(px.min(), low)
        assert np.all(np.diff(fr) > 0) and fr[0] == 0.0 and fr[-1] == 1.0
    bar = _candles(1, seed=5)[0]
    assert np.array_equal(model.points(bar, PAIR, 0)[1], PathModel("random", seed=1).points(bar, PAIR, 0)[1])
    differs = [
        not np.array_equal(model.points(b, PAIR, k)[1], PathModel("random", seed=2).points(b, PAIR, k)[1])
        for k, b in enumerate(_candles(20, seed=6))
    ]
    assert all(differs)
    with pytest.raises(ValueError, match="path model must be one of"):
        PathModel("linear")
    with pytest.raises(ValueError, match="seed"):
        PathModel("random", seed=-1)


def test_simulated_bot_polls_at_its_wall_clock_rate():
    """On the constant clock libfaketime scales sleeps: the overlay stretches the emergency watcher's
    interval by the speed, so at x500 it still polls every 50 ms of wall time (not 10,000 times a
    second). On the compute clock every poll is a deadline the clock stops at: once a bot loop."""
    from cryptobot_ops.risk import RiskLimits
    from simulation.run.bot_config import bot_overlay
    from simulation.run.spec import RunSpec

    def interval(**kw) -> float:
        spec = RunSpec(
            strategy="S",
            config="config/simulation.json",
            mode="dry-run",
            start_ms=0,
            end_ms=3_600_000,
            pairs=["BTC/USDT"],
            timeframe="5m",
            out="/tmp/x",
            **kw,
        )
        return bot_overlay(spec, "http://127.0.0.1:1", 8080, "/tmp/x.sqlite")["risk"]["watch_interval_s"]

    assert interval(speed=500.0, clock="constant") / 500 == pytest.approx(RiskLimits().watch_interval_s)
    assert RiskLimits.from_config(
        {"risk": {"watch_interval_s": interval(speed=500.0, clock="constant")}}
    ).watch_interval_s == pytest.approx(25.0)
    assert interval(speed=1.0, clock="compute") == pytest.approx(5.0)


class SteppingClock(ManualClock):
    """Moves forward by `step` ms every time it is read: a request that reads the clock twice sees two
    instants, as it may on a loaded machine (or at x300)."""

    def __init__(self, t: int, step: int) -> None:
        super().__init__(t)
        self.step = step

    def data_now(self) -> int | None:
        now, self.t = self.t, self.t + self.step
        return now


def test_a_candle_closing_during_a_request_is_never_served_partial_afterwards(base):
    """The klines answer decides 'forming' and formats candles at one instant: a candle still forming
    when the request started is not cached as closed with its partial values."""
    start = int(base.load(PAIR, "5m")["date"].astype("datetime64[ms, UTC]").astype("int64").iloc[0])
    close_at = start + 500 * FIVE_MIN
    store = CandleStore(base)
    api = BinanceSpotAPI(store, SteppingClock(close_at - 1, step=2))  # forming at the first read, closed at the next
    api.klines({"symbol": SYMBOL, "interval": "5m", "limit": "3"})
    later = BinanceSpotAPI(store, ManualClock(close_at + FIVE_MIN))
    api.clock = ManualClock(close_at + FIVE_MIN)
    closed = {r[0]: r for r in later.klines({"symbol": SYMBOL, "interval": "5m", "limit": "5"})}
    again = {r[0]: r for r in api.klines({"symbol": SYMBOL, "interval": "5m", "limit": "5"})}
    assert again == closed, "the candle that closed during the first request is served with its final values"
