"""Where the price is inside a candle: the OHLC path convention that backtesters assume.

Why: a replayed market needs a price at every instant (tickers, books, the venue's limit-order
matching), and it must agree with what `freqtrade backtesting` assumes a candle did. We use the
usual convention: a rising candle goes open -> low -> high -> close, a falling one open -> high ->
low -> close, piecewise linear over equal thirds of the candle. The forming candle then reveals its
high and low progressively, and a limit order fills in replay exactly when the backtest says the
candle's range reached it.
"""

from __future__ import annotations

import numpy as np


def path_points(o: float, h: float, low: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(fractions of the candle, prices) of the path's vertices."""
    mid = (low, h) if c >= o else (h, low)
    return np.array([0.0, 1 / 3, 2 / 3, 1.0]), np.array([o, mid[0], mid[1], c])


def price_at(o: float, h: float, low: float, c: float, frac: float) -> float:
    fr, px = path_points(o, h, low, c)
    return float(np.interp(min(1.0, max(0.0, frac)), fr, px))


def range_between(o: float, h: float, low: float, c: float, f0: float, f1: float) -> tuple[float, float]:
    """(lowest, highest) price the path visits between candle fractions f0 <= f1."""
    fr, px = path_points(o, h, low, c)
    f0, f1 = min(1.0, max(0.0, f0)), min(1.0, max(0.0, f1))
    inside = px[(fr > f0) & (fr < f1)]
    ends = np.array([np.interp(f0, fr, px), np.interp(f1, fr, px)])
    seen = np.concatenate([ends, inside])
    return float(seen.min()), float(seen.max())
