"""HMM market-regime detector (hmmlearn): causal filtered probabilities with stable state names."""

from regime.detector import PROB_COLUMNS, REGIMES, RegimeDetector, RegimeFitError, name_states
from regime.features import FEATURES, FeatureWindows, OnlineObservations, observations

__all__ = [
    "FEATURES",
    "PROB_COLUMNS",
    "REGIMES",
    "FeatureWindows",
    "OnlineObservations",
    "RegimeDetector",
    "RegimeFitError",
    "name_states",
    "observations",
]
