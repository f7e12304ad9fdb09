"""Causal indicators not in TA-Lib: every value at row t uses rows <= t only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from regime.features import utc_ms

_EPS = 1e-12


def log_returns(close: pd.Series) -> pd.Series:
    return np.log(close).diff()


def realized_vol(close: pd.Series, period: int) -> pd.Series:
    return log_returns(close).rolling(period).std()


def efficiency_ratio(close: pd.Series, period: int) -> pd.Series:
    """Kaufman: |net move| / path length, 0 (noise) .. 1 (straight line)."""
    net = (close - close.shift(period)).abs()
    path = close.diff().abs().rolling(period).sum()
    return net / (path + _EPS)


def vol_cone_position(close: pd.Series, period: int, history: int = 500) -> pd.Series:
    """Where today's realized vol sits within its own trailing distribution (0..1)."""
    rv = realized_vol(close, period)
    return rv.rolling(history, min_periods=period * 2).rank(pct=True)


def garch_vol(
    close: pd.Series, alpha: float = 0.05, beta: float = 0.9, long_run: int = 200, memory: int = 100
) -> pd.Series:
    """GARCH(1,1) one-step variance forecast with fixed persistence (no fit that could peek ahead).

    The recursion h_t = w_t + a r_t^2 + b h_{t-1} is written as its sum over the last `memory`
    candles (b^100 ~ 3e-5), and the long-run level w_t / (1 - a - b) is the mean r^2 of the last
    `long_run` candles: so the value at t depends on a fixed window ending at t, the same in a
    backtest, a live bot's training frame and its prediction frame, wherever the frame starts
    (an expanding mean or a recursion seeded at the first row would not). NaN for the first
    `long_run + memory` candles.
    """
    r2 = log_returns(close).pow(2)
    innovation = (1 - alpha - beta) * r2.rolling(long_run).mean() + alpha * r2
    kernel = beta ** np.arange(memory)
    h = np.convolve(innovation.fillna(0.0).to_numpy(), kernel)[: len(close)]
    complete = innovation.notna().astype(int).rolling(memory).sum().to_numpy() == memory
    return pd.Series(np.where(complete, np.sqrt(h), np.nan), index=close.index)


def vwap_deviation(df: pd.DataFrame, period: int) -> pd.Series:
    typical = (df["high"] + df["low"] + df["close"]) / 3
    vwap = (typical * df["volume"]).rolling(period).sum() / (df["volume"].rolling(period).sum() + _EPS)
    return df["close"] / vwap - 1


def obv_slope(df: pd.DataFrame, period: int) -> pd.Series:
    """Change of on-balance volume over `period`, in units of average volume."""
    direction = np.sign(df["close"].diff()).fillna(0)
    obv = (direction * df["volume"]).cumsum()
    return (obv - obv.shift(period)) / (df["volume"].rolling(period).mean() * period + _EPS)


def support_resistance(df: pd.DataFrame, period: int) -> tuple[pd.Series, pd.Series]:
    """Distance of close to the trailing high (resistance) and low (support), as fractions."""
    close = df["close"].to_numpy(np.float64)
    hi, lo = trailing_high_low(df, period)
    return pd.Series(close / hi - 1, index=df.index), pd.Series(close / lo - 1, index=df.index)


def trailing_high_low(df: pd.DataFrame, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling max of highs and min of lows over `period` rows (NaN before a full window), by TA-Lib:
    a max or min is exact in any implementation, and TA-Lib skips pandas' per-call overhead."""
    high, low = df["high"].to_numpy(np.float64), df["low"].to_numpy(np.float64)
    if len(high) < period or np.isnan(high).any() or np.isnan(low).any():  # pandas' NaN rules
        return df["high"].rolling(period).max().to_numpy(), df["low"].rolling(period).min().to_numpy()
    return talib.MAX(high, period), talib.MIN(low, period)


def fibonacci_position(df: pd.DataFrame, period: int) -> tuple[pd.Series, pd.Series]:
    """Position of close in the trailing range (0 = low, 1 = high) and distance to the nearest
    fibonacci retracement level (0.236, 0.382, 0.5, 0.618, 0.786)."""
    hi, lo = trailing_high_low(df, period)
    pos = (df["close"].to_numpy(np.float64) - lo) / (hi - lo + _EPS)
    levels = np.array([0.236, 0.382, 0.5, 0.618, 0.786])
    dist = np.abs(pos[:, None] - levels).min(axis=1)
    return pd.Series(pos, index=df.index), pd.Series(dist, index=df.index)


def pivot_position(df: pd.DataFrame, period: int, timeframe: str | None = None) -> pd.Series:
    """Close vs. the classic pivot (H+L+C)/3 of the previous completed `period`-candle block, in units
    of that block's range.

    Blocks are anchored to the epoch (like a daily pivot to midnight), not to the frame's first row,
    and a block counts only when it holds all its candles: the value at t is the same whatever the
    frame's start. The candle length is the timeframe's, or the smallest step between dates.
    """
    ts = utc_ms(df["date"])
    if timeframe:
        from freqtrade.exchange import timeframe_to_msecs

        step = timeframe_to_msecs(timeframe)
    else:
        diffs = np.diff(ts)
        diffs = diffs[diffs > 0]
        if not len(diffs):
            return pd.Series(np.nan, index=df.index)
        step = int(diffs.min())
    block = ts // (step * period)
    high, low, close = (df[c].to_numpy(np.float64) for c in ("high", "low", "close"))
    if len(block) and (
        np.any(np.diff(block) < 0) or np.isnan(high).any() or np.isnan(low).any() or np.isnan(close).any()
    ):
        return _pivot_position_grouped(df, block, period)
    # the blocks of a time-ordered, complete frame are runs: reduce each run (max, min, last close, size)
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]]) if len(block) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(block)]
    runs = block[starts]
    complete = (ends - starts) == period  # a block cut by the frame's start (or a data gap) has no pivot
    hi = np.maximum.reduceat(high, starts) if len(starts) else np.array([])
    lo = np.minimum.reduceat(low, starts) if len(starts) else np.array([])
    cl = close[ends - 1]
    at = np.searchsorted(runs, block - 1)
    found = at < len(runs)
    found[found] &= (runs[at[found]] == block[found] - 1) & complete[at[found]]
    pivot = np.full(len(block), np.nan)
    width = np.full(len(block), np.nan)
    k = at[found]
    pivot[found] = (hi[k] + lo[k] + cl[k]) / 3
    width[found] = hi[k] - lo[k]
    return pd.Series((close - pivot) / (width + _EPS), index=df.index)


def _pivot_position_grouped(df: pd.DataFrame, block: np.ndarray, period: int) -> pd.Series:
    """pivot_position by groupby, for frames out of time order or with missing prices."""
    g = df.groupby(block)
    stats = pd.DataFrame({"hi": g["high"].max(), "lo": g["low"].min(), "cl": g["close"].last(), "n": g["close"].size()})
    stats = stats[stats["n"] == period]
    prev = stats.reindex(block - 1)
    pivot = ((prev["hi"] + prev["lo"] + prev["cl"]) / 3).to_numpy()
    rng = (prev["hi"] - prev["lo"]).to_numpy()
    return (df["close"] - pivot) / (rng + _EPS)


def zscore(series: pd.Series, period: int) -> pd.Series:
    m = series.rolling(period).mean()
    s = series.rolling(period).std()
    return (series - m) / (s + _EPS)
