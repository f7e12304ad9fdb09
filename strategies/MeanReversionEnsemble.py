"""Mean reversion on 5m: buy a stretch below the 20-candle mean (z-score < -1.5) when the ensemble
predicts the bounce with confidence >= 0.65; favours the sideways regime (trending_bull allowed too,
with a deeper stretch). 1.5% of equity per trade, at most 5 positions (config/mean-reversion.json)."""

from __future__ import annotations

from ensemble_base import EnsembleRiskStrategy, atr_parameter, confidence_parameter
from freqtrade.strategy import DecimalParameter
from pandas import DataFrame, Series


class MeanReversionEnsemble(EnsembleRiskStrategy):
    timeframe = "5m"
    min_confidence = confidence_parameter(0.65)
    stake_fraction = 0.015
    allowed_regimes = ("sideways", "trending_bull")
    minimal_roi = {"0": 0.02, "60": 0.01, "240": 0.0}
    atr_multiplier = atr_parameter(2.0)
    zscore_sideways = DecimalParameter(-3.0, -0.5, decimals=1, default=-1.5, space="buy")  # stretch an entry needs
    zscore_bull = DecimalParameter(-4.0, -1.0, decimals=1, default=-2.5, space="buy")

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe = super().populate_indicators(dataframe, metadata)
        mean = dataframe["close"].rolling(20).mean()
        std = dataframe["close"].rolling(20).std()
        dataframe["zscore"] = (dataframe["close"] - mean) / std
        return dataframe

    def entry_filter(self, dataframe: DataFrame) -> Series:
        by_regime = {"sideways": self.zscore_sideways.value, "trending_bull": self.zscore_bull.value}
        threshold = dataframe["regime_1h"].map(by_regime).astype(float)
        return dataframe["zscore"] < threshold

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe = super().populate_exit_trend(dataframe, metadata)
        dataframe.loc[dataframe["zscore"] > 0.5, ["exit_long", "exit_tag"]] = (1, "reverted")
        return dataframe
