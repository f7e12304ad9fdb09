"""Taker fills: walk the book level by level, then add impact; partial when liquidity runs out."""

from __future__ import annotations

from dataclasses import dataclass

from simulation.book import OrderBook
from simulation.execution.impact import ImpactModel


@dataclass(frozen=True)
class Fill:
    qty: float  # base asset filled
    price: float  # average price including impact
    book_price: float  # average price of the levels walked (no impact)
    levels: int  # how many book levels the order touched

    @property
    def notional(self) -> float:
        return self.qty * self.price


def taker_fill(
    book: OrderBook,
    side: str,
    qty: float,
    limit_price: float | None = None,
    impact: ImpactModel | None = None,
    daily_notional: float = 0.0,
    daily_volatility: float = 0.0,
    max_qty: float | None = None,
) -> Fill:
    """Fill `qty` against the opposite side of `book`, never beyond `limit_price` nor `max_qty`.

    Impact worsens the average price but never past the limit (a limit order's holder is
    protected: the remainder stays unfilled instead).
    """
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be BUY or SELL, got {side!r}")
    if qty <= 0:
        raise ValueError("qty must be positive")
    levels = book.asks if side == "BUY" else book.bids
    sign = 1.0 if side == "BUY" else -1.0
    want = qty if max_qty is None else min(qty, max(0.0, max_qty))
    got, cost, touched = 0.0, 0.0, 0
    for px, avail in levels:
        if limit_price is not None and sign * (px - limit_price) > 0:
            break
        if got >= want:
            break
        take = min(avail, want - got)
        got += take
        cost += take * px
        touched += 1
    if got <= 0:
        return Fill(0.0, 0.0, 0.0, 0)
    book_px = cost / got
    frac = (impact or ImpactModel(enabled=False)).fraction(got * book_px, daily_notional, daily_volatility)
    price = book_px * (1.0 + sign * frac)
    if limit_price is not None and sign * (price - limit_price) > 0:
        price = limit_price
    return Fill(got, price, book_px, touched)
