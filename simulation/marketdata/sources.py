"""Where candles come from. One interface for freqtrade feather files and the synthetic market."""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd

from simulation.markets import MARKETS_FILE, MarketSpec, infer_market
from simulation.synthetic import SyntheticConfig, generate
from simulation.timeframes import is_valid_interval

logger = logging.getLogger(__name__)

OHLCV = ["date", "open", "high", "low", "close", "volume"]
_SPOT_FILE = re.compile(r"^(?P<pair>[A-Za-z0-9]+_[A-Za-z0-9]+)-(?P<tf>\d+[a-zA-Z]{1,2})\.feather$")


class DataSourceError(Exception):
    """Bad or missing market data, with a message meant for the user."""


class DataSource(ABC):
    """Candles per pair at the timeframes the data actually has (its native timeframes)."""

    @abstractmethod
    def pairs(self) -> list[str]: ...

    @abstractmethod
    def timeframes(self, pair: str) -> list[str]: ...

    @abstractmethod
    def load(self, pair: str, timeframe: str) -> pd.DataFrame:
        """date (UTC), open, high, low, close, volume; sorted, unique dates."""

    @abstractmethod
    def market(self, pair: str) -> MarketSpec: ...

    def liquidity(self) -> pd.DataFrame | None:
        """Optional per-candle depth_factor / spread_factor (stress scenarios)."""
        return None

    def describe(self) -> str:
        return type(self).__name__


def validate_candles(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Reject data the gateway cannot serve honestly; say exactly what is wrong."""
    missing = [c for c in OHLCV if c not in df.columns]
    if missing:
        raise DataSourceError(f"{where}: missing columns {missing}")
    df = df[OHLCV].copy()
    if df.empty:
        raise DataSourceError(f"{where}: no candles")
    df["date"] = pd.to_datetime(df["date"], utc=True)
    bad = df[["open", "high", "low", "close", "volume"]].isna().any(axis=1)
    if bad.any():
        raise DataSourceError(
            f"{where}: {int(bad.sum())} candles with NaN values, first at {df.loc[bad, 'date'].iloc[0]}"
        )
    if not df["date"].is_monotonic_increasing or df["date"].duplicated().any():
        raise DataSourceError(f"{where}: dates are not strictly increasing")
    values = df[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float)
    checks = {
        "infinite values": ~np.isfinite(values).all(axis=1),
        "prices <= 0": (values[:, :4] <= 0).any(axis=1),
        "high below low, open or close": values[:, 1]
        < np.maximum(values[:, 2], np.maximum(values[:, 0], values[:, 3])),
        "low above open or close": values[:, 2] > np.minimum(values[:, 0], values[:, 3]),
        "negative volume": values[:, 4] < 0,
    }
    for what, rows in checks.items():
        if rows.any():
            raise DataSourceError(
                f"{where}: {int(rows.sum())} candles with {what}, first at {df.loc[rows, 'date'].iloc[0]}"
            )
    return df.reset_index(drop=True)


class FeatherDirSource(DataSource):
    """A freqtrade datadir in feather format (`BTC_USDT-5m.feather`), e.g. ../shared/data/binance."""

    def __init__(self, datadir: Path, pairs: list[str] | None = None) -> None:
        self.datadir = Path(datadir)
        if not self.datadir.is_dir():
            raise DataSourceError(f"data directory {self.datadir} does not exist")
        self._files: dict[str, dict[str, Path]] = {}
        for path in sorted(self.datadir.glob("*.feather")):
            m = _SPOT_FILE.match(path.name)
            if not m or not is_valid_interval(m["tf"]):
                continue
            pair = m["pair"].replace("_", "/")
            self._files.setdefault(pair, {})[m["tf"]] = path
        if pairs:
            unknown = sorted(set(pairs) - set(self._files))
            if unknown:
                raise DataSourceError(f"{self.datadir}: no data for {unknown}")
            self._files = {p: self._files[p] for p in pairs}
        if not self._files:
            raise DataSourceError(f"{self.datadir}: no freqtrade spot feather files (PAIR-TF.feather)")
        self._cache: dict[tuple[str, str], pd.DataFrame] = {}
        self._markets: dict[str, MarketSpec] = {}

    def pairs(self) -> list[str]:
        return list(self._files)

    def timeframes(self, pair: str) -> list[str]:
        return list(self._files[pair])

    def load(self, pair: str, timeframe: str) -> pd.DataFrame:
        key = (pair, timeframe)
        if key not in self._cache:
            path = self._files[pair][timeframe]
            try:
                raw = pd.read_feather(path)
            except Exception as exc:  # pyarrow raises several types for corrupt files
                raise DataSourceError(f"{path}: unreadable feather file ({exc})") from exc
            self._cache[key] = validate_candles(raw, str(path))
        return self._cache[key]

    def market(self, pair: str) -> MarketSpec:
        if not self._markets and (self.datadir / MARKETS_FILE).is_file():  # recorded rules beat inferred ones
            try:
                recorded = json.loads((self.datadir / MARKETS_FILE).read_text())
                self._markets = {p: MarketSpec(**fields) for p, fields in recorded.items() if p in self._files}
            except (ValueError, TypeError) as exc:
                raise DataSourceError(f"{self.datadir / MARKETS_FILE}: unreadable trading rules ({exc})") from exc
        if pair not in self._markets:
            tf = self.timeframes(pair)[0]
            df = self.load(pair, tf)
            prices = df[["open", "high", "low", "close"]].to_numpy().ravel()
            self._markets[pair] = infer_market(pair, prices, df["volume"].to_numpy())
        return self._markets[pair]

    def liquidity(self) -> pd.DataFrame | None:
        gt = sorted((self.datadir / "ground_truth").glob("regimes-*.feather"))
        if not gt:
            return None
        df = pd.read_feather(gt[0])
        return df[["date", "depth_factor", "spread_factor"]] if "depth_factor" in df else None

    def describe(self) -> str:
        return f"feather files in {self.datadir}"


class SyntheticSource(DataSource):
    """The synthetic market generated in memory (deterministic for a seed)."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config or SyntheticConfig()
        self.market_data = generate(self.config)

    def pairs(self) -> list[str]:
        return list(self.market_data.candles)

    def timeframes(self, pair: str) -> list[str]:
        return [self.config.timeframe]

    def load(self, pair: str, timeframe: str) -> pd.DataFrame:
        return self.market_data.candles[pair]

    def market(self, pair: str) -> MarketSpec:
        return self.market_data.markets[pair]

    def liquidity(self) -> pd.DataFrame | None:
        return self.market_data.ground_truth[["date", "depth_factor", "spread_factor"]]

    def describe(self) -> str:
        c = self.config
        return f"synthetic market seed={c.seed} start={c.start} days={c.days} timeframe={c.timeframe}"


def open_source(
    datadir: Path | None = None,
    synthetic: SyntheticConfig | None = None,
    pairs: list[str] | None = None,
) -> DataSource:
    """Build the data source the gateway CLI asked for."""
    if (datadir is None) == (synthetic is None):
        raise DataSourceError("choose exactly one data source: a datadir or the synthetic market")
    if datadir is not None:
        return FeatherDirSource(datadir, pairs=[p.upper() for p in pairs] if pairs else None)
    if pairs:
        assets = tuple(a for a in synthetic.assets if a.pair in pairs)
        missing = sorted(set(pairs) - {a.pair for a in assets})
        if missing:
            raise DataSourceError(f"synthetic market has no {missing}")
        synthetic.assets = assets
    return SyntheticSource(synthetic)
