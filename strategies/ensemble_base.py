"""Shared base of the ensemble strategies: FreqAI (stacked ensemble) + HMM regime gate + risk controls.

Subclasses set the numbers (timeframe, confidence threshold, stake fraction, regimes) and may add an
entry filter. The entry threshold, the predicted return an entry needs and the trailing stop's ATR
multiple are freqtrade parameters (`freqtrade hyperopt --spaces buy sell` tunes them unchanged; the
bench's `--optimize` walks them forward); a subclass may shadow one with a plain number (ArbitrageScout
sets its own from the config). Everything else — features, regime columns, stakes from equity, the volatility-scaled
trailing stop, exits, FreqUI plot config, risk limits — lives here.
"""

from __future__ import annotations

import math
import time

import talib.abstract as ta
from freqtrade.enums import RunMode
from freqtrade.exchange import timeframe_to_seconds
from freqtrade.strategy import DecimalParameter, IStrategy, informative
from freqtrade.strategy.parameters import BaseParameter
from pandas import DataFrame, Series, concat

from cryptobot_ops.monitoring import monitor_for
from cryptobot_ops.risk import RiskControlled
from cryptobot_ops.volatility import har_forecast, sizing_multiplier
from freqaimodels import features
from freqaimodels.estimators.freqai_adapter import CONFIDENCE
from regime.columns import add_regime_columns, regime_allows, regime_plot, unknown_regime_columns

PREDICTION = features.TARGET
CANDLE_COLUMNS = ("date", "open", "high", "low", "close", "volume")


def value(setting):
    """A freqtrade parameter's current value, or the plain number a subclass set in its place."""
    return setting.value if isinstance(setting, BaseParameter) else setting


def confidence_parameter(default: float) -> DecimalParameter:
    return DecimalParameter(0.5, 0.95, decimals=2, default=default, space="buy")


def atr_parameter(default: float) -> DecimalParameter:
    return DecimalParameter(1.0, 5.0, decimals=1, default=default, space="sell")


class FreqAIFeatureHooks:
    """FreqAI's feature/target hooks, delegated to the shared `features` module (mixin).

    In dry-run/live, FreqAI recomputes every timeframe's features at each new base candle, though an
    informative timeframe's closed candles change only when one of its own closes (a 1h frame: one 15m
    candle in four). Each hook's last input and output are kept per (hook, pair, timeframe, period); an
    input equal to the last one (`DataFrame.equals`: every value, index and column) gets a copy of the
    last output, exactly what recomputing would return. Backtests compute once and keep nothing.

    The features read the candles only (date and OHLCV), so each hook sees and returns just those
    columns plus its features: FreqAI merges a hook's whole output back with a suffix, and the
    strategy's own columns riding along (the 1h informative ones, the regime) would be merged, copied
    and forward-filled again for every period and timeframe, to be dropped unused."""

    def _features_memo(self, key: tuple, dataframe: DataFrame, compute) -> DataFrame:
        if all(c in dataframe.columns for c in CANDLE_COLUMNS):
            dataframe = dataframe[list(CANDLE_COLUMNS)]
        runmode = (getattr(self, "config", None) or {}).get("runmode")
        if runmode is None or getattr(runmode, "value", runmode) not in ("live", "dry_run"):
            return compute(dataframe)
        memo = self.__dict__.setdefault("_feature_memo", {})
        last = memo.get(key)
        # shallow copies: pandas' copy-on-write copies a column the moment either side writes to it, so
        # a caller's changes never reach the kept frames, and a read-only caller costs no copy at all
        if last is not None and last[0].equals(dataframe):
            return last[1].copy(deep=False)
        out = compute(dataframe.copy(deep=False))
        memo[key] = (dataframe, out.copy(deep=False))
        return out

    def feature_engineering_expand_all(self, dataframe: DataFrame, period: int, metadata: dict, **kwargs) -> DataFrame:
        key = ("all", metadata.get("pair"), metadata.get("tf"), period)
        return self._features_memo(key, dataframe, lambda df: features.expand_all(df, period))

    def feature_engineering_expand_basic(self, dataframe: DataFrame, metadata: dict, **kwargs) -> DataFrame:
        key = ("basic", metadata.get("pair"), metadata.get("tf"))
        return self._features_memo(key, dataframe, lambda df: features.expand_basic(df, metadata))

    def feature_engineering_standard(self, dataframe: DataFrame, metadata: dict, **kwargs) -> DataFrame:
        return features.standard(dataframe)

    def set_freqai_targets(self, dataframe: DataFrame, metadata: dict, **kwargs) -> DataFrame:
        return features.set_targets(dataframe, self.freqai_info["feature_parameters"]["label_period_candles"])

    def start_freqai(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """`self.freqai.start`, in dry-run/live on the frame from its first candle that closes with every
        informative timeframe's candle (`features.informative_aligned_start`: freqtrade's informative merge is
        slow otherwise); the few oldest startup candles dropped for it come back without predictions.

        Once FreqAI holds predictions for the pair (its first call predicts the whole history), each new
        candle's analysis gets only the frame's last rows: the features' warm-up
        (`features.BASE_FEATURE_WARMUP`, after which no feature depends on where the frame starts) plus
        the rows a prediction reads (FreqAI's CONV_WIDTH). FreqAI predicts only the newest candles anyway
        and returns its stored predictions for older ones; the older rows get theirs from this pair's last
        analysis, by date. A live frame holds the startup candles and more (2,023 rows at 15m in our
        sessions): the features, merges and copies of the rows before the window were work whose result
        nobody read."""
        k = 0
        live = self.dp.runmode in (RunMode.DRY_RUN, RunMode.LIVE)
        pair = metadata["pair"]
        history = self.__dict__.setdefault("_freqai_returned", {}).get(pair)
        if live:
            tfs = self.freqai_info["feature_parameters"].get("include_timeframes", [])
            predicted = pair in getattr(getattr(self.freqai, "dd", None), "model_return_values", {})
            if history is not None and predicted:
                rows = features.BASE_FEATURE_WARMUP + int(getattr(self.freqai, "CONV_WIDTH", 1)) + 32
                k = features.live_window_start(dataframe["date"], self.config["timeframe"], tfs, rows)
            else:
                k = features.informative_aligned_start(dataframe["date"], self.config["timeframe"], tfs)
        if k == 0:
            out = self.freqai.start(dataframe, metadata, self)
        else:
            out = self.freqai.start(dataframe.iloc[k:].reset_index(drop=True), metadata, self)
            older = dataframe.iloc[:k]
            if history is not None:
                older = older.merge(history, on="date", how="left", validate="1:1")
            out = concat([older, out], ignore_index=True)
        if live:
            added = [c for c in out.columns if c not in dataframe.columns]
            self._freqai_returned[pair] = out[["date", *added]]
        return out


class EnsembleRiskStrategy(RiskControlled, FreqAIFeatureHooks, IStrategy):
    INTERFACE_VERSION = 3
    can_short = False
    process_only_new_candles = True
    # the 1h regime needs ~1,400 closed 1h candles before its first value (see RegimeGatedReference)
    startup_candle_count = 1800
    minimal_roi = {"0": 0.04, "240": 0.02, "720": 0.0}
    stoploss = -0.06  # hard floor; the trailing stop below is tighter
    use_custom_stoploss = True
    trailing_stop = False

    min_confidence = confidence_parameter(0.75)
    entry_return = DecimalParameter(0.0, 0.003, decimals=4, default=0.0005, space="buy")  # predicted log return
    stake_fraction = 0.02  # of equity per trade (a risk setting: not optimized)
    allowed_regimes: tuple[str, ...] = ("trending_bull",)
    atr_multiplier = atr_parameter(2.5)
    stop_bounds = (0.01, 0.05)  # trailing stop distance, fraction of price
    # Volatility sizing (off here): scale each stake down by the HAR-RV forecast of the next
    # `vol_horizon_hours` against its trailing 7-day median (cryptobot_ops.volatility; never up).
    vol_sizing = False
    vol_horizon_hours = 4

    plot_config = {
        "main_plot": {},
        "subplots": {
            "prediction": {PREDICTION: {"color": "blue"}},
            "confidence": {CONFIDENCE: {"color": "green"}},
            "regime": regime_plot("_1h"),
        },
    }

    # -- indicators -------------------------------------------------------------------------
    @informative("1h")
    def populate_indicators_1h(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        if getattr(
            self, "emergency_active", False
        ):  # exits first: skip the HMM in an emergency (entries are blocked anyway)
            return unknown_regime_columns(dataframe)
        return add_regime_columns(dataframe, "1h")

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        if getattr(
            self, "emergency_active", False
        ):  # no prediction needed to exit; do_predict 0 keeps every signal off
            dataframe[["do_predict", PREDICTION, CONFIDENCE]] = (0, 0.0, 0.0)
        else:
            t0 = time.perf_counter()
            dataframe = self.start_freqai(dataframe, metadata)
            if (mon := monitor_for(self)) is not None:  # dry-run/live: the predictions store and metrics
                mon.on_analysis(dataframe, metadata["pair"], time.perf_counter() - t0)
        dataframe["atr"] = ta.ATR(dataframe, timeperiod=14)
        if self.vol_sizing:
            dataframe["vol_size"] = self._vol_size(dataframe["close"])
        return dataframe

    def _vol_size(self, close: Series) -> Series:
        per_day = int(86_400 // timeframe_to_seconds(self.timeframe))
        h = max(1, int(self.vol_horizon_hours * per_day / 24))
        forecast = har_forecast(close, h, per_day, window=7 * per_day)
        return sizing_multiplier(forecast, window=7 * per_day)

    def confidence(self, dataframe: DataFrame) -> Series:
        return dataframe[CONFIDENCE] if CONFIDENCE in dataframe else Series(0.0, index=dataframe.index)

    def entry_filter(self, dataframe: DataFrame) -> Series:
        """Extra entry condition of a subclass (all True here)."""
        return Series(True, index=dataframe.index)

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe.loc[
            (dataframe["do_predict"] == 1)
            & (dataframe[PREDICTION] > value(self.entry_return))
            & (self.confidence(dataframe) >= value(self.min_confidence))
            & regime_allows(dataframe["regime_1h"], self.allowed_regimes)
            & self.entry_filter(dataframe)
            & (dataframe["volume"] > 0),
            ["enter_long", "enter_tag"],
        ] = (1, "ensemble")
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe.loc[(dataframe["do_predict"] == 1) & (dataframe[PREDICTION] < 0), ["exit_long", "exit_tag"]] = (
            1,
            "prediction_down",
        )
        return dataframe

    # -- sizing and stops -------------------------------------------------------------------
    def custom_stake_amount(
        self,
        pair,
        current_time,
        current_rate,
        proposed_stake,
        min_stake,
        max_stake,
        leverage,
        entry_tag,
        side,
        **kwargs,
    ) -> float:
        if not self.wallets:
            return proposed_stake
        # freqtrade's total stake already applies tradable_balance_ratio: undo it to get equity
        equity = self.wallets.get_total_stake_amount() / self.config.get("tradable_balance_ratio", 1.0)
        stake = equity * self.stake_fraction
        if self.vol_sizing:
            df, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
            size = float(df["vol_size"].iloc[-1]) if df is not None and len(df) and "vol_size" in df else 1.0
            stake *= min(1.0, max(0.0, size)) if math.isfinite(size) else 1.0  # no forecast yet: unscaled
        if min_stake and stake < min_stake:
            return 0.0  # below the exchange minimum: skip rather than oversize
        return min(stake, max_stake)

    def custom_stoploss(
        self, pair, trade, current_time, current_rate, current_profit, after_fill, **kwargs
    ) -> float | None:
        """Trailing stop at atr_multiplier x ATR below the current rate (freqtrade only ever raises it)."""
        df, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        if df is None or df.empty or "atr" not in df or not (df["atr"].iloc[-1] > 0):
            return None
        lo, hi = self.stop_bounds
        distance = min(hi, max(lo, value(self.atr_multiplier) * float(df["atr"].iloc[-1]) / current_rate))
        return -distance
