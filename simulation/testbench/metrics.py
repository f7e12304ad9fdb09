"""Performance metrics from a freqtrade trade list (the backtest export's `trades`)."""

from __future__ import annotations

import pandas as pd
from freqtrade.data import metrics as fm


def trades_frame(trades: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(trades)
    if df.empty:
        df = pd.DataFrame(columns=["pair", "open_date", "close_date", "profit_abs", "profit_ratio", "stake_amount",
                                   "initial_stop_loss_ratio"]).astype({"profit_abs": float, "stake_amount": float})
    for col in ("open_date", "close_date"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df.sort_values("close_date").reset_index(drop=True)


def trade_metrics(trades: pd.DataFrame, start_balance: float, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    """The bench's per-fold and aggregate figures, computed by freqtrade's own `freqtrade.data.metrics`
    exactly as `freqtrade backtesting` reports them for the same trades and window (Sharpe, Sortino,
    Calmar, account drawdown), plus win rate and profit factor (None when no trade lost)."""
    n = len(trades)
    if n == 0:
        return {"trades": 0, "profit_abs": 0.0, "profit_pct": 0.0, "sharpe": 0.0, "sortino": 0.0, "calmar": 0.0,
                "max_drawdown": 0.0, "win_rate": 0.0, "profit_factor": None, "days": max(1, (end - start).days)}
    lo, hi = start.to_pydatetime(), end.to_pydatetime()
    wins = float(trades.profit_abs[trades.profit_abs > 0].sum())
    losses = float(-trades.profit_abs[trades.profit_abs < 0].sum())
    return {
        "trades": n,
        "profit_abs": float(trades.profit_abs.sum()),
        "profit_pct": float(trades.profit_abs.sum() / start_balance),
        "sharpe": float(fm.calculate_sharpe(trades, lo, hi, start_balance)),
        "sortino": float(fm.calculate_sortino(trades, lo, hi, start_balance)),
        "calmar": float(fm.calculate_calmar(trades, lo, hi, start_balance)),
        "max_drawdown": float(fm.calculate_max_drawdown(trades, value_col="profit_abs",
                                                        starting_balance=start_balance).relative_account_drawdown),
        "win_rate": float((trades.profit_abs > 0).mean()),
        "profit_factor": wins / losses if losses > 0 else None,
        "days": max(1, (end - start).days),
    }
