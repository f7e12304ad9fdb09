"""Execution records of a run, from freqtrade's own database (and the venue ledger in paper mode).

Signal time: freqtrade acts on the last *closed* candle, so an order placed at time t answers the
candle that closed at floor(t / timeframe) * timeframe; slippage is measured against that candle's
close (adverse positive, bps), the price a backtest would have used.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from simulation.marketdata.store import CandleStore
from simulation.timeframes import interval_ms


def _ms(series: pd.Series) -> pd.Series:
    ts = pd.to_datetime(series, utc=True, format="mixed")
    out = pd.Series(np.nan, index=series.index)
    ok = ts.notna()
    out[ok] = ts[ok].dt.as_unit("ms").astype("int64").astype(float)
    return out


def load_db(db_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trades, orders) tables of a freqtrade sqlite database."""
    if not Path(db_path).exists():
        raise FileNotFoundError(f"no bot database at {db_path}")
    with sqlite3.connect(db_path) as con:
        trades = pd.read_sql_query("select * from trades", con)
        orders = pd.read_sql_query("select * from orders", con)
    for col in ("open_date", "close_date"):
        trades[col + "_ms"] = _ms(trades[col])
    for col in ("order_date", "order_filled_date", "order_update_date"):
        orders[col + "_ms"] = _ms(orders[col])
    return trades, orders


EXECUTION_COLUMNS = [
    "trade_id",
    "pair",
    "side",
    "type",
    "tag",
    "status",
    "signal_ms",
    "order_ms",
    "fill_ms",
    "signal_to_order_ms",
    "signal_price",
    "limit_price",
    "fill_price",
    "slippage_bps",
    "amount",
    "filled",
    "fill_ratio",
    "exit_reason",
]


def executions(orders: pd.DataFrame, trades: pd.DataFrame, store: CandleStore, timeframe: str) -> pd.DataFrame:
    """One row per order: signal time, order time, fill price, slippage vs the signal close, fill ratio.
    A session without orders still gets the columns, so its executions.csv reads as zero orders."""
    tf = interval_ms(timeframe)
    rows = []
    by_id = trades.set_index("id")
    for o in orders.itertuples():
        order_ms = int(o.order_date_ms)
        signal_close_ms = (order_ms // tf) * tf  # close time (exclusive) of the candle acted on
        candle = store.candles(o.ft_pair, timeframe, signal_close_ms - 1, start=signal_close_ms - tf, limit=1)
        ref = candle[0].close if candle else np.nan
        filled = float(o.filled or 0.0)
        avg = float(o.average) if o.average and filled > 0 else np.nan
        sign = 1.0 if o.ft_order_side == "buy" else -1.0
        trade = by_id.loc[o.ft_trade_id] if o.ft_trade_id in by_id.index else None
        rows.append(
            {
                "trade_id": o.ft_trade_id,
                "pair": o.ft_pair,
                "side": o.ft_order_side,
                "type": o.order_type,
                "tag": o.ft_order_tag,
                "status": o.status,
                "signal_ms": signal_close_ms,
                "order_ms": order_ms,
                "fill_ms": o.order_filled_date_ms,
                "signal_to_order_ms": order_ms - signal_close_ms,
                "signal_price": ref,
                "limit_price": o.price,
                "fill_price": avg,
                "slippage_bps": sign * (avg / ref - 1.0) * 1e4 if ref and np.isfinite(avg) else np.nan,
                "amount": float(o.amount or 0.0),
                "filled": filled,
                "fill_ratio": filled / float(o.amount) if o.amount else np.nan,
                "exit_reason": None if trade is None else trade["exit_reason"],
            }
        )
    return pd.DataFrame(rows, columns=EXECUTION_COLUMNS)


def stoploss_reaction(execs: pd.DataFrame, trades: pd.DataFrame, store: CandleStore, timeframe: str) -> pd.DataFrame:
    """For each stop-loss exit: when the price path first reached the stop, and when the exit order
    reached the venue — both in simulated time."""
    rows = []
    for t in trades.itertuples():
        if not isinstance(t.exit_reason, str) or "stop" not in t.exit_reason:
            continue
        stop = float(t.stop_loss)
        exits = execs[(execs.trade_id == t.id) & (execs.side == "sell")]
        if exits.empty:
            continue
        order_ms = int(exits.order_ms.min())
        trigger = first_touch(store, t.pair, int(t.open_date_ms), order_ms + interval_ms(timeframe), stop)
        rows.append(
            {
                "trade_id": t.id,
                "pair": t.pair,
                "stop": stop,
                "trigger_ms": trigger,
                "order_ms": order_ms,
                "reaction_ms": None if trigger is None else order_ms - trigger,
            }
        )
    return pd.DataFrame(rows)


def first_touch(store: CandleStore, pair: str, t0: int, t1: int, level: float, step_ms: int = 100) -> int | None:
    """First time in [t0, t1] the replayed price path reaches `level` from above (100 ms resolution)."""
    lo, _, _ = store.traded_range(pair, t0, t1)
    if lo > level:
        return None
    a, b = t0, t1  # bisect on "has the path been at or below level by time x"
    while b - a > step_ms:
        mid = (a + b) // 2
        if store.traded_range(pair, t0, mid)[0] <= level:
            b = mid
        else:
            a = mid
    return b


def venue_stop_reaction(venue: dict, store: CandleStore) -> list[float]:
    """Paper mode, stops resting on the venue: ms from the path reaching the stop price to the
    venue's first fill of the stop order (simulated time)."""
    out = []
    for o in venue["orders"]:
        if o["type"] != "STOP_LOSS_LIMIT" or not o["trades"]:
            continue
        touch = first_touch(store, o["pair"], int(o["time"]), int(o["trades"][0]["time"]) + 1, float(o["stop_price"]))
        if touch is not None:
            out.append(float(o["trades"][0]["time"] - touch))
    return out


_SIGNAL = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ - freqtrade\.freqtradebot - INFO - "
    r"(Long|Short) signal found: about create a new trade for (\S+) with"
)


def entry_attempts(log_path: Path) -> pd.DataFrame:
    """Entry signals the bot acted on (freqtrade logs each before placing the order), including
    those whose order was later cancelled unfilled — freqtrade deletes such trades from its database."""
    rows = []
    if Path(log_path).exists():
        for line in Path(log_path).read_text(errors="replace").splitlines():
            if m := _SIGNAL.match(line):
                ts = pd.Timestamp(m.group(1), tz="UTC")  # the session runs with TZ=UTC
                rows.append({"pair": m.group(3), "time_ms": int(ts.value // 10**6)})
    return pd.DataFrame(rows, columns=["pair", "time_ms"])


def recording_coverage(
    store: CandleStore, pairs: list[str], timeframe: str, start_ms: int, end_ms: int, books_dir: Path | None = None
) -> dict:
    """How completely the relay recorded the window: the backtest over the recording can only be the
    bot's market where every candle it saw was recorded (a relay outage leaves a gap, reported here,
    never filled in)."""
    step = interval_ms(timeframe)
    expected = list(range(start_ms, end_ms - step + 1, step))  # candles that closed inside the window
    out: dict = {"timeframe": timeframe, "expected_per_pair": len(expected), "pairs": {}}
    for pair in pairs:
        have = {
            c.open_time
            for c in store.candles(pair, timeframe, None, start=start_ms, end=end_ms, limit=len(expected) + 1)
        }
        missing = [t for t in expected if t not in have]
        books = 0
        if books_dir is not None and (path := books_dir / f"{pair.replace('/', '_')}.jsonl").exists():
            with path.open() as fh:
                books = sum(1 for _ in fh)
        out["pairs"][pair] = {
            "recorded": len(expected) - len(missing),
            "missing": len(missing),
            "first_missing_ms": missing[0] if missing else None,
            "book_snapshots": books,
        }
    out["complete"] = all(p["missing"] == 0 for p in out["pairs"].values())
    return out
