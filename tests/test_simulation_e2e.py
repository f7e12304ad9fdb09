"""`python -m simulation.run` end to end: stock freqtrade on the accelerated simulated market,
the backtest of the same window, comparison.json, the HTML report in headless Chromium; paper mode
under injected faults with a kill -9 of the bot, reconciled against the venue."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulation.paths import REPO_ROOT
from simulation.run.browser import check_page

pytestmark = pytest.mark.slow
CONTRACT = {
    "signal_consistency",
    "pnl_deviation",
    "equity_correlation",
    "mean_slippage_bps",
    "p99_latency_ms",
    "trades_backtest",
    "trades_sim",
}


def _run(out, *args) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "simulation.run",
        "--strategy",
        "ReferenceStrategy",
        "--synthetic",
        "--out",
        str(out),
        *args,
    ]
    proc = subprocess.run(cmd, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "comparison.json").read_text())


def test_accelerated_dry_run_comparison_and_report(tmp_path):
    out = tmp_path / "dry"
    result = _run(out, "--mode", "dry-run", "--timerange", "20240301T1000-20240301T1600")
    assert CONTRACT <= set(result)
    session = result["session"]
    assert session["effective_speed"] >= 30, "accelerated: at least 30x the wall clock"
    assert session["clock"] == "compute" and session["speed"] == 1
    compute, clock = session["compute"], session["clock_report"]
    assert compute["bot_cpu_s"] > 0 and compute["gateway_cpu_s"] > 0 and compute["keeps_up"] is True
    per = compute["bot_cpu_per_candle_s"]
    assert per["n"] >= 60 and 0 < per["p50"] <= per["p90"] <= per["max"], per
    assert clock["jumps"] > 100 and 0.5 < clock["skipped_share"] < 1, clock
    assert result["trades_sim"] >= 1 and result["trades_backtest"] >= 1
    assert 10 <= result["p99_latency_ms"] <= 200, "the latency model's clip"
    # consistency is the F1 of precision and recall (an always-signalling bot cannot score well)
    p, r = result["signal_precision"], result["signal_recall"]
    assert result["signal_consistency"] == pytest.approx(2 * p * r / (p + r) if p and r else 0.0)
    # the discrepancy report's invariants on a real session
    gap, matched = result["gap"], result["trades_matched"]
    assert abs(gap["waterfall"]["residual"]) < 1e-6, gap["waterfall"]
    assert gap["waterfall"]["total"] == pytest.approx(gap["pnl_sim"] - gap["pnl_backtest"], abs=1e-6)
    assert (
        matched + gap["missed_unfilled"] + gap["missed_no_signal"] + gap["reentries_after_cancel"]
        == result["trades_backtest"]
    )
    assert sum(gap["missed_not_attempted"].values()) == gap["missed_no_signal"]
    assert matched + gap["extra_trades"] + gap["reentries_after_cancel"] == result["trades_sim"]
    assert result["per_trade_difference"]["n"] == matched and result["verdict"]
    rows = {r["setting"]: r for r in result["comparability"]}
    assert not rows["strategy file sha256"]["differs"] and not rows["timeframe"]["differs"]
    assert result["latency_ms"]["service_wall_ms_measured"]["n"] > 0
    path = result["assumptions"]["path"]
    assert path.startswith("random (seed 0); pinned to each finest candle's final OHLC"), path  # the stated bound
    assert result["assumptions"]["path_seed"] == 0
    assert result["assumptions"]["limit_fills"].startswith("freqtrade dry-run")
    # every filled order has a price, a slippage against its signal candle and a fill ratio
    ex = pd.read_csv(out / "executions.csv")
    filled = ex[ex.filled > 0]
    assert len(filled) >= 1
    assert np.isfinite(filled.slippage_bps).all() and filled.fill_ratio.between(0, 1).all()
    assert (filled.signal_to_order_ms >= 0).all(), "orders come after their signal candle closed"
    # /metrics as scraped at the end of the session is valid Prometheus text
    fams = {f.name: f for f in text_string_to_metric_families((out / "metrics.prom").read_text())}
    count = sum(s.value for s in fams["sim_request_latency_ms"].samples if s.name.endswith("_count"))
    requests_logged = len(pd.read_csv(out / "requests.csv"))
    assert count >= 100 and count <= requests_logged
    # the HTML report renders in Chromium with its charts and no console errors
    page = check_page(out / "report.html", screenshot=out / "report.png")
    assert page.errors == [], page.errors
    assert page.dom.count('class="main-svg"') >= 4, "plotly drew the charts"
    assert 'id="trades"' in page.dom and "What explains the gap" in page.dom
    assert "Intra-candle path: random (seed 0)" in page.dom and 'id="compute"' in page.dom
    assert "What differs by construction" in page.dom
    assert result["predictions"] == {"skipped": "not a FreqAI strategy"}
    # the backtest's entry candles against the bot's analyzed frame: every indicator column compared
    ind = result["indicators"]
    assert 1 <= ind["in_bot_frame"] <= ind["signal_candles"] <= result["trades_backtest"], ind
    assert all(p["columns_compared"] > 0 for p in ind["pairs"].values()) and 0 <= ind["bot_signalled_too"] <= 1
    assert 'id="indicators"' in page.dom
    assert (out / "report.png").stat().st_size > 20_000
    # the comparison while it ran (issue 36 §4): the last candle close before the window's end, from
    # the same backtest (run before the session, reused by the analysis: one backtest)
    live = json.loads((out / "user_data" / "live_comparison.json").read_text())
    end_ms = int(pd.Timestamp("2024-03-01 16:00", tz="UTC").value // 1_000_000)
    assert end_ms - 2 * 300_000 <= live["time_ms"] < end_ms and live["elapsed_ratio"] > 0.95, live
    assert live["trades_backtest"] <= result["trades_backtest"] and live["trades_bot"] <= result["trades_sim"]
    assert live["trades_matched"] <= live["trades_backtest"] and live["trades_matched"] <= result["trades_matched"] + 1
    assert len(list((out / "backtest").glob("backtest-result-*.zip"))) == 1, "one backtest"


def test_paper_mode_survives_faults_and_kill9(tmp_path):
    out = tmp_path / "paper"
    faults = "5xx=0.03,429=0.02,timeout=0.01,stale_book=0.1,drop=0.02"
    result = _run(
        out,
        "--mode",
        "paper",
        "--stoploss-on-exchange",
        "--timerange",
        "20240301T1000-20240301T1800",
        "--faults",
        faults,
        "--kill-bot-at",
        "0.5",
    )
    assert result["session"]["bot_restarts"] == 1
    injected = result["latency_ms"]["faults"]
    assert {"5xx", "429", "drop", "stale_book"} <= set(injected), injected
    recon = result["reconciliation"]
    assert recon["venue_orders"] >= 2, "the bot traded on the venue"
    assert recon["ok"], recon
    assert recon["missing_in_db"] == [] and recon["missing_on_venue"] == [] and recon["duplicate_client_ids"] == []
    venue = json.loads((out / "venue_orders.json").read_text())
    assert any(o["trades"] for o in venue["orders"]), "orders filled at the venue"
    log = (out / "freqtrade.log").read_text()
    # restarted (freqtrade exits when injected faults defeat its market loading: the supervisor retries)
    assert log.count("Starting worker") == 2 + result["session"]["failed_starts"], "the killed bot was restarted"
    assert log.count("Could not load markets, therefore cannot start") == result["session"]["failed_starts"]
