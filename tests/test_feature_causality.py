"""Every FreqAI feature (`%-` column) is causal, tested directly.

freqtrade's lookahead-analysis and recursive-analysis never see `%-` features (FreqAI keeps them out
of the strategy's dataframe), so this is the only check they get. Two properties per column:
- truncation: its value at t from a frame cut at t equals the full frame's value at t;
- start independence: once a frame holds the strategies' startup candles, the value does not depend on
  where the frame starts (a backtest, a live bot's training frame and its prediction frame start at
  different candles and must agree).
An expanding mean from the first row, a recursion seeded there, or blocks counted from the first row
break the second property; both the GARCH volatility and the pivot position once did.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from freqaimodels import features
from simulation.paths import REPO_ROOT

RTOL, ATOL = 1e-7, 1e-10


def startup_candles(filename: str) -> int:
    """A strategy's `startup_candle_count`, read from its source (strategies load through freqtrade)."""
    text = (REPO_ROOT / "strategies" / filename).read_text()
    return int(re.search(r"^\s+startup_candle_count = (\d+)", text, re.MULTILINE).group(1))


def ohlcv(n: int, freq: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.standard_t(4, n) * 0.003))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    # an odd first minute: the frame's first row is not on any block boundary
    dates = pd.date_range("2024-01-01 00:35", periods=n, freq=freq, tz="UTC")
    return pd.DataFrame(
        {"date": dates, "open": open_, "high": high, "low": low, "close": close, "volume": rng.lognormal(5, 1, n)}
    )


def all_features(df: pd.DataFrame, tf: str) -> pd.DataFrame:
    """The columns FreqAI builds from the shared hooks for one timeframe (two periods, basic, calendar)."""
    cols: dict[str, pd.Series] = {}
    for period in (10, 20):
        expanded = features.expand_all(df.copy(), period).filter(like="%-")
        cols.update({f"{c}_{period}": expanded[c] for c in expanded})
    cols.update(features.expand_basic(df.copy(), {"tf": tf}).filter(like="%-"))
    cols.update(features.standard(df.copy()).filter(like="%-"))
    return pd.DataFrame(cols, index=df.index)


def _mismatch(a: pd.Series, b: pd.Series) -> float | None:
    x, y = a.to_numpy(float), b.to_numpy(float)
    if np.array_equal(np.isnan(x), np.isnan(y)) and np.allclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True):
        return None
    return float(np.nanmax(np.abs(x - y))) if not np.isnan(x - y).all() else float("nan")


def check(df: pd.DataFrame, tf: str, cuts: tuple[int, ...], start: int, warmup: int) -> tuple[dict, dict]:
    full = all_features(df, tf)
    late = df.iloc[start:].reset_index(drop=True)
    shifted = all_features(late, tf)
    shifted.index += start
    rows = slice(start + warmup, None)
    start_dependent = {c: d for c in full if (d := _mismatch(full[c].loc[rows], shifted[c].loc[rows])) is not None}
    lookahead = {}
    for t in cuts:
        cut = all_features(df.iloc[: t + 1], tf)
        for c in full:
            if (d := _mismatch(full[c].iloc[[t]], cut[c].iloc[[t]])) is not None:
                lookahead[(t, c)] = d
    assert len(full.columns) > 50  # the whole family is there
    return start_dependent, lookahead


def test_base_timeframe_features_are_causal_and_start_independent():
    # the live window (features.BASE_FEATURE_WARMUP) and the shortest startup among the FreqAI strategies
    warmup = features.BASE_FEATURE_WARMUP
    assert startup_candles("EnsembleSignalStrategy.py") >= warmup
    df = ohlcv(3000, "5min", seed=11)
    start_dependent, lookahead = check(df, "5m", cuts=(900, 1777, 2999), start=533, warmup=warmup)
    assert not lookahead
    assert not start_dependent, f"values depend on the frame's first row: {start_dependent}"


def test_hourly_features_with_regime_probabilities_are_causal_and_start_independent():
    """The 1h family adds the HMM regime probabilities (fitted at absolute time boundaries)."""
    warmup = startup_candles("ensemble_base.py")  # the strategies that read the 1h regime
    df = ohlcv(3300, "1h", seed=12)
    start_dependent, lookahead = check(df, "1h", cuts=(2400, 3299), start=301, warmup=warmup)
    assert not lookahead
    assert not start_dependent, f"values depend on the frame's first row: {start_dependent}"
    assert (all_features(df, "1h")["%-regime_p_sideways"].iloc[-500:] != 0.25).any()  # fitted, not the placeholder


def test_pivot_blocks_follow_the_clock_and_skip_incomplete_blocks():
    from freqaimodels.features.indicators import pivot_position

    df = ohlcv(400, "15min", seed=3)
    pos = pivot_position(df, 96, "15m")  # 96 x 15m: one UTC day
    day = df["date"].dt.floor("D")
    first_full = day.iloc[0] + pd.Timedelta(days=1)
    assert pos[day <= first_full].isna().all()  # day 1 is cut by the frame's start; day 2 has no complete prior day
    later = pos[day > first_full]
    assert later.notna().all() and len(later) > 100
    prev = df[day == first_full]
    pivot = (prev["high"].max() + prev["low"].min() + prev["close"].iloc[-1]) / 3
    row = later.index[0]
    assert later.iloc[0] == pytest.approx((df.loc[row, "close"] - pivot) / (prev["high"].max() - prev["low"].min()))
    gap = df.drop(index=range(200, 205))  # a data gap: that day has no pivot for the next, and nothing crashes
    assert pivot_position(gap, 96).notna().sum() < pos.notna().sum()


def test_the_har_volatility_forecast_and_the_stake_multiplier_read_only_the_past():
    """Truncated vs full: the HAR-RV forecast and the sizing multiplier at candle t, computed on the closes up
    to t, equal the full series' values at t (the regression at t sees only outcomes ended by t)."""
    from cryptobot_ops.volatility import har_forecast, sizing_multiplier

    close = _clustered_closes(11)
    h, per_day = 16, 96
    full = har_forecast(close, h, per_day, window=7 * per_day)
    mult = sizing_multiplier(full, 7 * per_day)
    assert full.notna().sum() > 1000 and ((mult >= 0.25) & (mult <= 1.0)).all()
    for t in (1500, 2200, 2999):
        cut = har_forecast(close[: t + 1], h, per_day, window=7 * per_day)
        assert cut.iloc[-1] == pytest.approx(full.iloc[t], rel=1e-9)
        assert sizing_multiplier(cut, 7 * per_day).iloc[-1] == pytest.approx(mult.iloc[t], rel=1e-9)
    # it forecasts: the realized log variance of the next h candles correlates with the forecast. The
    # clustered-volatility generator was revised on seed 11 (its first form barely clustered), so its skill
    # is judged on seeds it was never run on before: 101-103.
    from cryptobot_ops.volatility import forward_rv

    for seed in (101, 102, 103):
        close = _clustered_closes(seed)
        forecast = har_forecast(close, h, per_day, window=7 * per_day)
        realized = np.log(forward_rv(close, h) + 1e-12)
        ok = forecast.notna() & realized.notna()
        assert np.corrcoef(forecast[ok], realized[ok])[0, 1] > 0.2, seed


def _clustered_closes(seed: int, n: int = 3000) -> pd.Series:
    """Closes with clustered volatility: a persistent AR(1) log volatility (stationary sd 1)."""
    rng = np.random.default_rng(seed)
    log_vol = np.zeros(n)
    for i in range(1, n):
        log_vol[i] = 0.995 * log_vol[i - 1] + 0.1 * rng.normal()
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 1, n) * np.exp(log_vol) * 0.005)))
