"""Stablecoin discount scout on 1m: buys a stablecoin (USDC/USDT, FDUSD/USDT) trading at a discount to
its rolling fair value and sells when it re-converges (config/arbitrage-scout.json).

What kind of arbitrage this is: statistical convergence trading on one venue, long only. The fair
value is the rolling median of the pair's own price over `fair_window` candles (a day: the peg, not
the last wiggle); an entry needs a discount of at least `entry_bps` (above the round-trip fee) and
the FreqAI model (the spec's neural network, an LSTM in the stacked ensemble) predicting the
rebound with confidence >= `min_confidence`. It is not cross-exchange or triangular arbitrage, holds
inventory while it waits, and is not risk-free: a stablecoin that never re-pegs loses up to the stop.
The market gate uses BTC's 1h regime: no entries while the market is in `high_volatility`, when
depegs are least likely to revert. 0.5% of equity per trade, at most 10 positions.
Every number is overridable in the config's `arbitrage` section.
"""

from __future__ import annotations

from ensemble_base import EnsembleRiskStrategy
from freqtrade.strategy import informative
from pandas import DataFrame, Series

from freqaimodels import features
from regime.columns import add_regime_columns, unknown_regime_columns


class ArbitrageScout(EnsembleRiskStrategy):
    timeframe = "1m"
    # plain numbers in place of the base's freqtrade parameters: the `arbitrage` section sets them
    min_confidence = 0.90
    entry_return = 0.0005
    stake_fraction = 0.005
    allowed_regimes = ("trending_bull", "trending_bear", "sideways")
    minimal_roi = {"0": 0.03, "1440": 0.0}
    stoploss = -0.03
    atr_multiplier = 3.0
    stop_bounds = (0.01, 0.03)
    fair_window = 1440  # candles in the rolling fair value
    entry_bps = 50.0  # discount to fair value an entry needs (round trip costs 20 bps at 0.1% fees)
    exit_bps = 5.0  # exit once the discount is back within this

    def bot_start(self, **kwargs) -> None:
        for key, value in self.config.get("arbitrage", {}).items():
            if not hasattr(type(self), key):
                raise ValueError(f"unknown 'arbitrage' setting {key!r}")
            setattr(self, key, type(getattr(type(self), key))(value))
        super().bot_start(**kwargs)

    # The market regime is BTC's, not the stablecoin's own (a peg has no trend to classify).
    @informative("1h", "BTC/{stake}", fmt="{column}_{timeframe}")
    def populate_indicators_1h(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        if getattr(self, "emergency_active", False):
            return unknown_regime_columns(dataframe)
        return add_regime_columns(dataframe, "1h")

    def fair_value_deviation_bps(self, dataframe: DataFrame) -> Series:
        fair = dataframe["close"].rolling(self.fair_window, min_periods=self.fair_window).median()
        return (dataframe["close"] / fair - 1.0) * 1e4

    def feature_engineering_standard(self, dataframe: DataFrame, metadata: dict, **kwargs) -> DataFrame:
        dataframe = features.standard(dataframe)
        dataframe["%-fair_dev_bps"] = self.fair_value_deviation_bps(dataframe)
        return dataframe

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe = super().populate_indicators(dataframe, metadata)
        dataframe["fair_dev_bps"] = self.fair_value_deviation_bps(dataframe)
        return dataframe

    def entry_filter(self, dataframe: DataFrame) -> Series:
        return dataframe["fair_dev_bps"] <= -self.entry_bps

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe.loc[dataframe["fair_dev_bps"] >= -self.exit_bps, ["exit_long", "exit_tag"]] = (1, "converged")
        return dataframe
