"""Minimal FreqAI strategy around the stacked ensemble: long when the predicted 1h return is
positive enough and the ensemble is confident. The shared feature hooks come from `features`.

Run: freqtrade backtesting --config config/freqai.json --strategy EnsembleSignalStrategy
"""

from __future__ import annotations

import time

from ensemble_base import FreqAIFeatureHooks
from freqtrade.strategy import DecimalParameter, IStrategy
from pandas import DataFrame

from cryptobot_ops.monitoring import monitor_for
from freqaimodels.estimators.freqai_adapter import CONFIDENCE


class EnsembleSignalStrategy(FreqAIFeatureHooks, IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "5m"
    can_short = False
    process_only_new_candles = True
    startup_candle_count = 600  # longest feature window: the 500-candle volatility cone
    minimal_roi = {"0": 0.02, "60": 0.01, "240": 0.0}
    stoploss = -0.03
    min_confidence = DecimalParameter(0.5, 0.9, default=0.55, space="buy")
    entry_return = DecimalParameter(0.0, 0.005, default=0.0005, space="buy")

    plot_config = {
        "main_plot": {},
        "subplots": {
            "prediction": {"&-target": {"color": "blue"}},
            "confidence": {CONFIDENCE: {"color": "green"}},
            "do_predict": {"do_predict": {"color": "brown"}},
        },
    }

    def bot_start(self, **kwargs) -> None:
        monitor_for(self)  # dry-run/live: the predictions store (and metrics when monitoring.metrics_port is set)

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        t0 = time.perf_counter()
        dataframe = self.start_freqai(dataframe, metadata)
        if (mon := monitor_for(self)) is not None:
            mon.on_analysis(dataframe, metadata["pair"], time.perf_counter() - t0)
        return dataframe

    def _confidence(self, dataframe: DataFrame):
        return dataframe.get(CONFIDENCE, 1.0)

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe.loc[
            (dataframe["do_predict"] == 1)
            & (dataframe["&-target"] > self.entry_return.value)
            & (self._confidence(dataframe) >= self.min_confidence.value)
            & (dataframe["volume"] > 0),
            "enter_long",
        ] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe.loc[(dataframe["do_predict"] == 1) & (dataframe["&-target"] < 0), "exit_long"] = 1
        return dataframe
