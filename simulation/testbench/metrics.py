"""Performance metrics from a freqtrade trade list (the backtest export's `trades`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from freqtrade.data import metrics as fm
from scipy import stats

RATIO_BASIS = "daily mark-to-market returns, annualised x sqrt(365) (freqtrade's *_from_balance)"


def trades_frame(trades: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(trades)
    if df.empty:
        df = pd.DataFrame(
            columns=[
                "pair",
                "open_date",
                "close_date",
                "profit_abs",
                "profit_ratio",
                "stake_amount",
                "initial_stop_loss_ratio",
            ]
        ).astype({"profit_abs": float, "stake_amount": float})
    for col in ("open_date", "close_date"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df.sort_values("close_date").reset_index(drop=True)


def trade_metrics(
    trades: pd.DataFrame,
    start_balance: float,
    start: pd.Timestamp,
    end: pd.Timestamp,
    closes: Mapping[str, pd.Series] | None = None,
) -> dict:
    """The bench's per-fold and aggregate figures. With `closes` (the traded pairs' candle closes):
    `sharpe` and `sortino` from the daily returns of equity marked to market (what the deploy gate's
    thresholds mean; `RATIO_BASIS`), freqtrade's per-trade figures beside them as `sharpe_freqtrade`
    and `sortino_freqtrade` (their scale moves with trades per day), and the `daily_returns`. Calmar,
    account drawdown, win rate and profit factor (None when no trade lost) as `freqtrade backtesting`
    computes them."""
    out = _trade_metrics(trades, start_balance, start, end)
    if closes is not None:
        returns = daily_returns(trades, closes, start_balance, start, end)
        out["sharpe_freqtrade"], out["sortino_freqtrade"] = out["sharpe"], out["sortino"]
        out["sharpe"], out["sortino"] = ratios_from_daily(returns)
        out["daily_returns"] = [float(r) for r in returns]
        out["ratio_basis"] = RATIO_BASIS
    return out


def _trade_metrics(trades: pd.DataFrame, start_balance: float, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    n = len(trades)
    if n == 0:
        return {
            "trades": 0,
            "profit_abs": 0.0,
            "profit_pct": 0.0,
            "sharpe": 0.0,
            "sortino": 0.0,
            "calmar": 0.0,
            "max_drawdown": 0.0,
            "win_rate": 0.0,
            "profit_factor": None,
            "days": max(1, (end - start).days),
        }
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
        "max_drawdown": float(
            fm.calculate_max_drawdown(
                trades, value_col="profit_abs", starting_balance=start_balance
            ).relative_account_drawdown
        ),
        "win_rate": float((trades.profit_abs > 0).mean()),
        "profit_factor": wins / losses if losses > 0 else None,
        "days": max(1, (end - start).days),
    }


def marked_equity(trades: pd.DataFrame, closes: Mapping[str, pd.Series], start_balance: float) -> pd.Series:
    """Equity at every candle close (index: close time, UTC): realized profits of the trades closed by
    then plus each open trade at that close, fees as freqtrade's `calc_profit` charges them."""
    missing = sorted(set(trades.pair) - set(closes))
    if missing:
        raise ValueError(f"no candles for {', '.join(missing)}: cannot mark their trades to market")
    # no candles (a fold without trades loads none): an empty grid that still compares with UTC times
    grid = (
        pd.DatetimeIndex(sorted(set().union(*(s.index for s in closes.values()))))
        if closes
        else pd.DatetimeIndex([], tz="UTC")
    )
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


def daily_returns(
    trades: pd.DataFrame, closes: Mapping[str, pd.Series], start_balance: float, start: pd.Timestamp, end: pd.Timestamp
) -> pd.Series:
    """Day-over-day returns of the marked-to-market equity over [start, end): each UTC day's last
    value, the day before `start` worth the starting balance (so the first day counts too)."""
    eq = marked_equity(trades, closes, start_balance)
    eq = eq[(eq.index > start) & (eq.index <= end)]
    before = pd.Series([start_balance], index=pd.DatetimeIndex([start - pd.Timedelta(milliseconds=1)]))
    days = pd.concat([before, eq]).resample("1D").last()
    days = days.reindex(
        pd.date_range(days.index[0], (end - pd.Timedelta(milliseconds=1)).normalize(), freq="1D")
    ).ffill()
    return days.pct_change().dropna()


def ratios_from_daily(returns: Sequence[float]) -> tuple[float, float | None]:
    """(Sharpe, Sortino) of daily returns with freqtrade's own `calculate_*_from_balance`. Where freqtrade
    answers -100 for a zero denominator: Sharpe 0.0 for fewer than two days or no variation, Sortino
    None with fewer than two distinct losing days (no downside spread: unbounded, not "not optimal")."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 2 or np.std(r) == 0:
        return 0.0, 0.0 if len(r) < 2 or np.mean(r) <= 0 else None
    dates = pd.date_range("2000-01-01", periods=len(r) + 1, freq="1D", tz="UTC")
    balance = pd.DataFrame({"date": dates, "total_quote": np.concatenate([[1.0], np.cumprod(1.0 + r)])})
    sortino = float(fm.calculate_sortino_from_balance(balance)) if len(set(r[r < 0])) >= 2 else None
    return float(fm.calculate_sharpe_from_balance(balance)), sortino


def closes_by_close_time(candles: Mapping[str, pd.DataFrame], timeframe: str) -> dict[str, pd.Series]:
    """freqtrade OHLCV frames (`date` = open time) as close prices indexed by each candle's close time."""
    from freqtrade.exchange import timeframe_to_minutes

    step = pd.Timedelta(minutes=timeframe_to_minutes(timeframe))
    return {
        pair: pd.Series(
            df["close"].to_numpy(float), index=pd.DatetimeIndex(pd.to_datetime(df["date"], utc=True) + step)
        )
        for pair, df in candles.items()
    }


def load_closes(datadir, pairs: list[str], timeframe: str) -> dict[str, pd.Series]:
    """The traded pairs' closes from a freqtrade datadir (feather), as `limit_violations` takes them."""
    from freqtrade.data.history import load_data

    return closes_by_close_time(load_data(datadir, timeframe, sorted(set(pairs)), fill_up_missing=False), timeframe)


def mean_interval(values: Sequence[float | None], confidence: float = 0.95) -> dict:
    """Mean, standard error and the two-sided Student-t interval at `confidence` of the finite values
    (no interval below two of them)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": None, "se": None, "interval": None}
    if n < 2:
        return {"n": 1, "mean": float(v[0]), "se": None, "interval": None}
    se = float(v.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return {"n": n, "mean": float(v.mean()), "se": se, "interval": [float(v.mean()) - half, float(v.mean()) + half]}
