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
import talib.abstract as ta

from freqaimodels.features import indicators as ind
from regime.columns import freqai_regime_features

TARGET = "&-target"
REGIME_TIMEFRAME = "1h"


def expand_all(dataframe: pd.DataFrame, period: int) -> pd.DataFrame:
    """Features repeated for every period in indicator_periods_candles."""
    close = dataframe["close"]
    d: dict[str, pd.Series] = {}
    d["%-rsi-period"] = ta.RSI(dataframe, timeperiod=period)
    d["%-mfi-period"] = ta.MFI(dataframe, timeperiod=period)
    d["%-adx-period"] = ta.ADX(dataframe, timeperiod=period)
    d["%-cci-period"] = ta.CCI(dataframe, timeperiod=period)
    d["%-willr-period"] = ta.WILLR(dataframe, timeperiod=period)
    d["%-roc-period"] = ta.ROC(dataframe, timeperiod=period)
    d["%-ema_dist-period"] = close / ta.EMA(dataframe, timeperiod=period) - 1
    d["%-atr_rel-period"] = ta.ATR(dataframe, timeperiod=period) / close
    upper, mid, lower = ta.BBANDS(close, timeperiod=period, nbdevup=2.0, nbdevdn=2.0)
    d["%-bb_width-period"] = (upper - lower) / mid
    d["%-bb_pos-period"] = (close - lower) / (upper - lower + 1e-12)
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
    macd, signal, hist = ta.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    d["%-macd_hist"] = hist / close
    d["%-macd_signal_dist"] = (macd - signal) / close
    _slowk, slowd = ta.STOCH(dataframe["high"], dataframe["low"], close)
    d["%-stoch_d"] = slowd
    d["%-sma_cross_5_20"] = ta.SMA(close, 5) / ta.SMA(close, 20) - 1
    d["%-sma_cross_20_50"] = ta.SMA(close, 20) / ta.SMA(close, 50) - 1
    tenkan = (dataframe["high"].rolling(9).max() + dataframe["low"].rolling(9).min()) / 2
    kijun = (dataframe["high"].rolling(26).max() + dataframe["low"].rolling(26).min()) / 2
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
    dates = pd.to_datetime(dataframe["date"])
    return _assign(
        dataframe,
        {
            "%-day_of_week_sin": np.sin(2 * np.pi * dates.dt.day_of_week / 7),
            "%-hour_of_day_sin": np.sin(2 * np.pi * dates.dt.hour / 24),
            "%-hour_of_day_cos": np.cos(2 * np.pi * dates.dt.hour / 24),
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


def _assign(dataframe: pd.DataFrame, columns: dict[str, pd.Series]) -> pd.DataFrame:
    """Add all columns at once (no fragmentation); infinities become NaN for FreqAI to drop."""
    new = pd.DataFrame({k: pd.Series(v, index=dataframe.index) for k, v in columns.items()})
    new = new.replace([np.inf, -np.inf], np.nan)
    keep = dataframe.drop(columns=[c for c in new.columns if c in dataframe.columns])
    return pd.concat([keep, new], axis=1)


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
