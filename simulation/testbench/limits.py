"""Risk limits checked from a backtest's trade list (what the strategies promise, verified after the fact)."""

from __future__ import annotations

import pandas as pd


def peak_concurrency(trades: pd.DataFrame) -> int:
    events = sorted([(t, 1) for t in trades.open_date] + [(t, -1) for t in trades.close_date], key=lambda e: (e[0], e[1]))
    n = peak = 0
    for _, d in events:
        n += d
        peak = max(peak, n)
    return peak


def limit_violations(trades: pd.DataFrame, start_balance: float, max_open: int, heat_limit: float = 0.15,
                     daily_loss: float = 0.03) -> list[str]:
    """Empty when: never more than `max_open` positions, portfolio heat (stake x initial stop distance,
    open trades included) within `heat_limit` of the starting balance at every entry, and no entry on a
    UTC day after that day's realized loss reached `daily_loss`."""
    if trades.empty:
        return []
    out = []
    peak = peak_concurrency(trades)
    if peak > max_open:
        out.append(f"{peak} open positions > {max_open}")
    for t in trades.itertuples():
        open_ = trades[(trades.open_date <= t.open_date) & (trades.close_date > t.open_date)]
        heat = float((open_.stake_amount * open_.initial_stop_loss_ratio.abs()).sum() / start_balance)
        if heat > heat_limit + 1e-9:
            out.append(f"heat {heat:.2%} > {heat_limit:.0%} at {t.open_date} ({t.pair})")
        day = t.open_date.normalize()
        lost = -trades[(trades.close_date >= day) & (trades.close_date <= t.open_date)].profit_abs.sum()
        day_start = start_balance + trades[trades.close_date < day].profit_abs.sum()
        if lost / day_start >= daily_loss + 1e-9:
            out.append(f"entry {t.pair} at {t.open_date} after a {lost / day_start:.2%} loss that day")
    return out
