"""The detector's four observations per candle, causal by construction.

volatility     log of the rolling std of log-returns (short window)
volume_ratio   log of recent mean volume over the mean volume of a long (30-day) baseline
trend_strength Kaufman efficiency ratio: |net move| / path length over the trend window
momentum       log-return over the momentum window over its expected noise at the long-run
               (volume_slow window) volatility: a t-stat that does not shrink when volatility spikes

Two implementations that agree to float precision: `observations` (vectorised, whole frame) and
`OnlineObservations` (running sums, O(1) per candle, for live updates).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd


def utc_ms(dates: pd.Series) -> np.ndarray:
    """Epoch milliseconds of candle dates; a datetime column is converted directly (pd.to_datetime
    inspects its values first, several times per candle otherwise)."""
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        d = dates.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(dates.dtype):
        d = dates.dt.tz_localize("UTC")
    else:
        d = pd.to_datetime(dates, utc=True)
    return d.astype("datetime64[ms, UTC]").astype("int64").to_numpy()


FEATURES: tuple[str, ...] = ("volatility", "volume_ratio", "trend_strength", "momentum")
_EPS = 1e-12


@dataclass(frozen=True)
class FeatureWindows:
    vol: int = 24
    volume_fast: int = 12
    volume_slow: int = 8640  # 30 days of 5m: a baseline that spans many regimes
    trend: int = 48
    momentum: int = 144

    @classmethod
    def for_timeframe(cls, timeframe: str) -> FeatureWindows:
        """Defaults are in 5m candles; keep the same time spans on other timeframes (with floors)."""
        from freqtrade.exchange import timeframe_to_msecs as interval_ms

        scale = 300_000 / interval_ms(timeframe)
        base = cls()
        floors = {"vol": 12, "volume_fast": 6, "volume_slow": 500, "trend": 12, "momentum": 24}
        return cls(**{k: max(floors[k], round(getattr(base, k) * scale)) for k in floors})

    @property
    def warmup(self) -> int:
        """Candles before the first complete observation."""
        return max(self.vol + 1, self.volume_slow + 1, self.trend + 1, self.momentum + 1)


def check_ohlcv(df: pd.DataFrame, min_rows: int = 1) -> None:
    """Clear errors for input the detector cannot use."""
    missing = [c for c in ("close", "volume") if c not in df.columns]
    if missing:
        raise ValueError(f"regime detector needs columns {missing}")
    for col in ("close", "volume"):
        bad = df[col].isna() | ~np.isfinite(df[col].to_numpy(dtype=float))
        if bad.any():
            where = df["date"].iloc[int(np.argmax(bad.to_numpy()))] if "date" in df else int(np.argmax(bad.to_numpy()))
            raise ValueError(f"regime detector got {int(bad.sum())} NaN/inf values in '{col}', first at {where}")
    if (df["close"] <= 0).any():
        raise ValueError("regime detector needs positive close prices")
    if len(df) < min_rows:
        raise ValueError(f"regime detector needs at least {min_rows} candles, got {len(df)}")


def observations(df: pd.DataFrame, windows: FeatureWindows | None = None) -> pd.DataFrame:
    """Observation rows for every candle; NaN during warm-up. Uses only past and current candles."""
    w = windows or FeatureWindows()
    check_ohlcv(df)
    logp = np.log(df["close"].to_numpy(dtype=float))
    ret = pd.Series(np.diff(logp, prepend=np.nan))
    vol = ret.rolling(w.vol).std(ddof=0)
    volume = pd.Series(df["volume"].to_numpy(dtype=float))
    vfast = volume.rolling(w.volume_fast).mean()
    vslow = volume.rolling(w.volume_slow).mean()
    lp = pd.Series(logp)
    path = ret.abs().rolling(w.trend).sum()
    net = (lp - lp.shift(w.trend)).abs()
    long_vol = ret.rolling(w.volume_slow).std(ddof=0)
    mom = (lp - lp.shift(w.momentum)) / (long_vol * math.sqrt(w.momentum) + _EPS)
    out = pd.DataFrame(
        {
            "volatility": np.log(vol + _EPS),
            "volume_ratio": np.log((vfast + _EPS) / (vslow + _EPS)),
            "trend_strength": net / (path + _EPS),
            "momentum": mom,
        }
    )
    out.index = df.index
    out.iloc[: w.warmup - 1] = np.nan
    return out


class OnlineObservations:
    """Same observations, one candle at a time with running sums (live use)."""

    def __init__(self, windows: FeatureWindows | None = None) -> None:
        self.w = windows or FeatureWindows()
        w = self.w
        self._logp: deque[float] = deque(maxlen=max(w.trend, w.momentum) + 1)
        self._ret: deque[float] = deque(maxlen=max(w.vol, w.trend, w.volume_slow))
        self._vol_fast: deque[float] = deque(maxlen=w.volume_fast)
        self._vol_slow: deque[float] = deque(maxlen=w.volume_slow)
        self._n = 0
        self._s1 = self._s2 = 0.0  # sum, sum of squares of the last w.vol returns
        self._l1 = self._l2 = 0.0  # the same over the last w.volume_slow returns
        self._abs = 0.0  # sum |r| over the last w.trend returns
        self._vf = self._vs = 0.0

    def push(self, close: float, volume: float) -> np.ndarray | None:
        """Add a closed candle; returns its observation once warm, else None."""
        if not (math.isfinite(close) and close > 0 and math.isfinite(volume)):
            raise ValueError(f"bad candle close={close} volume={volume}")
        w = self.w
        lp = math.log(close)
        if self._logp:
            r = lp - self._logp[-1]
            rets = self._ret
            if len(rets) >= w.vol:
                old = rets[-w.vol]
                self._s1 -= old
                self._s2 -= old * old
            if len(rets) >= w.trend:
                self._abs -= abs(rets[-w.trend])
            if len(rets) >= w.volume_slow:
                old = rets[-w.volume_slow]
                self._l1 -= old
                self._l2 -= old * old
            rets.append(r)
            self._s1 += r
            self._s2 += r * r
            self._l1 += r
            self._l2 += r * r
            self._abs += abs(r)
        self._logp.append(lp)
        if len(self._vol_fast) == w.volume_fast:
            self._vf -= self._vol_fast[0]
        if len(self._vol_slow) == w.volume_slow:
            self._vs -= self._vol_slow[0]
        self._vol_fast.append(volume)
        self._vol_slow.append(volume)
        self._vf += volume
        self._vs += volume
        self._n += 1
        if self._n < w.warmup:
            return None
        mean = self._s1 / w.vol
        vol = math.sqrt(max(self._s2 / w.vol - mean * mean, 0.0))
        logp = self._logp
        net = abs(lp - logp[-1 - w.trend])
        lmean = self._l1 / w.volume_slow
        long_vol = math.sqrt(max(self._l2 / w.volume_slow - lmean * lmean, 0.0))
        mom = (lp - logp[-1 - w.momentum]) / (long_vol * math.sqrt(w.momentum) + _EPS)
        vf = self._vf / w.volume_fast
        vs = self._vs / w.volume_slow
        return np.array([math.log(vol + _EPS), math.log((vf + _EPS) / (vs + _EPS)), net / (self._abs + _EPS), mom])
