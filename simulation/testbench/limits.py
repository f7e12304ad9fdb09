"""Risk limits checked from a backtest's trade list: what the strategies promise, verified after the fact
with the very functions (and tolerance) the strategies' `confirm_trade_entry` uses, on the strategies'
own definition of equity: marked to market (starting balance + closed profits + every open trade at the
latest candle close), its running peak, and the UTC day's value at midnight."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from cryptobot_ops.risk import EPS, Position, RiskLimits, daily_loss, drawdown, portfolio_heat
from simulation.testbench.metrics import marked_equity


def peak_concurrency(trades: pd.DataFrame) -> int:
    events = sorted(
        [(t, 1) for t in trades.open_date] + [(t, -1) for t in trades.close_date], key=lambda e: (e[0], e[1])
    )
    n = peak = 0
    for _, d in events:
        n += d
        peak = max(peak, n)
    return peak


def limit_violations(
    trades: pd.DataFrame,
    start_balance: float,
    max_open: int,
    limits: RiskLimits | None = None,
    *,
    closes: Mapping[str, pd.Series],
) -> list[str]:
    """Empty when: never more than `max_open` positions; at every entry the marked-to-market drawdown below
    `max_drawdown`, the day's loss below `daily_loss`, and the portfolio heat (stake x initial stop
    distance over open trades, the new one included) within its limit of the equity. `closes`: each
    traded pair's candle closes, indexed by close time (`closes_by_close_time`)."""
    limits = limits or RiskLimits()
    if trades.empty:
        return []
    out = []
    peak = peak_concurrency(trades)
    if peak > max_open:
        out.append(f"{peak} open positions > {max_open}")
    equity = marked_equity(trades, closes, start_balance)
    running_peak = equity.cummax()
    for t in trades.sort_values("open_date").itertuples():
        now = equity[: t.open_date]  # the latest close at the decision
        if now.empty:
            continue
        eq, pk = float(now.iloc[-1]), float(running_peak[: t.open_date].iloc[-1])
        dd = drawdown(eq, pk)
        if dd >= limits.max_drawdown - EPS:
            out.append(f"entry {t.pair} at {t.open_date} in a {dd:.2%} drawdown")
        open_ = trades[(trades.open_date <= t.open_date) & (trades.close_date > t.open_date)]
        positions = [
            Position(o.pair, float(o.stake_amount), abs(float(o.initial_stop_loss_ratio))) for o in open_.itertuples()
        ]
        heat = portfolio_heat(positions, eq)
        if heat > limits.portfolio_heat + EPS:
            out.append(f"heat {heat:.2%} > {limits.portfolio_heat:.0%} at {t.open_date} ({t.pair})")
        midnight = equity[: t.open_date.normalize()]
        lost = daily_loss(eq, float(midnight.iloc[-1]) if len(midnight) else start_balance)
        if lost >= limits.daily_loss - EPS:
            out.append(f"entry {t.pair} at {t.open_date} after a {lost:.2%} loss that day")
    return out
