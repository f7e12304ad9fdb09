"""Indicator diff: the strategy's analyzed candles in the backtest against the bot's own.

Recursive indicators (EMA, ADX, RSI ...) and anything that depends on how much history a run
loaded differ between a backtest and a live bot unless the startup candles suffice; freqtrade users
meet it as "my dry-run entered elsewhere". Both sides come from freqtrade itself:
- the backtest's signal candles (`backtesting --export signals`, read with freqtrade's
  `load_backtest_analysis_data`): the analyzed row behind every backtest entry;
- the bot's analyzed dataframe at the window's end (its REST `/pair_candles`).
Joined on (pair, candle), every numeric column both hold is compared, and the bot's own entry
signal on those candles says whether it would have entered there too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OHLCV = {"date", "open", "high", "low", "close", "volume", "__date_ts"}


def bot_frame(payload: dict) -> pd.DataFrame:
    """A `/pair_candles` answer as a dataframe with a UTC `date`."""
    df = pd.DataFrame(payload.get("data") or [], columns=payload.get("columns") or [])
    if "__date_ts" in df:
        df["date"] = pd.to_datetime(df["__date_ts"], unit="ms", utc=True)
    elif "date" in df:
        df["date"] = pd.to_datetime(df["date"], utc=True)
    return df


def _compare(bt: pd.DataFrame, bot: pd.DataFrame, rtol: float, atol: float) -> dict:
    both = bt.merge(bot, on="date", suffixes=("_bt", "_bot"))
    cols = [
        c
        for c in bt.columns
        if c in bot.columns
        and c not in OHLCV
        and pd.api.types.is_numeric_dtype(bt[c])
        and pd.api.types.is_numeric_dtype(bot[c])
    ]
    differing = {}
    for c in cols:
        a, b = both[f"{c}_bt"].to_numpy(float), both[f"{c}_bot"].to_numpy(float)
        off = ~(np.isclose(a, b, rtol=rtol, atol=atol) | (np.isnan(a) & np.isnan(b)))
        if off.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.abs(a - b) / np.maximum(np.abs(a), atol)
            differing[c] = {
                "candles": int(off.sum()),
                "max_relative": float(np.nanmax(rel[off])) if np.isfinite(rel[off]).any() else None,
            }
    out = {
        "signal_candles": len(bt),
        "in_bot_frame": len(both),
        "columns_compared": len(cols),
        "columns_differing": differing,
    }
    if "enter_long" in bot.columns and len(both):
        col = "enter_long_bot" if "enter_long_bot" in both else "enter_long"
        out["bot_signalled_too"] = float((both[col].fillna(0) == 1).mean())
    return out


def indicator_diff(
    bt_signals: dict[str, pd.DataFrame], bot: dict[str, pd.DataFrame], rtol: float = 1e-6, atol: float = 1e-9
) -> dict:
    """Per pair and overall over the backtest's entry-signal candles the bot's frame still holds."""
    pairs = {}
    for pair, sig in bt_signals.items():
        if sig is None or not len(sig) or pair not in bot or "date" not in bot[pair]:
            continue  # the bot had no analyzed frame for the pair (e.g. it had not analysed it yet)
        sig = sig.assign(date=pd.to_datetime(sig["date"], utc=True))
        pairs[pair] = _compare(sig, bot[pair], rtol, atol)
    if not pairs:
        return {"signal_candles": 0, "note": "no backtest entry candles in the bot's analyzed frame"}
    columns: dict[str, int] = {}
    for r in pairs.values():
        for c, d in r["columns_differing"].items():
            columns[c] = columns.get(c, 0) + d["candles"]
    reproduced = [(r["bot_signalled_too"], r["in_bot_frame"]) for r in pairs.values() if "bot_signalled_too" in r]
    n = sum(w for _, w in reproduced)
    return {
        "signal_candles": sum(r["signal_candles"] for r in pairs.values()),
        "in_bot_frame": sum(r["in_bot_frame"] for r in pairs.values()),
        "columns_differing": dict(sorted(columns.items(), key=lambda kv: -kv[1])),
        "bot_signalled_too": sum(v * w for v, w in reproduced) / n if n else None,
        "pairs": pairs,
    }


def bot_signalled(bot: dict[str, pd.DataFrame], pair: str, candle_ms: int) -> bool | None:
    """Did the bot's analyzed frame show an entry signal on the candle that opens at `candle_ms`? None
    when the frame does not hold that candle."""
    df = bot.get(pair)
    if df is None or "enter_long" not in df or "date" not in df:
        return None
    row = df[df["date"] == pd.Timestamp(candle_ms, unit="ms", tz="UTC")]
    return None if not len(row) else bool(row["enter_long"].fillna(0).iloc[-1] == 1)
