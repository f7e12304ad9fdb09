"""FreqAI feature hooks: call these from a strategy's feature_engineering_* methods.

With `indicator_periods_candles: [10, 20]`, `include_timeframes: [5m, 15m, 1h]` and two correlated
pairs (config/freqai.json), FreqAI expands these families to ~330 columns:
trend (EMA distance, ADX, MACD, Ichimoku), momentum (RSI, ROC, Stochastic, Williams %R, CCI, MFI),
volatility (ATR, realized vol, Bollinger, GARCH, vol cone), volume (volume z-score, VWAP
deviation, OBV slope), market structure (support/resistance, pivots, fibonacci, efficiency ratio)
and the HMM regime probabilities (on the 1h timeframe). Every column is causal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from freqaimodels.features import indicators as ind
from regime.columns import freqai_regime_features
from regime.features import utc_ms

TARGET = "&-target"
REGIME_TIMEFRAME = "1h"
# Base-timeframe rows after which every feature of a frame is independent of the frame's first row
# (the 500-candle volatility cone of a 20-candle volatility and margin; tests/test_feature_causality.py
# checks start independence after exactly this many rows).
BASE_FEATURE_WARMUP = 600


def expand_all(dataframe: pd.DataFrame, period: int) -> pd.DataFrame:
    """Features repeated for every period in indicator_periods_candles."""
    close = dataframe["close"]
    h, lo, c, v = _arrays(dataframe, "high", "low", "close", "volume")
    d: dict[str, pd.Series | np.ndarray] = {}
    # TA-Lib's function API on the column arrays: what talib.abstract computes from a frame, without
    # its per-call frame handling (a live bot calls these for every pair and timeframe each candle)
    d["%-rsi-period"] = talib.RSI(c, timeperiod=period)
    d["%-mfi-period"] = talib.MFI(h, lo, c, v, timeperiod=period)
    d["%-adx-period"] = talib.ADX(h, lo, c, timeperiod=period)
    d["%-cci-period"] = talib.CCI(h, lo, c, timeperiod=period)
    d["%-willr-period"] = talib.WILLR(h, lo, c, timeperiod=period)
    d["%-roc-period"] = talib.ROC(c, timeperiod=period)
    d["%-ema_dist-period"] = c / talib.EMA(c, timeperiod=period) - 1
    d["%-atr_rel-period"] = talib.ATR(h, lo, c, timeperiod=period) / c
    upper, mid, lower = talib.BBANDS(c, timeperiod=period, nbdevup=2.0, nbdevdn=2.0)
    d["%-bb_width-period"] = (upper - lower) / mid
    d["%-bb_pos-period"] = (c - lower) / (upper - lower + 1e-12)
    d["%-realized_vol-period"] = ind.realized_vol(close, period)
    d["%-vol_cone-period"] = ind.vol_cone_position(close, period)
    d["%-efficiency_ratio-period"] = ind.efficiency_ratio(close, period)
    d["%-volume_z-period"] = ind.zscore(dataframe["volume"], period)
    d["%-vwap_dev-period"] = ind.vwap_deviation(dataframe, period)
    d["%-obv_slope-period"] = ind.obv_slope(dataframe, period)
    d["%-resistance_dist-period"], d["%-support_dist-period"] = ind.support_resistance(dataframe, period)
    return _assign(dataframe, d)


def expand_basic(dataframe: pd.DataFrame, metadata: dict | None = None) -> pd.DataFrame:
    """Features computed once per timeframe / correlated pair (no period)."""
    close = dataframe["close"]
    d: dict[str, pd.Series] = {}
    d["%-pct_change"] = close.pct_change()
    d["%-log_volume_change"] = np.log1p(dataframe["volume"]).diff()
    d["%-body"] = (close - dataframe["open"]) / dataframe["open"]
    d["%-range"] = (dataframe["high"] - dataframe["low"]) / close
    h, lo, c = _arrays(dataframe, "high", "low", "close")
    macd, signal, hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    d["%-macd_hist"] = hist / c
    d["%-macd_signal_dist"] = (macd - signal) / c
    _slowk, slowd = talib.STOCH(h, lo, c)
    d["%-stoch_d"] = slowd
    d["%-sma_cross_5_20"] = talib.SMA(c, 5) / talib.SMA(c, 20) - 1
    d["%-sma_cross_20_50"] = talib.SMA(c, 20) / talib.SMA(c, 50) - 1
    hi9, lo9 = ind.trailing_high_low(dataframe, 9)
    hi26, lo26 = ind.trailing_high_low(dataframe, 26)
    tenkan, kijun = (hi9 + lo9) / 2, (hi26 + lo26) / 2
    d["%-ichimoku_tk"] = (tenkan - kijun) / close
    d["%-ichimoku_close_kijun"] = close / kijun - 1
    d["%-garch_vol"] = ind.garch_vol(close)
    d["%-fib_pos"], d["%-fib_dist"] = ind.fibonacci_position(dataframe, 100)
    d["%-pivot_pos"] = ind.pivot_position(dataframe, 96, (metadata or {}).get("tf"))
    d["%-efficiency_ratio_48"] = ind.efficiency_ratio(close, 48)
    if metadata and metadata.get("tf") == REGIME_TIMEFRAME:
        d.update(freqai_regime_features(dataframe, REGIME_TIMEFRAME))
    return _assign(dataframe, d)


def standard(dataframe: pd.DataFrame) -> pd.DataFrame:
    """Features on the base timeframe only (calendar)."""
    ms = utc_ms(dataframe["date"])
    day_of_week = (ms // 86_400_000 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    hour = (ms // 3_600_000) % 24
    return _assign(
        dataframe,
        {
            "%-day_of_week_sin": np.sin(2 * np.pi * day_of_week / 7),
            "%-hour_of_day_sin": np.sin(2 * np.pi * hour / 24),
            "%-hour_of_day_cos": np.cos(2 * np.pi * hour / 24),
        },
    )


TARGET_SCALES = ("return", "vol")


def set_targets(
    dataframe: pd.DataFrame, label_period: int, scale: str = "return", vol_window: int = 288
) -> pd.DataFrame:
    """Target: log return over the next `label_period` candles (a label may look ahead).

    `scale="vol"` divides it by the return's expected size, the trailing realized volatility (known at
    the candle, `vol_window` candles) x sqrt(label_period): same sign, so direction accuracy means the
    same, but a calm week and a crash week weigh alike in the squared-error fit.
    """
    if scale not in TARGET_SCALES:
        raise ValueError(f"target scale must be one of {list(TARGET_SCALES)}, got {scale!r}")
    close = dataframe["close"]
    target = np.log(close.shift(-label_period) / close)
    if scale == "vol":
        target = target / (ind.realized_vol(close, vol_window) * np.sqrt(label_period))
    return _assign(dataframe, {TARGET: target})


def _arrays(dataframe: pd.DataFrame, *columns: str) -> list[np.ndarray]:
    return [dataframe[col].to_numpy(np.float64) for col in columns]


def _assign(dataframe: pd.DataFrame, columns: dict[str, pd.Series]) -> pd.DataFrame:
    """Add all columns at once (no fragmentation); infinities become NaN for FreqAI to drop."""
    arrays = [_float_values(v, dataframe.index) for v in columns.values()]
    if all(a is not None for a in arrays) and arrays:
        values = np.column_stack(arrays)
        values[np.isinf(values)] = np.nan
        new = pd.DataFrame(values, index=dataframe.index, columns=list(columns))
    else:  # other dtypes or other indexes: pandas aligns and keeps each column's type
        new = pd.DataFrame({k: pd.Series(v, index=dataframe.index) for k, v in columns.items()})
        new = new.replace([np.inf, -np.inf], np.nan)
    overlap = [c for c in new.columns if c in dataframe.columns]
    return pd.concat([dataframe.drop(columns=overlap) if overlap else dataframe, new], axis=1)


def _float_values(v, index: pd.Index) -> np.ndarray | None:
    """A column's float64 values when it is already aligned to `index` (one array per column, no copy
    by pandas); None when pandas must align or convert it."""
    if isinstance(v, pd.Series):
        if v.dtype != np.float64 or not v.index.equals(index):
            return None
        return v.to_numpy()
    a = np.asarray(v)
    return a if a.dtype == np.float64 and a.shape == (len(index),) else None


def live_window_start(dates: pd.Series, timeframe: str, informative: list[str], rows: int) -> int:
    """The first row of the last `rows` (or more) of a frame that is aligned as
    `informative_aligned_start` wants: where a live bot's FreqAI input starts once its history has
    predictions. 0 when the frame is not longer than `rows`."""
    first = max(0, len(dates) - rows)
    return first + informative_aligned_start(dates.iloc[first:], timeframe, informative)


def informative_aligned_start(dates: pd.Series, timeframe: str, informative: list[str]) -> int:
    """Rows to drop from the front of a frame so that its first candle is the last base candle of a
    candle of every informative timeframe (15m base, 1h informative: a candle opening at :45).

    Why: freqtrade's `merge_informative_pair` fills the rows before the first informative value column
    by column when the first candle is not such a candle (O(columns^2) in pandas 3: 0.26 s per merge on
    400 columns, 4 ms aligned), and a live bot's frame rolls forward one candle per analysis, so most
    analyses paid it for every higher timeframe and correlated pair. The dropped rows are the oldest startup
    candles; the features are start-independent after the startup candles (tests/test_feature_causality.py).
    Returns 0 when none of the first (largest informative / base) rows is such a candle."""
    from freqtrade.exchange import timeframe_to_msecs

    base = timeframe_to_msecs(timeframe)
    steps = [timeframe_to_msecs(tf) for tf in informative if timeframe_to_msecs(tf) > base]
    if not steps or dates.empty:
        return 0
    epoch = pd.Timestamp(0, tz="UTC")
    ms = (
        (pd.to_datetime(dates.iloc[: max(steps) // base], utc=True) - epoch) // pd.Timedelta(milliseconds=1)
    ).to_numpy(np.int64)
    ok = np.all([(ms + base) % step == 0 for step in steps], axis=0)
    return int(np.argmax(ok)) if ok.any() else 0
