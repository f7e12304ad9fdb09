"""Order book synthesized from candles.

Why: candles carry no book, yet freqtrade prices entries/exits from `depth`, and the simulator needs
depth to walk for slippage. The book is centred on the last traded price of the (forming) candle,
with the spec's parameters: base spread 0.02%, depth scaled by recent volume, spread widened and
depth thinned by up to `volatility_multiplier` when short-term volatility runs above its norm, and
stress-scenario liquidity factors applied on top. Deterministic for a given candle.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from simulation.markets import MarketSpec, round_to

SPREAD_MODELS = ("fixed", "corwin_schultz")


@dataclass(frozen=True)
class BookParams:
    base_spread: float = 0.0002  # 0.02% of price, best ask - best bid
    levels: int = 20
    level_step: float = 0.0001  # price gap between levels, as a fraction of price
    depth_share: float = 0.02  # first level holds this share of an average candle's volume
    depth_growth: float = 0.35  # each further level holds this much more
    volatility_multiplier: float = 1.5  # max widening / thinning in high volatility
    spread_model: str = "fixed"  # "fixed": base_spread; "corwin_schultz": the previous UTC day's OHLC estimate
    spread_scale: float = 1.0  # multiplies either (the sensitivity runs use 0.1 / 1 / 10)

    def __post_init__(self) -> None:
        if self.spread_model not in SPREAD_MODELS:
            raise ValueError(
                f"simulation.book.spread_model must be one of {list(SPREAD_MODELS)}, got {self.spread_model!r}"
            )
        for name in (
            "base_spread",
            "level_step",
            "depth_share",
            "depth_growth",
            "volatility_multiplier",
            "spread_scale",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"simulation.book.{name} must be a positive number, got {value!r}")
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or not 1 <= self.levels <= 1000:
            raise ValueError(f"simulation.book.levels must be an integer in [1, 1000], got {self.levels!r}")


@dataclass(frozen=True)
class OrderBook:
    bids: list[tuple[float, float]]  # price desc
    asks: list[tuple[float, float]]  # price asc

    @property
    def best_bid(self) -> float:
        return self.bids[0][0]

    @property
    def best_ask(self) -> float:
        return self.asks[0][0]

    @property
    def mid(self) -> float:
        return (self.best_bid + self.best_ask) / 2.0


def volatility_ratio(closes: np.ndarray, short: int = 12) -> float:
    """Short-window realized volatility over the window's own; 1.0 when there is too little data."""
    if len(closes) < short + 2:
        return 1.0
    rets = np.diff(np.log(closes))
    long_vol = float(np.std(rets))
    short_vol = float(np.std(rets[-short:]))
    if long_vol <= 0:
        return 1.0
    return short_vol / long_vol


def synthesize_book(
    market: MarketSpec,
    price: float,
    avg_volume: float,
    vol_ratio: float = 1.0,
    depth_factor: float = 1.0,
    spread_factor: float = 1.0,
    limit: int = 100,
    seed_key: int = 0,
    params: BookParams | None = None,
    spread: float | None = None,
) -> OrderBook:
    """`spread`: the base spread to use instead of `params.base_spread` (a calibrated estimate)."""
    p = params or BookParams()
    stress = min(p.volatility_multiplier, max(1.0, vol_ratio))
    base = p.base_spread if spread is None else spread
    half_spread = price * base * p.spread_scale * stress * spread_factor / 2.0
    tick = market.tick_size
    best_bid = max(tick, math.floor((price - half_spread) / tick + 1e-9) * tick)
    best_ask = math.ceil((price + half_spread) / tick - 1e-9) * tick
    if best_ask <= best_bid:
        best_ask = best_bid + tick
    gap = max(tick, price * p.level_step * spread_factor)
    n = max(1, min(limit, p.levels))
    idx = np.arange(n)
    rng = np.random.default_rng(zlib.crc32(f"{market.symbol}:{seed_key}".encode()))
    base_qty = max(avg_volume, market.step_size) * p.depth_share * depth_factor / stress
    qty = base_qty * (1.0 + p.depth_growth * idx) * rng.uniform(0.6, 1.4, size=(2, n))
    qty = np.maximum(round_to(qty, market.step_size), market.step_size)
    bids_px = round_to(best_bid - idx * gap, tick)
    asks_px = round_to(best_ask + idx * gap, tick)
    keep = bids_px > 0
    bids = list(zip(bids_px[keep].tolist(), qty[0][keep].tolist(), strict=True))
    asks = list(zip(asks_px.tolist(), qty[1].tolist(), strict=True))
    return OrderBook(bids, asks)
