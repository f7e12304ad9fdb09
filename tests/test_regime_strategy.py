"""Regimes inside stock freqtrade: a strategy gates entries on them, with no lookahead bias."""

from __future__ import annotations

import csv

import pytest
from freqtrade.data.btanalysis import load_backtest_analysis_data

from simulation.freqtrade_runner import latest_backtest_stats, run_freqtrade
from simulation.gateway import GatewayProcess, write_overlay

pytestmark = pytest.mark.slow
STRATEGY = "RegimeGatedReference"
PAIRS = ["BTC/USDT", "ETH/USDT"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regime_strategy")
    with GatewayProcess(["--synthetic", "--seed", "5", "--days", "150"], log_path=tmp / "gw.log") as gw:
        overlay = write_overlay(tmp / "exchange.json", gw.url)
        base = ["--config", "config/backtest.json", "--config", str(overlay), "--datadir", str(tmp / "data")]
        run_freqtrade(
            ["download-data", *base, "--pairs", *PAIRS, "--timeframes", "5m", "1h", "--timerange", "20240101-20240530"],
            tmp / "download.log",
        )
        yield tmp, base


def test_backtest_enters_only_in_allowed_regimes(setup):
    tmp, base = setup
    results = tmp / "results"
    results.mkdir()
    run_freqtrade(
        [
            "backtesting",
            *base,
            "--strategy",
            STRATEGY,
            "--pairs",
            *PAIRS,
            "--timerange",
            "20240301-20240529",
            "--export",
            "signals",
            "--backtest-directory",
            str(results),
            "--cache",
            "none",
        ],
        tmp / "bt.log",
    )
    stats = latest_backtest_stats(results)["strategy"][STRATEGY]
    assert stats["total_trades"] > 20
    signals = load_backtest_analysis_data(results, "signals")[STRATEGY]
    seen = set()
    for pair, df in signals.items():
        assert {"regime_1h", "regime_p_trending_bull_1h", "regime_p_high_volatility_1h"} <= set(df.columns)
        seen |= set(df["regime_1h"])
        probs = df[[c for c in df.columns if c.startswith("regime_p_")]].sum(axis=1)
        assert ((probs - 1).abs() < 1e-9).all(), pair
        now = df[[f"regime_now_p_{r}" for r in ("trending_bull", "trending_bear", "sideways", "high_volatility")]]
        assert ((now.sum(axis=1) - 1).abs() < 1e-9).all() and df["regime_now"].notna().all(), pair  # every 5m candle
    assert seen and seen <= {"trending_bull", "sideways"}, seen


def test_lookahead_analysis_finds_no_bias(setup):
    tmp, base = setup
    out = tmp / "lookahead.csv"
    run_freqtrade(
        [
            "lookahead-analysis",
            *base,
            "--strategy",
            STRATEGY,
            "--pairs",
            *PAIRS,
            "--timerange",
            "20240301-20240529",
            "--minimum-trade-amount",
            "10",
            "--targeted-trade-amount",
            "20",
            "--lookahead-analysis-exportfilename",
            str(out),
        ],
        tmp / "lookahead.log",
    )
    rows = list(csv.DictReader(out.open()))
    assert rows and all(r["has_bias"] == "False" for r in rows), rows
    assert int(rows[0]["total_signals"]) >= 10


def test_recursive_analysis_regimes_stable_at_strategy_startup(setup):
    tmp, base = setup
    run = run_freqtrade(
        [
            "recursive-analysis",
            *base,
            "--strategy",
            STRATEGY,
            "--pairs",
            "BTC/USDT",
            "--timerange",
            "20240401-20240529",
        ],
        tmp / "recursive.log",
    )
    table = [ln for ln in run.log_path.read_text().splitlines() if "│" in ln or "┃" in ln]
    header = [c.strip() for c in table[0].strip("┃").split("┃")]
    col = next(i for i, h in enumerate(header) if "from strategy" in h)
    checked = 0
    for line in table[1:]:
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0].startswith("regime"):
            assert cells[col] in ("-", "0.000%", "-0.000%"), line
            checked += 1
    assert checked >= 4
