"""Causal indicators not in TA-Lib: every value at row t uses rows <= t only."""

from __future__ import annotations

import numpy as np
import pandas as pd

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


def garch_vol(close: pd.Series, alpha: float = 0.05, beta: float = 0.9) -> pd.Series:
    """GARCH(1,1) one-step variance forecast with fixed persistence, long-run level from an
    expanding mean (causal; parameters fixed so no fit can peek ahead)."""
    r = log_returns(close).fillna(0.0).to_numpy()
    long_run = pd.Series(r * r).expanding().mean().to_numpy()
    out = np.empty(len(r))
    h = long_run[0] if len(r) else 0.0
    for t in range(len(r)):
        omega = (1 - alpha - beta) * long_run[t]
        h = omega + alpha * r[t] * r[t] + beta * h
        out[t] = h
    return pd.Series(np.sqrt(out), index=close.index)


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
    return df["close"] / df["high"].rolling(period).max() - 1, df["close"] / df["low"].rolling(period).min() - 1


def fibonacci_position(df: pd.DataFrame, period: int) -> tuple[pd.Series, pd.Series]:
    """Position of close in the trailing range (0 = low, 1 = high) and distance to the nearest
    fibonacci retracement level (0.236, 0.382, 0.5, 0.618, 0.786)."""
    hi, lo = df["high"].rolling(period).max(), df["low"].rolling(period).min()
    pos = (df["close"] - lo) / (hi - lo + _EPS)
    levels = np.array([0.236, 0.382, 0.5, 0.618, 0.786])
    dist = pd.Series(np.abs(pos.to_numpy()[:, None] - levels).min(axis=1), index=df.index)
    return pos, dist


def pivot_position(df: pd.DataFrame, period: int) -> pd.Series:
    """Close vs. the classic pivot (H+L+C)/3 of the previous completed `period`-candle block."""
    block = np.arange(len(df)) // period
    g = df.groupby(block)
    hi, lo, cl = g["high"].max(), g["low"].min(), g["close"].last()
    pivot = ((hi + lo + cl) / 3).shift(1)  # previous block only
    prev = pd.Series(pivot.reindex(block).to_numpy(), index=df.index)
    rng = pd.Series(((hi - lo).shift(1)).reindex(block).to_numpy(), index=df.index)
    return (df["close"] - prev) / (rng + _EPS)


def zscore(series: pd.Series, period: int) -> pd.Series:
    m = series.rolling(period).mean()
    s = series.rolling(period).std()
    return (series - m) / (s + _EPS)
