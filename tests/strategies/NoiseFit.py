"""A strategy that knows nothing: it enters on candles a hash of (time, pair, `noise_seed`) picks and
leaves an hour later. Whatever seed hyperopt finds best in-sample is luck the next window does not
repeat: the bench's walk-forward optimization must show a large in-sample vs out-of-sample gap."""

from __future__ import annotations

import zlib
from datetime import timedelta

import numpy as np
import pandas as pd
from freqtrade.strategy import IntParameter, IStrategy
from pandas import DataFrame

EPOCH = pd.Timestamp(0, tz="UTC")


def _uniform(keys: np.ndarray) -> np.ndarray:
    """SplitMix64 of each key, as a number in [0, 1)."""
    z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class NoiseFit(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "5m"
    can_short = False
    minimal_roi = {"0": 10.0}
    stoploss = -0.5
    process_only_new_candles = True
    startup_candle_count = 0

    noise_seed = IntParameter(0, 10_000, default=0, space="buy")

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        minutes = ((dataframe["date"] - EPOCH) // pd.Timedelta(minutes=1)).to_numpy()  # any datetime unit
        key = minutes * 1_000_003 + zlib.crc32(metadata["pair"].encode()) * 10_007 + int(self.noise_seed.value)
        dataframe.loc[_uniform(np.abs(key)) < 0.02, "enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        return dataframe

    def custom_exit(self, pair, trade, current_time, current_rate, current_profit, **kwargs):
        return "an hour" if current_time - trade.open_date_utc >= timedelta(hours=1) else None
