"""The comparison with the backtest while a session runs: rolling figures at each candle close.

The backtest of a replayed window is known before the session starts (same market, same data), so at
session time t the bot's trades so far are compared with the backtest's trades that opened before t:
the same one-to-one matching and signal matching as the final report (`compare.match_trades`,
`discrepancy.match_signals`), the realized PnL gap over the wallet, the entry price gap of matched
trades, the fill ratio of the bot's orders, the 30-day Sharpe of daily realized PnL and the win rate
of the last 100 trades. A relayed session is backtested on its recording, which exists only after it
ends: while it runs, its figures are the bot's own.

Exported as `sim_live_*` gauges on the session's exporter (`--metrics-port`, the "simulation
monitoring" Grafana dashboard) and written to the bot's `user_data/live_comparison.json` (the
companion's Telegram `/comparison`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from cryptobot_ops.monitoring import daily_sharpe
from simulation.run.compare import match_trades
from simulation.run.discrepancy import match_signals

FIGURES = {
    "elapsed_ratio": "Share of the session window done",
    "trades_backtest": "Backtest trades opened so far",
    "trades_bot": "Bot trades opened so far",
    "trades_matched": "Backtest trades the bot matched one-to-one so far",
    "pnl_gap_ratio": "Bot minus backtest realized PnL so far, over the wallet",
    "signal_precision": "Bot entries that match a backtest entry (so far)",
    "signal_recall": "Backtest entries the bot matched (so far)",
    "entry_price_gap_bps": "Mean entry price of matched trades, bot vs backtest (bps, adverse positive)",
    "fill_ratio": "Filled share of the bot's orders (amount)",
    "rolling_sharpe_30d": "Annualized Sharpe of the bot's daily realized PnL, last 30 days",
    "win_rate_last_100": "Winning share of the bot's last 100 closed trades",
}
TRADE_COLUMNS = ["id", "pair", "open_ms", "close_ms", "open_rate", "profit", "is_open"]


def bot_trades(raw: list[dict]) -> pd.DataFrame:
    """freqtrade's REST /trades records as the comparison's frame."""
    rows = [
        {
            "id": int(t["trade_id"]),
            "pair": t["pair"],
            "open_ms": int(t["open_timestamp"]),
            "close_ms": int(t["close_timestamp"]) if t.get("close_timestamp") else None,
            "open_rate": float(t["open_rate"]),
            "profit": float(t.get("close_profit_abs") or 0.0),
            "is_open": bool(t["is_open"]),
        }
        for t in raw
    ]
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def fill_ratio(raw: list[dict]) -> float:
    ordered = filled = 0.0
    for t in raw:
        for o in t.get("orders") or []:
            ordered += float(o.get("amount") or 0.0)
            filled += float(o.get("filled") or 0.0)
    return filled / ordered if ordered > 0 else math.nan


def figures(
    now_ms: int, start_ms: int, end_ms: int, tf_ms: int, wallet: float, bt: pd.DataFrame | None, raw: list[dict]
) -> dict:
    """The rolling figures at `now_ms`. `bt`: the backtest's trades (open_ms, close_ms, pair, open_rate,
    profit) or None (a relayed market); `raw`: the bot's trades from its REST API."""
    sim = bot_trades(raw)
    sim = sim[(sim.open_ms >= start_ms) & (sim.open_ms < now_ms)]
    closed = sim[~sim.is_open & sim.close_ms.notna()].sort_values("close_ms")
    out: dict = {
        "time_ms": int(now_ms),
        "elapsed_ratio": min(1.0, max(0.0, (now_ms - start_ms) / (end_ms - start_ms))),
        "trades_bot": len(sim),
        "fill_ratio": fill_ratio(raw),
        "win_rate_last_100": float((closed.profit.tail(100) > 0).mean()) if len(closed) else math.nan,
        "rolling_sharpe_30d": daily_sharpe(pd.to_datetime(closed.close_ms, unit="ms", utc=True), closed.profit, wallet),
    }
    if bt is None:
        return out | {k: math.nan for k in FIGURES if k not in out}
    seen = bt[bt.open_ms < now_ms]
    table = match_trades(seen.assign(exit_reason=None), sim.assign(exit_reason=None), tf_ms)
    matched = table.dropna(subset=["bt_open_ms", "sim_id"])
    signals = match_signals(
        seen.rename(columns={"open_ms": "time_ms"})[["pair", "time_ms"]],
        sim.rename(columns={"open_ms": "time_ms"})[["pair", "time_ms"]],
        tf_ms,
    )
    bt_realized = float(seen[seen.close_ms <= now_ms].profit.sum())
    gap = (
        ((matched.sim_open_rate.astype(float) / matched.bt_open_rate.astype(float) - 1.0) * 1e4).mean()
        if len(matched)
        else math.nan
    )
    return out | {
        "trades_backtest": len(seen),
        "trades_matched": len(matched),
        "pnl_gap_ratio": (float(closed.profit.sum()) - bt_realized) / wallet,
        "signal_precision": math.nan if signals.precision is None else signals.precision,
        "signal_recall": math.nan if signals.recall is None else signals.recall,
        "entry_price_gap_bps": float(gap),
    }


class LiveComparison:
    """The gauges and the file; `update` at each candle close."""

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = Path(path)
        self.registry = CollectorRegistry()
        self.gauges = {k: Gauge(f"sim_live_{k}", help_, registry=self.registry) for k, help_ in FIGURES.items()}
        for g in self.gauges.values():
            g.set(math.nan)
        if port:
            start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def publish(self, values: dict) -> None:
        for k, g in self.gauges.items():
            g.set(float(values.get(k, math.nan)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: (None if _nan(v) else v) for k, v in values.items()}))
        tmp.replace(self.path)


def _nan(v) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def backtest_frame(bt_trades: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "pair": t["pair"],
                "open_ms": int(t["open_timestamp"]),
                "close_ms": int(t["close_timestamp"]),
                "open_rate": float(t["open_rate"]),
                "profit": float(t["profit_abs"]),
            }
            for t in bt_trades
        ],
        columns=["pair", "open_ms", "close_ms", "open_rate", "profit"],
    ).astype({"open_ms": np.int64, "close_ms": np.int64})
