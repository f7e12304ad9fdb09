"""Performance metrics from a freqtrade trade list (the backtest export's `trades`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def trades_frame(trades: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(trades)
    if df.empty:
        df = pd.DataFrame(columns=["pair", "open_date", "close_date", "profit_abs", "profit_ratio", "stake_amount",
                                   "initial_stop_loss_ratio"]).astype({"profit_abs": float, "stake_amount": float})
    for col in ("open_date", "close_date"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df.sort_values("close_date").reset_index(drop=True)


def daily_equity(trades: pd.DataFrame, start_balance: float, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Realized equity at the end of every UTC day of [start, end)."""
    days = pd.date_range(start.normalize(), end.normalize() - pd.Timedelta(days=1) if end > start else start, freq="D", tz="UTC")
    if trades.empty:
        return pd.Series(start_balance, index=days)
    pnl = trades.groupby(trades.close_date.dt.normalize())["profit_abs"].sum()
    return start_balance + pnl.reindex(days, fill_value=0.0).cumsum()


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction of the peak."""
    if len(equity) == 0:
        return 0.0
    peak = np.maximum.accumulate(equity)
    return float(np.max((peak - equity) / peak))


def trade_metrics(trades: pd.DataFrame, start_balance: float, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    """Sharpe and Sortino on daily realized returns (annualised with 365 days), max drawdown on the
    realized equity after every trade, win rate, profit factor (None without losing trades)."""
    eq = daily_equity(trades, start_balance, start, end)
    rets = eq.pct_change().dropna().to_numpy() if len(eq) > 1 else np.array([])
    rets = np.r_[eq.iloc[0] / start_balance - 1, rets] if len(eq) else rets
    sd = float(np.std(rets, ddof=1)) if len(rets) > 1 else 0.0
    downside = rets[rets < 0]
    dd_sd = float(np.sqrt(np.mean(downside**2))) if len(downside) else 0.0
    mean = float(np.mean(rets)) if len(rets) else 0.0
    wins = trades.profit_abs[trades.profit_abs > 0].sum() if len(trades) else 0.0
    losses = -trades.profit_abs[trades.profit_abs < 0].sum() if len(trades) else 0.0
    per_trade = start_balance + np.r_[0.0, trades.profit_abs.cumsum().to_numpy()] if len(trades) else np.array([start_balance])
    return {
        "trades": len(trades),
        "profit_abs": float(trades.profit_abs.sum()) if len(trades) else 0.0,
        "profit_pct": float(trades.profit_abs.sum() / start_balance) if len(trades) else 0.0,
        "sharpe": mean / sd * math.sqrt(365) if sd > 0 else 0.0,
        "sortino": mean / dd_sd * math.sqrt(365) if dd_sd > 0 else (None if mean > 0 else 0.0),
        "max_drawdown": max_drawdown(per_trade),
        "win_rate": float((trades.profit_abs > 0).mean()) if len(trades) else 0.0,
        "profit_factor": float(wins / losses) if losses > 0 else None,
        "days": len(eq),
    }
