"""Market data behind the gateway: sources (files, synthetic) and a store that serves any interval."""

from simulation.marketdata.sources import (
    DataSource,
    DataSourceError,
    FeatherDirSource,
    SyntheticSource,
    open_source,
)
from simulation.marketdata.store import CandleSeries, CandleStore

__all__ = [
    "CandleSeries",
    "CandleStore",
    "DataSource",
    "DataSourceError",
    "FeatherDirSource",
    "SyntheticSource",
    "open_source",
]
