"""Regime columns for freqtrade dataframes: strategies (gating, per-regime parameters) and FreqAI.

Live bots hold at most a few thousand candles per timeframe, so compute regimes on a coarser
informative timeframe (1h for 5m/15m strategies: its windows need ~1,700 candles) and merge them
with freqtrade's `merge_informative_pair`, which shifts them so only closed 1h candles are used.
"""

from __future__ import annotations

import logging

import pandas as pd

from regime.detector import PROB_COLUMNS, REGIMES
from regime.intrahour import intrahour_regimes
from regime.walkforward import WalkForwardParams, causal_regimes

logger = logging.getLogger(__name__)

REGIME_IDS = {name: i for i, name in enumerate(REGIMES)}


def add_regime_columns(
    dataframe: pd.DataFrame,
    timeframe: str,
    prefix: str = "regime",
    params: WalkForwardParams | None = None,
) -> pd.DataFrame:
    """Adds `{prefix}` (label or None), `{prefix}_id` (0..3, NaN before the first fit) and
    `{prefix}_p_<regime>` probabilities. Causal: values at a candle use candles up to it only."""
    reg = causal_regimes(dataframe, timeframe, params)
    for col in PROB_COLUMNS:
        dataframe[f"{prefix}_{col}"] = reg[col].to_numpy()
    dataframe[prefix] = reg["regime"].to_numpy()
    dataframe[f"{prefix}_id"] = reg["regime"].map(REGIME_IDS).astype(float).to_numpy()
    return dataframe


def add_intrahour_regime_columns(
    dataframe: pd.DataFrame, timeframe: str, hourly: pd.DataFrame, prefix: str = "regime_now"
) -> pd.DataFrame:
    """`{prefix}` and `{prefix}_p_<regime>` updated every candle of `timeframe` between 1h closes
    (`regime.intrahour`); `hourly` is the pair's 1h history (later hours are ignored, so backtesting's
    full-range data provider is safe). Unusable input leaves the columns unknown, with a warning."""
    try:
        reg = intrahour_regimes(dataframe, timeframe, hourly, "1h")
    except (ValueError, KeyError) as exc:
        logger.warning("intrahour regime unavailable (%s): columns left unknown", exc)
        return unknown_regime_columns(dataframe, prefix)
    for col in PROB_COLUMNS:
        dataframe[f"{prefix}_{col}"] = reg[col].to_numpy()
    dataframe[prefix] = reg["regime"].to_numpy()
    dataframe[f"{prefix}_id"] = reg["regime"].map(REGIME_IDS).astype(float).to_numpy()
    return dataframe


def unknown_regime_columns(dataframe: pd.DataFrame, prefix: str = "regime") -> pd.DataFrame:
    """The same columns as `add_regime_columns`, all unknown: an emergency stop skips the HMM so the
    exits of that loop are not delayed by analysis (unknown regimes also gate every entry out)."""
    for col in PROB_COLUMNS:
        dataframe[f"{prefix}_{col}"] = float("nan")
    dataframe[prefix] = None
    dataframe[f"{prefix}_id"] = float("nan")
    return dataframe


def freqai_regime_features(dataframe: pd.DataFrame, timeframe: str) -> dict[str, pd.Series]:
    """FreqAI features (`%-regime_p_<regime>`): the filtered probabilities, uniform (no
    information) where the history is still too short, since FreqAI drops rows with NaN."""
    reg = causal_regimes(dataframe, timeframe)
    return {f"%-regime_{col}": reg[col].fillna(1.0 / len(PROB_COLUMNS)) for col in PROB_COLUMNS}


REGIME_COLORS = {"trending_bull": "green", "trending_bear": "red", "sideways": "gray", "high_volatility": "violet"}


def regime_plot(suffix: str = "_1h", prefix: str = "regime") -> dict:
    """A FreqUI `plot_config` subplot with the four regime probabilities."""
    return {f"{prefix}_p_{name}{suffix}": {"color": color} for name, color in REGIME_COLORS.items()}


def regime_allows(label: pd.Series, allowed: tuple[str, ...]) -> pd.Series:
    """Entry gate: True where the regime is known and in `allowed`."""
    return label.isin(allowed) & label.notna()


__all__ = [
    "REGIME_IDS",
    "add_intrahour_regime_columns",
    "add_regime_columns",
    "freqai_regime_features",
    "regime_allows",
    "regime_plot",
    "unknown_regime_columns",
]
