"""Synthetic market generator: the project's embedded default data."""

from simulation.synthetic.generator import (
    DEFAULT_ASSETS,
    DEFAULT_REGIME_PARAMS,
    REGIMES,
    AssetParams,
    RegimeParams,
    Scenario,
    SyntheticConfig,
    SyntheticMarket,
    generate,
)
from simulation.synthetic.store import load_ground_truth, write_market

__all__ = [
    "DEFAULT_ASSETS",
    "DEFAULT_REGIME_PARAMS",
    "REGIMES",
    "AssetParams",
    "RegimeParams",
    "Scenario",
    "SyntheticConfig",
    "SyntheticMarket",
    "generate",
    "load_ground_truth",
    "write_market",
]
