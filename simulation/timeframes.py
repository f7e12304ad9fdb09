"""Binance interval names and candle-boundary arithmetic shared by the data store and gateway."""

from __future__ import annotations

import numpy as np
import pandas as pd

MINUTE_MS = 60_000
DAY_MS = 86_400_000
# Monday 1970-01-05: Binance weekly candles open on Mondays.
WEEK_ORIGIN_MS = 4 * DAY_MS

# Every interval Binance spot serves; "1M" (calendar month) is handled separately.
INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
    "1M": 31 * DAY_MS,  # upper bound only; boundaries come from the calendar
}


def is_valid_interval(interval: str) -> bool:
    return interval in INTERVAL_MS


def interval_ms(interval: str) -> int:
    """Nominal length of an interval in milliseconds (months: 31 days, an upper bound)."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(f"unknown interval {interval!r}") from None


def bucket_start(ts_ms: np.ndarray | int, interval: str) -> np.ndarray:
    """Open time of the candle of `interval` that contains each timestamp."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    if interval == "1M":
        months = ts.astype("datetime64[ms]").astype("datetime64[M]")
        return months.astype("datetime64[ms]").astype(np.int64)
    step = INTERVAL_MS[interval]
    origin = WEEK_ORIGIN_MS if interval == "1w" else 0
    return ts - (ts - origin) % step


def next_bucket_start(open_ms: np.ndarray | int, interval: str) -> np.ndarray:
    """Open time of the following candle (close time is this minus one millisecond)."""
    ts = np.asarray(open_ms, dtype=np.int64)
    if interval == "1M":
        months = ts.astype("datetime64[ms]").astype("datetime64[M]") + 1
        return months.astype("datetime64[ms]").astype(np.int64)
    return ts + INTERVAL_MS[interval]


def divides(fine: str, coarse: str) -> bool:
    """True when candles of `coarse` are unions of whole candles of `fine`."""
    if fine == coarse:
        return True
    f = INTERVAL_MS[fine]
    if coarse == "1M":
        return DAY_MS % f == 0
    c = INTERVAL_MS[coarse]
    if coarse == "1w":
        return DAY_MS % f == 0 or (c % f == 0 and (WEEK_ORIGIN_MS % f == 0))
    return c > f and c % f == 0


def timerange_bounds(text: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Both ends of a freqtrade `--timerange` (`YYYYMMDD[THHMM]-YYYYMMDD[THHMM]`), read by freqtrade's
    own `TimeRange` so our commands accept exactly what freqtrade does; open ends are refused."""
    from freqtrade.configuration import TimeRange

    tr = TimeRange.parse_timerange(text)
    if not tr.startts or not tr.stopts:
        raise ValueError(f"timerange {text!r} needs both a start and an end")
    return pd.Timestamp(tr.startts, unit="s", tz="UTC"), pd.Timestamp(tr.stopts, unit="s", tz="UTC")


def timerange_text(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """The freqtrade `--timerange` for [start, end): whole days as YYYYMMDD, else YYYYMMDDTHHMM."""

    def one(t: pd.Timestamp) -> str:
        return f"{t:%Y%m%d}" if t == t.normalize() else f"{t:%Y%m%dT%H%M}"

    return f"{one(start)}-{one(end)}"
