"""ReferenceStrategy with HMM regime gating: how strategies consume the regime detector.

The regime comes from the 1h informative timeframe (live bots cannot hold the 5m history the
detector's 30-day windows need) and is merged so that only closed 1h candles are used. Entries are
taken only in `trending_bull` / `sideways`, with a regime-specific RSI threshold. The gate uses the
hourly label (held for its minimum dwell); `regime_now*` columns carry the same detector updated every
candle (`regime.intrahour`) for display and for strategies that want the faster, noisier signal.
"""

from __future__ import annotations

from freqtrade.strategy import IntParameter, informative
from pandas import DataFrame
from ReferenceStrategy import ReferenceStrategy

from cryptobot_ops.monitoring import monitor_for
from regime.columns import (
    add_intrahour_regime_columns,
    add_regime_columns,
    regime_allows,
    regime_plot,
    unknown_regime_columns,
)


class RegimeGatedReference(ReferenceStrategy):
    # The 1h regime needs ~1,400 closed 1h candles (30-day volume baseline, then a first
    # training window) before its first value; live bots fetch that many at startup.
    startup_candle_count = 1800
    allowed_regimes = ("trending_bull", "sideways")
    rsi_bull = IntParameter(25, 50, default=40, space="buy")  # the RSI pullback an entry needs, by regime
    rsi_sideways = IntParameter(20, 45, default=30, space="buy")
    rsi_entry = IntParameter(20, 45, default=35, space="buy", optimize=False)  # ReferenceStrategy's: unused here

    plot_config = {
        "main_plot": {"ema_fast": {"color": "orange"}, "ema_slow": {"color": "blue"}},
        "subplots": {
            "RSI": {"rsi": {"color": "purple"}},
            "Regime": regime_plot("_1h"),
        },
    }

    @informative("1h")
    def populate_indicators_1h(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        if getattr(self, "emergency_active", False):  # RiskControlled subclasses: exit first, analyse later
            return unknown_regime_columns(dataframe)
        return add_regime_columns(dataframe, "1h")

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe = super().populate_indicators(dataframe, metadata)
        if getattr(self, "emergency_active", False) or self.dp is None:
            return unknown_regime_columns(dataframe, "regime_now")
        hourly = self.dp.get_pair_dataframe(metadata["pair"], "1h")
        dataframe = add_intrahour_regime_columns(dataframe, self.timeframe, hourly)
        if (mon := monitor_for(self)) is not None:  # dry-run/live: regime metric and change alerts
            mon.on_analysis(dataframe, metadata["pair"], None)
        return dataframe

    def bot_start(self, **kwargs) -> None:
        monitor_for(self)  # a bad `monitoring` section stops the bot at startup

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        regime = dataframe["regime_1h"]
        by_regime = {"trending_bull": self.rsi_bull.value, "sideways": self.rsi_sideways.value}
        threshold = regime.map(by_regime).astype(float)
        dataframe.loc[
            regime_allows(regime, self.allowed_regimes)
            & (dataframe["ema_fast"] > dataframe["ema_slow"])
            & (dataframe["rsi"] < threshold)
            & (dataframe["volume"] > 0),
            "enter_long",
        ] = 1
        return dataframe
