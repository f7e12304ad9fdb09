"""Where the price is inside a candle: small, seeded path models.

Why: a replayed market needs a price at every instant (tickers, books, the venue's limit-order
matching), but candles only record open, high, low and close. How the forming candle moves between
them is a modelling assumption, so it is an explicit object that every report names:

- `backtest`: the convention `freqtrade backtesting` assumes: a rising candle goes open -> low ->
  high -> close, a falling one open -> high -> low -> close, piecewise linear over equal thirds.
  Use it to reproduce backtest fills on purpose. Its first leg tells a watching bot how the candle
  will close (down first = a rising candle).
- `random` (default for dry-run and paper): which extreme comes first is a fair coin per candle,
  independent of the close's direction; the times of the extremes are random (Dirichlet(2, 2, 2)
  gaps) and each leg wanders like a Brownian bridge between its end points, clipped to the candle's
  range. Seeded per (seed, pair, candle): the same run replays the same paths.

Both visit exactly the candle's open, high, low and close, so a limit order fills at a price the
candle really traded; only the order and timing inside the candle differ.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PATH_MODELS = ("random", "backtest")
BRIDGE_POINTS = 4  # inner points per leg of the random path
BRIDGE_SCALE = 0.25  # their spread, as a fraction of the candle's range x sqrt(leg time)


@dataclass(frozen=True)
class PathModel:
    """`kind` one of PATH_MODELS; `seed` makes the random paths reproducible."""

    kind: str = "random"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in PATH_MODELS:
            raise ValueError(f"path model must be one of {list(PATH_MODELS)}, got {self.kind!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"path seed must be a non-negative integer, got {self.seed!r}")

    def describe(self) -> str:
        return (
            "backtest (open -> low -> high -> close when rising)"
            if self.kind == "backtest"
            else f"random (seed {self.seed})"
        )

    def points(
        self, bar: tuple[float, float, float, float], pair: str, open_time: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(fractions of the candle, prices) of the path's vertices."""
        o, h, low, c = bar
        if self.kind == "backtest":
            mid = (low, h) if c >= o else (h, low)
            return np.array([0.0, 1 / 3, 2 / 3, 1.0]), np.array([o, mid[0], mid[1], c])
        return _random_points(
            self.seed, zlib.crc32(pair.encode()), int(open_time), float(o), float(h), float(low), float(c)
        )

    def price_at(self, bar: tuple[float, float, float, float], pair: str, open_time: int, frac: float) -> float:
        fr, px = self.points(bar, pair, open_time)
        return float(np.interp(min(1.0, max(0.0, frac)), fr, px))

    def range_between(
        self, bar: tuple[float, float, float, float], pair: str, open_time: int, f0: float, f1: float
    ) -> tuple[float, float]:
        """(lowest, highest) price the path visits between candle fractions f0 <= f1."""
        fr, px = self.points(bar, pair, open_time)
        f0, f1 = min(1.0, max(0.0, f0)), min(1.0, max(0.0, f1))
        inside = px[(fr > f0) & (fr < f1)]
        ends = np.array([np.interp(f0, fr, px), np.interp(f1, fr, px)])
        seen = np.concatenate([ends, inside])
        return float(seen.min()), float(seen.max())

    def first_reach(
        self, bar: tuple[float, float, float, float], pair: str, open_time: int, f0: float, level: float, below: bool
    ) -> float | None:
        """The first candle fraction >= f0 at which the path is at `level` or beyond it (at or under it when
        `below`), None if it never gets there in this candle. The path is piecewise linear between its
        vertices, so the crossing is exact: what lets the venue sleep until a resting order can fill."""
        fr, px = self.points(bar, pair, open_time)
        f0 = min(1.0, max(0.0, f0))

        def reached(p: float) -> bool:
            return p <= level if below else p >= level

        pa = float(np.interp(f0, fr, px))
        if reached(pa):
            return f0
        fa = f0
        for fb, pb in zip(fr[fr > f0], px[fr > f0], strict=True):
            if reached(float(pb)):
                # linear between (fa, pa) and (fb, pb): where it meets the level, never before fa
                w = (level - pa) / (pb - pa) if pb != pa else 1.0
                return float(min(fb, max(fa, fa + w * (fb - fa))))
            fa, pa = float(fb), float(pb)
        return None

    def first_leg_up(self, bar: tuple[float, float, float, float], pair: str, open_time: int) -> bool:
        """Whether the path reaches the high before the low (what a watching bot learns first)."""
        _, px = self.points(bar, pair, open_time)
        return int(np.argmax(px)) < int(np.argmin(px))


@lru_cache(maxsize=8192)  # bounded: one entry per candle recently asked about
def _random_points(
    seed: int, pair_key: int, open_time: int, o: float, h: float, low: float, c: float
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, pair_key, open_time & 0xFFFFFFFF, open_time >> 32])
    high_first = bool(rng.random() < 0.5)
    gaps = rng.dirichlet([2.0, 2.0, 2.0])
    t1, t2 = float(gaps[0]), float(gaps[0] + gaps[1])
    e1, e2 = (h, low) if high_first else (low, h)
    knots_t, knots_p = [0.0, t1, t2, 1.0], [o, e1, e2, c]
    fr, px = [0.0], [o]
    span = max(h - low, 0.0)
    for (ta, pa), (tb, pb) in zip(
        zip(knots_t[:-1], knots_p[:-1], strict=True), zip(knots_t[1:], knots_p[1:], strict=True), strict=True
    ):
        u = np.linspace(0.0, 1.0, BRIDGE_POINTS + 2)[1:-1]
        walk = np.cumsum(rng.normal(0.0, 1.0, BRIDGE_POINTS + 1))
        bridge = walk[:-1] - u * walk[-1]  # pinned to 0 at both ends of the leg
        inner = pa + (pb - pa) * u + bridge * span * BRIDGE_SCALE * np.sqrt(max(tb - ta, 0.0) / (BRIDGE_POINTS + 1))
        fr.extend(ta + (tb - ta) * u)
        px.extend(np.clip(inner, low, h))
        fr.append(tb)
        px.append(pb)
    return np.asarray(fr), np.asarray(px)
