"""Trend following on 15m: the ensemble predicts a rise with confidence >= 0.75 while the 1h regime is
trending_bull. 2% of equity per trade, at most 3 positions (config/trend-following.json)."""

from __future__ import annotations

from ensemble_base import EnsembleRiskStrategy, atr_parameter, confidence_parameter


class TrendFollowingEnsemble(EnsembleRiskStrategy):
    timeframe = "15m"
    min_confidence = confidence_parameter(0.75)
    stake_fraction = 0.02
    allowed_regimes = ("trending_bull",)
    atr_multiplier = atr_parameter(3.0)
