"""Risk limits checked from a backtest's trade list: what the strategies promise, verified after the fact
with the very functions (and tolerance) the strategies' `confirm_trade_entry` uses."""

from __future__ import annotations

import pandas as pd

from cryptobot_ops.risk import EPS, Position, RiskLimits, daily_loss, portfolio_heat


def peak_concurrency(trades: pd.DataFrame) -> int:
    events = sorted([(t, 1) for t in trades.open_date] + [(t, -1) for t in trades.close_date], key=lambda e: (e[0], e[1]))
    n = peak = 0
    for _, d in events:
        n += d
        peak = max(peak, n)
    return peak


def limit_violations(trades: pd.DataFrame, start_balance: float, max_open: int, limits: RiskLimits | None = None) -> list[str]:
    """Empty when: never more than `max_open` positions; portfolio heat (stake x initial stop distance over
    open trades, the new one included) within the limit of the equity at every entry; and no entry on a
    UTC day after that day's loss reached the daily limit. Equity is the realized equity, as the risk
    module's own (starting balance + closed trades' profit)."""
    limits = limits or RiskLimits()
    if trades.empty:
        return []
    out = []
    peak = peak_concurrency(trades)
    if peak > max_open:
        out.append(f"{peak} open positions > {max_open}")
    for t in trades.itertuples():
        equity = start_balance + trades[trades.close_date <= t.open_date].profit_abs.sum()
        open_ = trades[(trades.open_date <= t.open_date) & (trades.close_date > t.open_date)]
        positions = [Position(o.pair, float(o.stake_amount), abs(float(o.initial_stop_loss_ratio))) for o in open_.itertuples()]
        heat = portfolio_heat(positions, equity)
        if heat > limits.portfolio_heat + EPS:
            out.append(f"heat {heat:.2%} > {limits.portfolio_heat:.0%} at {t.open_date} ({t.pair})")
        day = t.open_date.normalize()
        day_start = start_balance + trades[trades.close_date < day].profit_abs.sum()
        lost = daily_loss(equity, day_start)
        if lost >= limits.daily_loss - EPS:
            out.append(f"entry {t.pair} at {t.open_date} after a {lost:.2%} loss that day")
    return out
