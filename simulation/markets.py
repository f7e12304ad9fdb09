"""Trading rules (tick size, lot size, min notional) for the symbols the gateway lists."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MarketSpec:
    base: str
    quote: str
    tick_size: float
    step_size: float
    min_notional: float = 5.0
    min_qty: float | None = None

    @property
    def symbol(self) -> str:
        """Binance symbol id, e.g. BTCUSDT."""
        return f"{self.base}{self.quote}"

    @property
    def pair(self) -> str:
        """freqtrade / ccxt pair, e.g. BTC/USDT."""
        return f"{self.base}/{self.quote}"


# Binance spot filters as published for these symbols (2025).
KNOWN_MARKETS: dict[str, MarketSpec] = {
    m.pair: m
    for m in (
        MarketSpec("BTC", "USDT", 0.01, 0.00001),
        MarketSpec("ETH", "USDT", 0.01, 0.0001),
        MarketSpec("BNB", "USDT", 0.01, 0.001),
        MarketSpec("ADA", "USDT", 0.0001, 0.1),
        MarketSpec("DOT", "USDT", 0.001, 0.01),
        MarketSpec("LINK", "USDT", 0.01, 0.01),
        MarketSpec("SOL", "USDT", 0.01, 0.001),
        MarketSpec("USDC", "USDT", 0.0001, 1.0),
        MarketSpec("FDUSD", "USDT", 0.0001, 1.0),
    )
}

# A datadir may carry its venue's trading rules (the relay records them): {pair: MarketSpec fields}.
MARKETS_FILE = "markets.json"

QUOTES = ("USDT", "FDUSD", "USDC", "BTC", "ETH", "BNB")


def split_pair(pair: str) -> tuple[str, str]:
    """Split 'BTC/USDT', 'BTC_USDT' or 'BTCUSDT' into base and quote."""
    for sep in ("/", "_"):
        if sep in pair:
            base, quote = pair.split(sep, 1)
            return base.upper(), quote.upper()
    for quote in QUOTES:
        if pair.upper().endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)].upper(), quote
    raise ValueError(f"cannot split pair {pair!r} into base and quote")


def _decimals_needed(values: np.ndarray, max_decimals: int = 8) -> int:
    for d in range(max_decimals + 1):
        scaled = values * 10**d
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6):
            return d
    return max_decimals


def infer_market(pair: str, prices: np.ndarray, volumes: np.ndarray) -> MarketSpec:
    """Known Binance rules when listed, else rules inferred from the decimals the data uses."""
    if pair in KNOWN_MARKETS:
        return KNOWN_MARKETS[pair]
    base, quote = split_pair(pair)
    sample_p = np.asarray(prices[-5000:], dtype=float)
    sample_v = np.asarray(volumes[-5000:], dtype=float)
    tick = 10.0 ** -_decimals_needed(sample_p)
    step = 10.0 ** -_decimals_needed(sample_v)
    return MarketSpec(base, quote, tick, step)


def round_to(values: np.ndarray, step: float, mode: str = "nearest") -> np.ndarray:
    """Round to a multiple of step, keeping the result an exact short decimal."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    fn = {"nearest": np.round, "up": np.ceil, "down": np.floor}[mode]
    return np.round(fn(np.asarray(values) / step) * step, decimals)


def on_tick(price: float, tick: float) -> float:
    """A price where the exchange prints it: the nearest point of the tick grid (interpolated prices
    of a forming candle are not on it)."""
    if not tick > 0:
        return price
    decimals = max(0, round(-np.log10(tick)))
    return round(round(price / tick) * tick, int(decimals))
