"""Candles of any Binance interval, as of any moment, from the source's native timeframes.

Why a store: the gateway must answer `klines` for every interval freqtrade may ask (resampled from
a finer native timeframe), and in replay mode it must answer as of a moving "now", including the
still-forming last candle that Binance always returns (freqtrade drops it as incomplete).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from simulation.marketdata.path import PathModel
from simulation.marketdata.sources import DataSource
from simulation.markets import MarketSpec, on_tick
from simulation.timeframes import bucket_start, divides, interval_ms, next_bucket_start


@dataclass(frozen=True)
class CandleSeries:
    """Column arrays of one pair at one interval; open_time in epoch milliseconds (data time)."""

    interval: str
    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def from_frame(cls, interval: str, df: pd.DataFrame) -> CandleSeries:
        ts = df["date"].astype("datetime64[ms, UTC]").astype("int64").to_numpy()
        return cls(
            interval,
            ts,
            *(df[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")),
        )

    def __len__(self) -> int:
        return len(self.open_time)

    @cached_property
    def close_time(self) -> np.ndarray:
        return next_bucket_start(self.open_time, self.interval) - 1

    @cached_property
    def quote_volume(self) -> np.ndarray:
        # Binance's quote volume is the sum of price*qty over trades; typical price approximates it.
        return self.volume * (self.high + self.low + self.close) / 3.0

    @property
    def start(self) -> int:
        return int(self.open_time[0])

    @property
    def end(self) -> int:
        """Close time of the last candle."""
        return int(self.close_time[-1])

    def resample(self, interval: str) -> CandleSeries:
        """Aggregate to a coarser interval; the trailing bucket may be partial (as on an exchange)."""
        buckets = bucket_start(self.open_time, interval)
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        return CandleSeries(
            interval,
            buckets[starts],
            self.open[starts],
            np.maximum.reduceat(self.high, starts),
            np.minimum.reduceat(self.low, starts),
            self.close[np.r_[starts[1:] - 1, len(self) - 1]],
            np.round(np.add.reduceat(self.volume, starts), 8),
        )


@dataclass(frozen=True)
class Candle:
    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    close_time: int

    @property
    def quote_volume(self) -> float:
        return self.volume * (self.high + self.low + self.close) / 3.0


class NoPriceYet(LookupError):
    """Data time is before the pair's first candle: no price exists yet (the gateway says the symbol
    is not trading rather than serve the first candle's open, a future price)."""


class CandleStore:
    """Serves each pair at any interval that a native timeframe divides, as of a data-time cutoff."""

    def __init__(self, source: DataSource, path: PathModel | None = None) -> None:
        self.source = source
        self.path = path or PathModel()
        self._native: dict[str, dict[str, CandleSeries]] = {}
        for pair in source.pairs():
            self._native[pair] = {
                tf: CandleSeries.from_frame(tf, source.load(pair, tf)) for tf in source.timeframes(pair)
            }
        self._derived: dict[tuple[str, str], tuple[CandleSeries, CandleSeries]] = {}
        self.markets: dict[str, MarketSpec] = {p: source.market(p) for p in self._native}
        self.liquidity = _liquidity_arrays(source.liquidity())

    def pairs(self) -> list[str]:
        return list(self._native)

    def native_timeframes(self, pair: str) -> list[str]:
        return sorted(self._native[pair], key=interval_ms)

    def supports(self, pair: str, interval: str) -> bool:
        return any(divides(tf, interval) for tf in self._native[pair])

    def data_start(self) -> int:
        return min(s.start for nat in self._native.values() for s in nat.values())

    def data_end(self) -> int:
        return max(s.end for nat in self._native.values() for s in nat.values())

    def _source_for(self, pair: str, interval: str) -> CandleSeries:
        native = self._native[pair]
        if interval in native:
            return native[interval]
        usable = [s for tf, s in native.items() if divides(tf, interval)]
        if not usable:
            raise KeyError(interval)
        # Most history first, then the finest timeframe.
        return min(usable, key=lambda s: (s.start, interval_ms(s.interval)))

    def series(self, pair: str, interval: str) -> tuple[CandleSeries, CandleSeries]:
        """(series at interval, the native series it was built from)."""
        key = (pair, interval)
        if key not in self._derived:
            src = self._source_for(pair, interval)
            self._derived[key] = (src if src.interval == interval else src.resample(interval), src)
        return self._derived[key]

    def price_series(self, pair: str, data_now: int | None = None) -> CandleSeries:
        """The finest native series that has data at data_now (for tickers and books)."""
        natives = sorted(self._native[pair].values(), key=lambda s: interval_ms(s.interval))
        if data_now is not None:
            for s in natives:
                if s.start <= data_now:
                    return s
        return natives[0]

    def candles(
        self,
        pair: str,
        interval: str,
        data_now: int | None,
        start: int | None = None,
        end: int | None = None,
        limit: int = 500,
    ) -> list[Candle]:
        """Binance klines semantics over open times, in data time. data_now None: all data."""
        series, src = self.series(pair, interval)
        ot = series.open_time
        hi = len(ot) if data_now is None else int(np.searchsorted(ot, data_now, side="right"))
        if end is not None:
            hi = min(hi, int(np.searchsorted(ot, end, side="right")))
        lo = 0 if start is None else int(np.searchsorted(ot, start, side="left"))
        if lo >= hi:
            return []
        if start is not None:
            hi = min(hi, lo + limit)
        else:
            lo = max(lo, hi - limit)
        out = [
            Candle(
                int(ot[i]),
                float(series.open[i]),
                float(series.high[i]),
                float(series.low[i]),
                float(series.close[i]),
                float(series.volume[i]),
                int(series.close_time[i]),
            )
            for i in range(lo, hi)
        ]
        if data_now is not None and out and out[-1].close_time >= data_now:
            out[-1] = self._forming(pair, self._finest_for(pair, interval, out[-1].open_time, src), out[-1], data_now)
        return out

    def _finest_for(self, pair: str, interval: str, open_time: int, fallback: CandleSeries) -> CandleSeries:
        """The finest native series that divides `interval` and covers the candle opened at `open_time`:
        every timeframe's forming candle is cut from it, so a 1h candle mid-hour shows what the 5m
        candles so far show, never a point further along its own path."""
        for s in sorted(self._native[pair].values(), key=lambda s: interval_ms(s.interval)):
            if divides(s.interval, interval) and s.start <= open_time:
                return s
        return fallback

    def _forming(self, pair: str, src: CandleSeries, candle: Candle, data_now: int) -> Candle:
        """The candle as it looked at data_now: closed source candles plus the forming one."""
        ot = src.open_time
        lo = int(np.searchsorted(ot, candle.open_time, side="left"))
        hi = int(np.searchsorted(ot, data_now, side="right"))  # source candles opened so far
        if hi <= lo:
            return candle
        o = float(src.open[lo])
        h = float(src.high[lo : hi - 1].max()) if hi - 1 > lo else o
        low = float(src.low[lo : hi - 1].min()) if hi - 1 > lo else o
        vol = float(src.volume[lo : hi - 1].sum())
        # The last source candle is still forming: it follows the OHLC path (see path.py).
        last = hi - 1
        frac = self._fraction(src, last, data_now)
        bar = (float(src.open[last]), float(src.high[last]), float(src.low[last]), float(src.close[last]))
        price = self.path.price_at(bar, pair, int(src.open_time[last]), frac)
        seen_low, seen_high = self.path.range_between(bar, pair, int(src.open_time[last]), 0.0, frac)
        h, low = max(h, seen_high), min(low, seen_low)
        vol += float(src.volume[last]) * frac
        tick = self.markets[pair].tick_size if pair in self.markets else 0.0
        # the path's points printed where the exchange prints them (order kept: low <= price <= high)
        return Candle(
            candle.open_time, o, on_tick(h, tick), on_tick(low, tick), on_tick(price, tick), vol, candle.close_time
        )

    @staticmethod
    def _fraction(src: CandleSeries, i: int, t: int) -> float:
        length = int(src.close_time[i] - src.open_time[i] + 1)
        return min(1.0, max(0.0, (t - int(src.open_time[i])) / length))

    def traded_range(self, pair: str, t0: int, t1: int) -> tuple[float, float, float]:
        """(low, high, volume) the market traded between data times t0 < t1 (venue matching)."""
        src = self.price_series(pair, t1)
        ot = src.open_time
        first = max(0, int(np.searchsorted(ot, t0, side="right")) - 1)
        last = max(0, int(np.searchsorted(ot, t1, side="right")) - 1)
        lows, highs, vol = [], [], 0.0
        for i in range(first, last + 1):
            f0, f1 = self._fraction(src, i, t0), self._fraction(src, i, t1)
            if f1 <= f0:
                continue
            bar = (float(src.open[i]), float(src.high[i]), float(src.low[i]), float(src.close[i]))
            lo, hi = self.path.range_between(bar, pair, int(src.open_time[i]), f0, f1)
            lows.append(lo)
            highs.append(hi)
            vol += float(src.volume[i]) * (f1 - f0)
        if not lows:
            px = self.last_candle(pair, t1).close
            return px, px, 0.0
        return min(lows), max(highs), vol

    def first_reach(self, pair: str, t0: int, t1: int, level: float, below: bool) -> int | None:
        """The first data time in [t0, t1) at which the path is at `level` or beyond (at or under when
        `below`); None when it does not get there before t1. Rounded up to the millisecond, so that
        `traded_range(t0, t)` at the answer already shows the level. The venue's matcher uses it to sleep
        through stretches where no resting order can fill instead of polling them."""
        src = self.price_series(pair, t1)
        if src is not self.price_series(pair, t0):  # a finer series starts on the way: no shortcut
            return t0
        ot = src.open_time
        i = max(0, int(np.searchsorted(ot, t0, side="right")) - 1)
        t = t0
        while t < t1 and i < len(src):
            start, length = int(ot[i]), int(src.close_time[i] - ot[i] + 1)
            if t < start:  # a gap in the data: the path resumes at the next candle
                t = start
                continue
            bar = (float(src.open[i]), float(src.high[i]), float(src.low[i]), float(src.close[i]))
            f = self.path.first_reach(bar, pair, start, (t - start) / length, level, below)
            if f is not None:
                hit = max(t, start + math.ceil(f * length))
                return hit if hit < t1 else None
            t, i = start + length, i + 1
        return None

    def last_candle(self, pair: str, data_now: int | None) -> Candle:
        """Most recent (possibly forming) candle of the finest native series."""
        s = self.price_series(pair, data_now)
        got = self.candles(pair, s.interval, data_now, limit=1)
        if not got:  # before the first candle there is no price (its open would be a future one)
            raise NoPriceYet(f"{pair} has no candle at data time {data_now} (its history starts at {s.start})")
        return got[0]

    def window(self, pair: str, data_now: int | None, span_ms: int) -> CandleSeries:
        """Native candles within span_ms before data_now (rolling stats): the closed ones, and the
        forming one only as far as it has formed (never its final high, low, close or volume)."""
        s = self.price_series(pair, data_now)
        now = int(s.end) if data_now is None else data_now
        hi = int(np.searchsorted(s.open_time, now, side="right"))
        lo = int(np.searchsorted(s.open_time, now - span_ms, side="right"))
        lo = min(lo, max(hi - 1, 0))
        sl = slice(lo, max(hi, lo + 1))
        cols = [s.open_time[sl], s.open[sl], s.high[sl], s.low[sl], s.close[sl], s.volume[sl]]
        last = sl.stop - 1
        if data_now is not None and hi == 0:  # before the first candle: no price yet
            raise NoPriceYet(f"{pair} has no candle at data time {data_now} (its history starts at {s.start})")
        if data_now is not None and int(s.close_time[last]) >= data_now:
            cols = [c.copy() for c in cols]
            seen = self._forming(
                pair, s, Candle(int(s.open_time[last]), 0, 0, 0, 0, 0, int(s.close_time[last])), data_now
            )
            for col, value in zip(cols[1:], (seen.open, seen.high, seen.low, seen.close, seen.volume), strict=True):
                col[-1] = value
        return CandleSeries(s.interval, *cols)

    def liquidity_at(self, data_now: int | None) -> tuple[float, float]:
        """(depth_factor, spread_factor) of a stress scenario at data_now; (1, 1) when calm."""
        if self.liquidity is None:
            return 1.0, 1.0
        ts, depth, spread = self.liquidity
        if data_now is None:
            i = len(ts) - 1
        else:
            i = int(np.searchsorted(ts, data_now, side="right")) - 1
        if i < 0:
            return 1.0, 1.0
        return float(depth[i]), float(spread[i])


def _liquidity_arrays(df: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if df is None or df.empty:
        return None
    ts = pd.to_datetime(df["date"], utc=True).astype("datetime64[ms, UTC]").astype("int64").to_numpy()
    return ts, df["depth_factor"].to_numpy(float), df["spread_factor"].to_numpy(float)
