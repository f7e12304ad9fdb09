"""The comparison with the backtest while a session runs (simulation.run.live): figures at time t from
the trades both sides opened before t, the exporter, the companion's /comparison."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from cryptobot_ops.companion.bot import live_comparison_text
from simulation.gateway.process import free_port
from simulation.run.live import LiveComparison, backtest_frame, figures

TF = 60_000


def _bt(pair, open_c, close_c, rate, profit):
    return {"pair": pair, "open_timestamp": open_c * TF, "close_timestamp": close_c * TF, "open_rate": rate,
            "profit_abs": profit}  # fmt: skip


def _bot(tid, pair, open_ms, close_ms, rate, profit, orders):
    return {"trade_id": tid, "pair": pair, "open_timestamp": open_ms, "close_timestamp": close_ms,
            "open_rate": rate, "close_profit_abs": profit, "is_open": close_ms is None,
            "orders": [{"amount": a, "filled": f} for a, f in orders]}  # fmt: skip


def test_figures_at_t_use_what_both_sides_opened_before_t():
    bt = backtest_frame(
        [
            _bt("BTC/USDT", 10, 20, 100.0, 5.0),
            _bt("ETH/USDT", 30, 40, 10.0, -2.0),
            _bt("BTC/USDT", 80, 90, 100.0, 7.0),  # after t: not yet
        ]
    )
    raw = [
        _bot(1, "BTC/USDT", 10 * TF + 1_000, 21 * TF, 101.0, 4.0, [(1.0, 1.0), (1.0, 1.0)]),  # matches the first
        _bot(2, "ETH/USDT", 45 * TF, None, 10.0, 0.0, [(2.0, 1.0)]),  # 15 candles late: extra, partly filled
    ]
    v = figures(50 * TF, 0, 100 * TF, TF, 1000.0, bt, raw)
    assert (v["trades_backtest"], v["trades_bot"], v["trades_matched"]) == (2, 2, 1)
    assert v["pnl_gap_ratio"] == pytest.approx((4.0 - (5.0 - 2.0)) / 1000.0)
    assert v["signal_precision"] == pytest.approx(0.5) and v["signal_recall"] == pytest.approx(0.5)
    assert v["entry_price_gap_bps"] == pytest.approx(100.0)
    assert v["fill_ratio"] == pytest.approx(3.0 / 4.0) and v["win_rate_last_100"] == 1.0
    assert v["elapsed_ratio"] == pytest.approx(0.5)
    early = figures(5 * TF, 0, 100 * TF, TF, 1000.0, bt, [])  # nothing yet on either side
    assert early["trades_backtest"] == early["trades_matched"] == 0 and math.isnan(early["signal_precision"])
    relay = figures(50 * TF, 0, 100 * TF, TF, 1000.0, None, raw)  # no backtest: the bot's own figures
    assert relay["trades_bot"] == 2 and math.isnan(relay["trades_matched"])


def test_the_exporter_and_the_companion_show_the_same_figures(tmp_path):
    port = free_port()
    live = LiveComparison(tmp_path / "live_comparison.json", port)
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    before = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert math.isnan(before["sim_live_trades_matched"]), "unknown before the first candle: never a plausible 0"
    assert "No live comparison" in live_comparison_text(tmp_path)
    values = {"time_ms": int(pd.Timestamp("2024-03-01 12:00", tz="UTC").value // 1_000_000), "elapsed_ratio": 0.5,
              "trades_backtest": 4, "trades_bot": 3, "trades_matched": 3, "pnl_gap_ratio": -0.0012,
              "signal_precision": 1.0, "signal_recall": 0.75, "entry_price_gap_bps": 3.2, "fill_ratio": 1.0,
              "rolling_sharpe_30d": math.nan, "win_rate_last_100": 2 / 3}  # fmt: skip
    live.publish(values)
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    after = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert after["sim_live_trades_matched"] == 3 and after["sim_live_pnl_gap_ratio"] == pytest.approx(-0.0012)
    assert json.loads((tmp_path / "live_comparison.json").read_text())["rolling_sharpe_30d"] is None
    assert live_comparison_text(tmp_path).splitlines() == [
        "Live comparison at 2024-03-01 12:00 (session 50% done)",
        "trades: backtest 4, bot 3, matched 3",
        "realized PnL gap (bot - backtest): -0.12% of the wallet",
        "signals: precision 100%, recall 75%",
        "entry price gap 3.2 bps, fill ratio 100%",
        "30-day Sharpe n/a, win rate (last 100) 67%",
    ]


def test_simulation_monitoring_dashboard_queries_the_live_figures(tmp_path):
    import re

    from simulation.paths import REPO_ROOT

    exported = {m.name for m in LiveComparison(tmp_path / "x.json").registry.collect()}
    dash = json.loads((REPO_ROOT / "docker" / "grafana" / "dashboards" / "cryptobot-simulation.json").read_text())
    assert dash["title"].endswith("simulation monitoring") and dash["panels"]
    shown = set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            names = set(re.findall(r"\b(sim_live_[a-z0-9_]+)\b", target["expr"]))
            assert names and names <= exported, (panel["title"], names - exported)
            shown |= names
    assert shown == exported, exported - shown  # every live figure has a panel
