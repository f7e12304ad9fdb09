"""Reference strategy for the main job v0: EMA trend filter + RSI pullback entries.

Deliberately simple and causal (every indicator uses past candles only); later issues replace it
with the FreqAI ensemble strategies. It exists so the gateway -> freqtrade path produces trades.
"""

from __future__ import annotations

import talib.abstract as ta
from freqtrade.strategy import IntParameter, IStrategy
from pandas import DataFrame


class ReferenceStrategy(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "5m"
    can_short = False
    minimal_roi = {"0": 0.03, "120": 0.015, "360": 0.0}
    stoploss = -0.04
    trailing_stop = True
    trailing_stop_positive = 0.01
    trailing_stop_positive_offset = 0.02
    trailing_only_offset_is_reached = True
    process_only_new_candles = True
    # live bots fetch 1000 candles; backtests warm up on this many — equal, so EMA200 matches live
    startup_candle_count = 1000

    rsi_entry = IntParameter(20, 45, default=35, space="buy")
    rsi_exit = IntParameter(55, 85, default=70, space="sell")

    plot_config = {
        "main_plot": {"ema_fast": {"color": "orange"}, "ema_slow": {"color": "blue"}},
        "subplots": {"RSI": {"rsi": {"color": "purple"}}},
    }

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["ema_fast"] = ta.EMA(dataframe, timeperiod=50)
        dataframe["ema_slow"] = ta.EMA(dataframe, timeperiod=200)
        dataframe["rsi"] = ta.RSI(dataframe, timeperiod=14)
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe.loc[
            (dataframe["ema_fast"] > dataframe["ema_slow"])
            & (dataframe["rsi"] < self.rsi_entry.value)
            & (dataframe["volume"] > 0),
            "enter_long",
        ] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe.loc[(dataframe["rsi"] > self.rsi_exit.value) & (dataframe["volume"] > 0), "exit_long"] = 1
        return dataframe
