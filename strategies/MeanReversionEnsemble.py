"""Mean reversion on 5m: buy a stretch below the 20-candle mean (z-score < -1.5) when the ensemble
predicts the bounce with confidence >= 0.65; favours the sideways regime (trending_bull allowed too,
with a deeper stretch). 1.5% of equity per trade, at most 5 positions (config/mean-reversion.json)."""

from __future__ import annotations

from ensemble_base import EnsembleRiskStrategy
from pandas import DataFrame, Series


class MeanReversionEnsemble(EnsembleRiskStrategy):
    timeframe = "5m"
    min_confidence = 0.65
    stake_fraction = 0.015
    allowed_regimes = ("sideways", "trending_bull")
    minimal_roi = {"0": 0.02, "60": 0.01, "240": 0.0}
    atr_multiplier = 2.0
    zscore_entry = {"sideways": -1.5, "trending_bull": -2.5}

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe = super().populate_indicators(dataframe, metadata)
        mean = dataframe["close"].rolling(20).mean()
        std = dataframe["close"].rolling(20).std()
        dataframe["zscore"] = (dataframe["close"] - mean) / std
        return dataframe

    def entry_filter(self, dataframe: DataFrame) -> Series:
        threshold = dataframe["regime_1h"].map(self.zscore_entry).astype(float)
        return dataframe["zscore"] < threshold

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe = super().populate_exit_trend(dataframe, metadata)
        dataframe.loc[dataframe["zscore"] > 0.5, ["exit_long", "exit_tag"]] = (1, "reverted")
        return dataframe
