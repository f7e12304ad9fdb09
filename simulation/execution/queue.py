"""When a resting limit order fills: small, seeded queue models (cf. hftbacktest's queue models and
NautilusTrader's FillModel).

A candle-based replay knows the range the market traded and its volume, not the queue in front of
our order, so how much of a resting order fills when the price reaches it is an assumption:

- `trade_through` (default; "back of the queue"): only a trade *beyond* the limit proves the queue
  at the limit was consumed; a mere touch fills nothing.
- `touch`: a touch fills, as `freqtrade backtesting` assumes (the candle's low reaches a buy limit).
- `probabilistic`: trade-through fills; a touch fills with probability `touch_fill_prob` per
  candle of the finest series in which the price touched the limit (a random queue position), drawn
  from a seeded generator per (order, candle): how often the venue polls changes nothing.

Every fill is capped at `max_participation` x the volume traded meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUEUE_MODELS = ("trade_through", "touch", "probabilistic")


@dataclass(frozen=True)
class QueueModel:
    kind: str = "trade_through"
    touch_fill_prob: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in QUEUE_MODELS:
            raise ValueError(f"simulation.queue.kind must be one of {list(QUEUE_MODELS)}, got {self.kind!r}")
        if (
            isinstance(self.touch_fill_prob, bool)
            or not isinstance(self.touch_fill_prob, int | float)
            or not 0 <= self.touch_fill_prob <= 1
        ):
            raise ValueError(f"simulation.queue.touch_fill_prob must be in [0, 1], got {self.touch_fill_prob!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"simulation.queue.seed must be a non-negative integer, got {self.seed!r}")

    def fills(self, side: str, limit: float, low: float, high: float, order_id: int, candle: int) -> bool:
        """Whether a resting order at `limit` fills given the range [low, high] traded in part of the
        finest candle opened at `candle` (ms): the same answer for every part of one candle."""
        through = low < limit if side == "BUY" else high > limit
        if through or self.kind == "trade_through":
            return through
        touched = low <= limit if side == "BUY" else high >= limit
        if not touched:
            return False
        if self.kind == "touch":
            return True
        rng = np.random.default_rng([self.seed, order_id, candle & 0xFFFFFFFF, candle >> 32])
        return bool(rng.random() < self.touch_fill_prob)

    def describe(self) -> str:
        if self.kind == "probabilistic":
            return f"probabilistic (touch fills with p={self.touch_fill_prob:g}, seed {self.seed})"
        return {"trade_through": "trade-through (back of the queue)", "touch": "touch (as freqtrade backtesting)"}[
            self.kind
        ]
