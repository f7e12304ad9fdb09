"""Risk limits checked from a backtest's trade list: what the strategies promise, verified after the fact
with the very functions (and tolerance) the strategies' `confirm_trade_entry` uses, on the strategies'
own definition of equity: marked to market (starting balance + closed profits + every open trade at the
latest candle close), its running peak, and the UTC day's value at midnight."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from cryptobot_ops.risk import EPS, Position, RiskLimits, daily_loss, drawdown, portfolio_heat


def peak_concurrency(trades: pd.DataFrame) -> int:
    events = sorted([(t, 1) for t in trades.open_date] + [(t, -1) for t in trades.close_date], key=lambda e: (e[0], e[1]))
    n = peak = 0
    for _, d in events:
        n += d
        peak = max(peak, n)
    return peak


def marked_equity(trades: pd.DataFrame, closes: Mapping[str, pd.Series], start_balance: float) -> pd.Series:
    """Equity at every candle close (index: close time, UTC): realized profits of the trades closed by
    then plus each open trade at that close, fees as freqtrade's `calc_profit` charges them."""
    missing = sorted(set(trades.pair) - set(closes))
    if missing:
        raise ValueError(f"no candles for {', '.join(missing)}: cannot mark their trades to market")
    grid = pd.DatetimeIndex(sorted(set().union(*(s.index for s in closes.values())))) if closes else pd.DatetimeIndex([])
    done = trades.sort_values("close_date")
    realized = start_balance + np.concatenate([[0.0], done.profit_abs.to_numpy(float).cumsum()])
    equity = realized[np.searchsorted(done.close_date.to_numpy(), grid.to_numpy(), side="right")].copy()
    fee_open = trades.get("fee_open", pd.Series(0.0, index=trades.index)).fillna(0.0)
    fee_close = trades.get("fee_close", pd.Series(0.0, index=trades.index)).fillna(0.0)
    for t, f_open, f_close in zip(trades.itertuples(), fee_open, fee_close, strict=True):
        amount = float(getattr(t, "amount", t.stake_amount / t.open_rate))
        inside = (grid > t.open_date) & (grid < t.close_date)
        if inside.any():
            px = closes[t.pair].reindex(grid, method="ffill").to_numpy(float)[inside]
            equity[inside] += amount * px * (1 - f_close) - amount * t.open_rate * (1 + f_open)
    return pd.Series(equity, index=grid)


def limit_violations(trades: pd.DataFrame, start_balance: float, max_open: int, limits: RiskLimits | None = None, *,
                     closes: Mapping[str, pd.Series]) -> list[str]:
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
        now = equity[:t.open_date]  # the latest close at the decision
        if now.empty:
            continue
        eq, pk = float(now.iloc[-1]), float(running_peak[:t.open_date].iloc[-1])
        dd = drawdown(eq, pk)
        if dd >= limits.max_drawdown - EPS:
            out.append(f"entry {t.pair} at {t.open_date} in a {dd:.2%} drawdown")
        open_ = trades[(trades.open_date <= t.open_date) & (trades.close_date > t.open_date)]
        positions = [Position(o.pair, float(o.stake_amount), abs(float(o.initial_stop_loss_ratio))) for o in open_.itertuples()]
        heat = portfolio_heat(positions, eq)
        if heat > limits.portfolio_heat + EPS:
            out.append(f"heat {heat:.2%} > {limits.portfolio_heat:.0%} at {t.open_date} ({t.pair})")
        midnight = equity[:t.open_date.normalize()]
        lost = daily_loss(eq, float(midnight.iloc[-1]) if len(midnight) else start_balance)
        if lost >= limits.daily_loss - EPS:
            out.append(f"entry {t.pair} at {t.open_date} after a {lost:.2%} loss that day")
    return out


def closes_by_close_time(candles: Mapping[str, pd.DataFrame], timeframe: str) -> dict[str, pd.Series]:
    """freqtrade OHLCV frames (`date` = open time) as close prices indexed by each candle's close time."""
    from freqtrade.exchange import timeframe_to_minutes

    step = pd.Timedelta(minutes=timeframe_to_minutes(timeframe))
    return {pair: pd.Series(df["close"].to_numpy(float), index=pd.DatetimeIndex(pd.to_datetime(df["date"], utc=True) + step))
            for pair, df in candles.items()}


def load_closes(datadir, pairs: list[str], timeframe: str) -> dict[str, pd.Series]:
    """The traded pairs' closes from a freqtrade datadir (feather), as `limit_violations` takes them."""
    from freqtrade.data.history import load_data

    return closes_by_close_time(load_data(datadir, timeframe, sorted(set(pairs)), fill_up_missing=False), timeframe)
