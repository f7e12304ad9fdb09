"""The test bench: metric, Monte Carlo, limit and recommendation rules at their boundaries, and the
pipeline end to end on the synthetic market (real freqtrade backtests per fold and stress scenario),
sequential and on 2 Ray workers with identical results, its HTML report rendered in chromium."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptobot_ops.risk import RiskLimits
from simulation.freqtrade_runner import latest_backtest_stats
from simulation.paths import REPO_ROOT
from simulation.run.browser import check_page
from simulation.testbench.limits import limit_violations
from simulation.testbench.metrics import trade_metrics, trades_frame
from simulation.testbench.montecarlo import monte_carlo
from simulation.testbench.recommendation import MINIMUMS, TARGETS, recommend
from simulation.testbench.runner import (
    BenchSpec,
    fold_ranges,
    rerender,
    run_bench,
    sim_window,
    synthetic_start,
)

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def _trade(day: float, hours: float, profit: float, pair="BTC/USDT", stake=100.0, stop=0.05) -> dict:
    o = T0 + pd.Timedelta(days=day)
    return {
        "pair": pair,
        "open_date": o.isoformat(),
        "close_date": (o + pd.Timedelta(hours=hours)).isoformat(),
        "profit_abs": profit,
        "profit_ratio": profit / stake,
        "stake_amount": stake,
        "initial_stop_loss_ratio": -stop,
        "open_rate": 100.0,
        "amount": stake / 100.0,
    }


def _flat(price: float = 100.0, days: int = 10, **moves) -> dict[str, pd.Series]:
    """5m closes per pair, flat at `price` (then `moves`: pair -> [(day, price from then on)])."""
    grid = pd.date_range(T0, T0 + pd.Timedelta(days=days), freq="5min")
    out = {}
    for pair in ("BTC/USDT", "ETH/USDT"):
        s = pd.Series(price, index=grid)
        for day, px in moves.get(pair.split("/")[0], []):
            s[s.index >= T0 + pd.Timedelta(days=day)] = px
        out[pair] = s
    return out


def test_fold_ranges_are_contiguous_and_end_at_the_end():
    r = fold_ranges(pd.Timestamp("2024-04-30", tz="UTC"), 3, 10)
    assert r == ["20240331-20240410", "20240410-20240420", "20240420-20240430"]
    with pytest.raises(ValueError):
        fold_ranges(T0, 0, 10)


def test_long_synthetic_markets_end_before_today():
    # download-data stops at the current time: a 3-year market from 2024-01-01 would end in the future.
    today = pd.Timestamp("2026-11-26", tz="UTC")
    assert synthetic_start(120, today) == pd.Timestamp("2024-01-01", tz="UTC")
    start = synthetic_start(1210, today)
    assert start.day == 1 and start + 1210 * pd.Timedelta(days=1) < today
    assert synthetic_start(1210, today + pd.Timedelta(days=3)) == start, "stable within the month"


def test_report_only_needs_a_finished_bench(tmp_path):
    with pytest.raises(ValueError, match="run the bench"):
        rerender(tmp_path)


def test_simulated_window_is_the_latest_span_with_enough_trades():
    end = pd.Timestamp("2025-10-31", tz="UTC")
    busy = [_trade(5 + i * 0.05, 1, 1) for i in range(12)]  # 12 trades within a day, 25 days before the end
    quiet = [_trade(20 + i, 1, 1) for i in range(4)]  # later, but only one a day
    start, stop, n = sim_window([*busy, *quiet], 1.0, end)
    assert n >= 10 and stop - start == pd.Timedelta(days=1)
    assert all(start <= pd.Timestamp(t["open_date"]) and pd.Timestamp(t["close_date"]) <= stop for t in busy[-10:])
    assert stop < pd.Timestamp(quiet[0]["open_date"]), "the quiet later days do not hold 10 trades"
    # nothing reaches 10: the busiest span; no trades at all: the last day before the end
    assert sim_window(quiet, 1.0, end)[2] == 1 and sim_window(busy[:5], 1.0, end)[2] == 5
    assert sim_window([], 1.0, end) == (end - pd.Timedelta(days=1), end, 0)


def test_recommendation_names_a_comparison_with_too_few_trades():
    sim = {"trades_backtest": 4, "trades_sim": 5}
    rec = recommend(
        {"trades": 100, "sharpe": 3, "max_drawdown": 0.01, "win_rate": 0.6, "profit_factor": 2},
        {"p_breach_drawdown": 0},
        {
            "simulation": sim,
            "bt_sim_deviation": 0.001,
            "sim_paper_deviation": 0.001,
            "equity_correlation": 0.99,
            "signal_consistency": 1.0,
        },
        [],
    )
    assert rec["decision"] == "paper-trade longer"
    assert any("only 4 backtest trades in the simulated window" in r for r in rec["reasons"])


def test_trade_metrics_known_values():
    t = trades_frame([_trade(0, 2, 30), _trade(1, 2, -10), _trade(2, 2, 20), _trade(3, 2, -20)])
    m = trade_metrics(t, 1000.0, T0, T0 + pd.Timedelta(days=5))
    assert m["trades"] == 4 and m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(50 / 30)
    assert m["max_drawdown"] == pytest.approx(20 / 1040)  # peak 1040 after the third trade, then -20
    assert m["profit_pct"] == pytest.approx(0.02)
    assert m["sharpe"] > 0
    none = trade_metrics(trades_frame([]), 1000.0, T0, T0 + pd.Timedelta(days=5))
    assert none["trades"] == 0 and none["sharpe"] == 0.0 and none["profit_factor"] is None


def test_monte_carlo_deterministic_and_ordered():
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, 200)
    a = monte_carlo(r, 1000.0, paths=1000, seed=7)
    assert a == monte_carlo(r, 1000.0, paths=1000, seed=7)
    fe = a["final_equity"]
    assert fe["p5"] <= fe["p25"] <= fe["p50"] <= fe["p75"] <= fe["p95"]
    assert 0.0 <= a["p_breach_drawdown"] <= 1.0 and a["paths"] == 1000 and a["days"] == 200
    assert monte_carlo(np.full(50, 0.01), 1000.0, paths=100)["p_breach_drawdown"] == 0.0
    assert monte_carlo(np.full(50, -0.01), 1000.0, paths=100)["p_breach_drawdown"] == 1.0  # -40% for sure


def test_monte_carlo_keeps_losing_streaks_together():
    """Issue 34 §3: resampling days (or trades) independently breaks up streaks and understates the
    drawdown risk. Four cycles of a 6-day losing streak (-1.8% a day, -10.3% in all) and 10 winning
    days: moving blocks keep the streaks (a breach in most paths), independent draws do not."""
    streaky = np.tile(np.r_[np.full(6, -0.018), np.full(10, 0.011)], 4)
    blocks = monte_carlo(streaky, 1000.0, paths=2000, seed=1)["p_breach_drawdown"]
    rng = np.random.default_rng(1)
    iid = streaky[rng.integers(0, len(streaky), size=(2000, len(streaky)))]
    eq = np.cumprod(1 + iid, axis=1)
    iid_breach = float(
        (((np.maximum.accumulate(eq, axis=1) - eq) / np.maximum.accumulate(eq, axis=1)).max(axis=1) >= 0.10).mean()
    )
    assert blocks > iid_breach + 0.2, (blocks, iid_breach)


def test_the_gate_sharpe_does_not_move_with_the_number_of_trades():
    """Issue 34 §3: freqtrade's per-trade Sharpe changes when each trade is split in two (same days, same
    equity); the daily marked-to-market Sharpe the gate uses does not."""
    from simulation.testbench.metrics import trade_metrics

    rng = np.random.default_rng(3)
    days = 30
    whole = [_trade(d, 20, float(p)) for d, p in zip(range(days), rng.normal(5, 10, days), strict=True)]
    halves = [_trade(d + off, 10, t["profit_abs"] / 2) for d, t in enumerate(whole) for off in (0, 10 / 24)]
    closes = _flat(days=days + 2)
    end = T0 + pd.Timedelta(days=days + 1)
    a = trade_metrics(trades_frame(whole), 1000.0, T0, end, closes)
    b = trade_metrics(trades_frame(halves), 1000.0, T0, end, closes)
    assert a["sharpe"] == pytest.approx(b["sharpe"]) and a["ratio_basis"].startswith("daily mark-to-market")
    assert abs(a["sharpe_freqtrade"] - b["sharpe_freqtrade"]) > 0.2 * abs(a["sharpe_freqtrade"])
    assert len(a["daily_returns"]) == days + 1


def test_a_fold_without_a_losing_trade_has_no_drawdown_and_no_error():
    from simulation.testbench.metrics import trade_metrics

    wins = trades_frame([_trade(d, 2, 5.0) for d in range(5)])
    m = trade_metrics(wins, 1000.0, T0, T0 + pd.Timedelta(days=6), _flat())
    assert m["max_drawdown"] == 0.0 and m["profit_factor"] is None and m["sharpe"] > 0
    assert m["sortino"] is None, "no losing day: unbounded, not freqtrade's -100"


def test_limit_violations_from_the_trade_list():
    flat = _flat()
    ok = trades_frame([_trade(0, 5, 1), _trade(0.1, 5, 1, "ETH/USDT")])
    assert limit_violations(ok, 1000.0, max_open=2, closes=flat) == []
    assert any("open positions" in v for v in limit_violations(ok, 1000.0, max_open=1, closes=flat))
    hot = trades_frame([_trade(0, 5, 1, stake=400, stop=0.5)])  # 400 x 50% = 20% of 1000
    assert any(v.startswith("heat") for v in limit_violations(hot, 1000.0, max_open=3, closes=flat))
    after_loss = trades_frame([_trade(0, 1, -40), _trade(0.2, 1, 5, "ETH/USDT")])  # -4% then a new entry that day
    assert any("loss that day" in v for v in limit_violations(after_loss, 1000.0, max_open=3, closes=flat))
    # Heat is over the equity at entry, as in the strategies' risk check: after +1000 realized, a 150 heat is 7.5%.
    grown = trades_frame([_trade(0, 1, 1000), _trade(2, 1, 1, stake=300, stop=0.5)])
    assert limit_violations(grown, 1000.0, max_open=3, closes=flat) == []
    assert any(
        v.startswith("heat")
        for v in limit_violations(grown, 1000.0, max_open=3, limits=RiskLimits(portfolio_heat=0.07), closes=flat)
    )


def test_limit_violations_use_the_strategies_marked_equity():
    """Issue 34 §2: the bench checked realized equity while the strategies mark open trades to market. An
    800 stake 15% under water is a 12% drawdown (beyond 10%) and a 12% loss that day before the second
    entry, though nothing was realized yet."""
    trades = trades_frame([_trade(0, 48, -120, stake=800), _trade(0.5, 1, 1, "ETH/USDT", stake=10)])
    marked = _flat(BTC=[(0.25, 85.0)])
    problems = limit_violations(trades, 1000.0, max_open=3, closes=marked)
    assert any("drawdown" in v for v in problems) and any("loss that day" in v for v in problems), problems
    assert limit_violations(trades, 1000.0, max_open=3, closes=_flat()) == [], "the same trades on an unmoved market"
    with pytest.raises(ValueError, match="no candles for BTC/USDT"):
        limit_violations(trades, 1000.0, max_open=3, closes={"ETH/USDT": marked["ETH/USDT"]})


def test_recommendation_rules():
    good = {**TARGETS, "sharpe": 2.5, "win_rate": 0.6, "profit_factor": 2.0, "max_drawdown": 0.05, "trades": 40}
    cmp_ok = {
        "bt_sim_deviation": 0.005,
        "sim_paper_deviation": 0.002,
        "equity_correlation": 0.9,
        "signal_consistency": 0.9,
    }
    mc_ok = {"p_breach_drawdown": 0.01}
    assert recommend(good, mc_ok, cmp_ok, [])["decision"] == "deploy"
    assert recommend({**good, "sharpe": 1.5}, mc_ok, cmp_ok, [])["decision"] == "paper-trade longer"
    few = recommend({**good, "trades": 12}, mc_ok, cmp_ok, [])
    assert few["decision"] == "paper-trade longer" and "only 12 trades" in few["reasons"][0]
    assert recommend(good, mc_ok, {**cmp_ok, "bt_sim_deviation": 0.3}, [])["decision"] == "paper-trade longer"
    assert (
        recommend(good, {"p_breach_drawdown": 0.2, "drawdown_limit": 0.1}, cmp_ok, [])["decision"]
        == "paper-trade longer"
    )
    bad = recommend({**MINIMUMS, "sharpe": 1.0}, mc_ok, cmp_ok, [])
    assert bad["decision"] == "reject" and any("sharpe" in r for r in bad["reasons"])
    broken = [{"scenario": "flash_crash", "violations": ["4 open positions > 3"]}]
    assert recommend(good, mc_ok, cmp_ok, broken)["decision"] == "reject"
    assert "sharpe 1.00 vs >= 1.20" in bad["reasons"][0], "values rounded for people"
    idle = recommend(good, mc_ok, cmp_ok, [{"scenario": "flash_crash", "violations": [], "metrics": {"trades": 0}}])
    assert idle["decision"] == "paper-trade longer" and "not exercised" in idle["reasons"][0]
    quiet = recommend(good, mc_ok, {**cmp_ok, "simulation": {"trades_backtest": 0, "trades_sim": 0}}, [])
    assert quiet["decision"] == "paper-trade longer" and "no trades in the simulated window" in quiet["reasons"][0]


@pytest.mark.slow
def test_bench_end_to_end_sequential_and_on_ray(tmp_path):
    """Two walk-forward folds and a flash-crash stress run of TrendFollowingEnsemble (LightGBM-only
    stacking) on the synthetic market; then the same folds on 2 Ray workers: identical results."""
    common = {
        "strategy": "TrendFollowingEnsemble",
        "config": "config/trend-following.json",
        "extra_configs": ("config/testbench-light.json",),
        "folds": 2,
        "fold_days": 5,
        "skip_sim": True,
        "mc_paths": 1000,
    }
    seq = run_bench(BenchSpec(**common, out=tmp_path / "seq", stress=("flash_crash",)))
    summary = json.loads((tmp_path / "seq" / "summary.json").read_text())
    assert {"folds", "monte_carlo", "comparison", "stress", "recommendation"} <= set(summary)
    assert len(summary["folds"]) == 2 and summary["scale_out"] == "in-process, sequential"
    assert sum(f["metrics"]["trades"] for f in summary["folds"]) == summary["aggregate"]["trades"] > 0
    for fold in summary["folds"]:  # the bench's figures are freqtrade's own for the same trades and window
        m, ft = fold["metrics"], fold["freqtrade_stats"]
        assert m["trades"] == ft["total_trades"]
        for ours, theirs in (
            ("sharpe_freqtrade", "sharpe"),
            ("sortino_freqtrade", "sortino"),
            ("calmar", "calmar"),
            ("max_drawdown", "max_drawdown_account"),
        ):
            assert m[ours] == pytest.approx(ft[theirs], rel=1e-9, abs=1e-12), (ours, m[ours], ft[theirs])
        assert m["ratio_basis"].startswith("daily mark-to-market") and len(m["daily_returns"]) == common["fold_days"]
    assert summary["monte_carlo"]["paths"] == 1000
    fc = summary["forecast"]  # FreqAI's saved predictions of both folds, 3 pairs, scored against their labels
    assert fc["candles"] + fc["excluded_do_predict"] + fc["no_outcome_yet"] == 2 * 5 * 96 * 3, fc
    assert 0 <= fc["models"]["model"]["accuracy"] <= 1 and fc["models"]["model"]["net"]["decisions"] > 0
    stress = summary["stress"][0]
    assert stress["scenario"] == "flash_crash" and stress["limits_held"], stress
    # the stored decision is the rules' answer on the stored figures (not just one of the three words)
    rec = recommend(summary["aggregate"], summary["monte_carlo"], summary["comparison"], summary["stress"])
    assert summary["recommendation"] == rec
    page = check_page(tmp_path / "seq" / "report.html", tmp_path / "report.png")
    assert page.errors == [], page.errors
    assert "Recommendation:" in page.dom and page.dom.count("plotly-graph-div") >= 2 and 'id="forecast"' in page.dom
    (tmp_path / "seq" / "report.html").unlink()
    again = rerender(tmp_path / "seq")  # --report-only: same data, same decision, report rebuilt
    assert again["recommendation"] == summary["recommendation"] and (tmp_path / "seq" / "report.html").exists()

    par = run_bench(BenchSpec(**common, out=tmp_path / "ray", stress=(), workers=2))
    assert par["scale_out"].startswith("Ray local, 2 workers")
    strip = [{k: v for k, v in f.items() if k != "seconds"} for f in seq["folds"]]
    assert strip == [{k: v for k, v in f.items() if k != "seconds"} for f in par["folds"]]


def test_walkforward_breakdown_reads_freqtrades_training_lines(tmp_path):
    from simulation.testbench.timing import walkforward_breakdown

    for i, secs in enumerate(((2.5, 1.5), (4.0,))):
        d = tmp_path / "folds" / f"{i:02d}"
        d.mkdir(parents=True)
        d.joinpath("backtest.log").write_text(
            "".join(
                f"2024 - freqtrade.freqai - INFO - -------------------- Done training BTC/USDT ({s} secs) ---\n"
                for s in secs
            )
        )
    b = walkforward_breakdown(tmp_path, [{"fold": 0, "seconds": 10.0}, {"fold": 1, "seconds": 6.0}])
    assert (b["trainings"], b["train_s"], b["fold_seconds_sum"]) == (3, 8.0, 16.0)
    assert b["train_share"] == 0.5 and b["per_fold"][1]["other_s"] == 2.0


def test_a_session_past_its_time_is_stopped_with_everything_it_started(tmp_path):
    """Issue 34 §4: the bench's simulator call had no timeout. Now it has one, and the whole process
    group goes (a supervisor's bot and gateway included), reported as timed out."""
    import sys

    from simulation.testbench.runner import TIMED_OUT, run_bounded, sim_timeout_s

    pid_file = tmp_path / "child.pid"
    script = (
        f"import subprocess, time; p = subprocess.Popen(['sleep', '300']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(300)"
    )
    t0 = time.monotonic()
    with open(tmp_path / "session.log", "w") as log:
        assert run_bounded([sys.executable, "-c", script], log, timeout_s=2.0) == TIMED_OUT
    assert time.monotonic() - t0 < 30
    stat = Path(f"/proc/{int(pid_file.read_text())}/stat")
    time.sleep(0.2)
    assert not stat.exists() or stat.read_text().split(") ")[1][0] in "ZX", "the session's child still runs"
    with open(tmp_path / "ok.log", "w") as log:
        assert run_bounded([sys.executable, "-c", "raise SystemExit(3)"], log, timeout_s=30) == 3
    assert sim_timeout_s(1.0) > 11 * 60 * 5  # more than 5x a measured FreqAI day


def test_the_readme_figure_check_reads_the_make_run_line(tmp_path):
    """scripts.readme_figures: the README's make run line against a summary (make run calls it)."""
    import json as _json

    from scripts.readme_figures import main as check

    summary = {
        "folds": [{}, {}, {}],
        "aggregate": {"trades": 50, "profit_pct": -0.00123, "sharpe": -7.931},
        "recommendation": {"decision": "reject"},
    }
    (tmp_path / "summary.json").write_text(_json.dumps(summary))
    good = "x\n- **`make run`** ([d](r.md)): 90 s: 3 folds, 50 trades,\n  \u22120.12%, Sharpe -7.93 → **reject**; "
    good += "more\n- next\n"
    (tmp_path / "good.md").write_text(good)
    (tmp_path / "stale.md").write_text(good.replace("50 trades", "37 trades"))
    assert check([str(tmp_path / "summary.json"), "--readme", str(tmp_path / "good.md")]) == 0
    assert check([str(tmp_path / "summary.json"), "--readme", str(tmp_path / "stale.md")]) == 1
    assert check([str(tmp_path / "missing.json"), "--readme", str(tmp_path / "good.md")]) == 2


def test_paired_differences_intervals_and_the_verdict():
    from simulation.testbench.ab import paired, verdict

    a, b = [0.03, 0.05, 0.02, 0.04], [0.01, 0.02, 0.00, 0.01]
    r = paired(a, b)
    diffs = np.array(a) - np.array(b)
    se = diffs.std(ddof=1) / 2
    assert r["n"] == 4 and r["mean"] == pytest.approx(diffs.mean()) and r["se"] == pytest.approx(se)
    assert r["interval"] == pytest.approx([diffs.mean() - 3.182446 * se, diffs.mean() + 3.182446 * se], rel=1e-5)
    assert r["favours"] == "A"
    assert paired(b, a)["favours"] == "B"
    assert paired(a, b, higher_is_better=False)["favours"] == "B", "a larger drawdown is worse"
    noisy = paired([0.05, -0.04, 0.03, -0.02], [0, 0, 0, 0])
    assert noisy["favours"] == "neither" and noisy["interval"][0] < 0 < noisy["interval"][1]
    one = paired([0.1, None], [0.0, 0.2])
    assert one["n"] == 1 and one["interval"] is None and one["favours"] == "neither"
    rows = {"profit_pct": r, "sharpe": paired([1, 2, 1.5, 2], [3, 4, 3.5, 4.2]), "max_drawdown": noisy}
    assert verdict(rows)[0] == "neither" and "sharpe" in verdict(rows)[1], "A earns more but B's Sharpe is higher"
    rows["sharpe"] = noisy
    assert verdict(rows)[0] == "A"


def test_an_ab_of_benches_on_different_folds_or_markets_is_refused():
    from simulation.testbench.ab import NotComparable, compare_summaries

    fold = {"fold": 0, "timerange": "20240101-20240108", "metrics": {"profit_pct": 0.0, "trades": 0}, "trades": []}
    a = {"strategy": "A", "market": "synthetic (seed 42)", "folds": [fold]}
    with pytest.raises(NotComparable, match="folds differ"):
        compare_summaries(a, {**a, "folds": [{**fold, "timerange": "20240102-20240109"}]})
    with pytest.raises(NotComparable, match="markets differ"):
        compare_summaries(a, {**a, "market": "synthetic (seed 7)"})


@pytest.mark.slow
def test_compare_strategies_end_to_end(tmp_path):
    """`--compare-strategies`: both strategies on the same three folds of the same synthetic market; the
    per-fold differences are those of the two benches' own fold metrics; the page renders."""
    out = tmp_path / "ab"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.testbench", "--compare-strategies", "ReferenceStrategy",
         "RegimeGatedReference", "--config", "config/backtest.json", "--folds", "3", "--fold-days", "3",
         "--mc-paths", "200", "--synthetic-days", "30", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "better beyond noise:" in proc.stdout
    result = json.loads((out / "ab.json").read_text())
    sa, sb = (json.loads((out / side / "summary.json").read_text()) for side in "AB")
    assert [f["timerange"] for f in sa["folds"]] == [f["timerange"] for f in sb["folds"]] == result["folds"]
    assert sa["market"] == sb["market"] and sa["spec"]["synthetic_days"] == sb["spec"]["synthetic_days"]
    assert (out / "market" / "data").is_dir() and not (out / "A" / "market").exists(), "one market for both"
    for key in ("profit_pct", "sharpe", "max_drawdown"):
        want = [fa["metrics"][key] - fb["metrics"][key] for fa, fb in zip(sa["folds"], sb["folds"], strict=True)]
        assert result["metrics"][key]["differences"] == pytest.approx(want), key
    assert result["better"] in ("A", "B", "neither") and result["why"]
    page = check_page(out / "ab.html", tmp_path / "ab.png")
    assert page.errors == [] and "Strategy A/B" in page.dom


def test_conditions_quartile_rules_and_picks():
    from simulation.testbench.conditions import classify, pick

    props = pd.DataFrame(
        {
            "start": pd.date_range("2024-01-01", periods=8, freq="7D", tz="UTC"),
            "realized_vol": [0.2, 0.3, 0.9, 0.25, 0.35, 1.2, 0.22, np.nan],
            "efficiency_ratio": [0.05, 0.8, 0.5, 0.1, 0.7, 0.1, 0.4, 0.3],
        }
    )
    props["end"] = props["start"] + pd.Timedelta(days=7)
    got = classify(props).tolist()
    assert got == ["sideways", "trending", "volatile", "sideways", "trending", "volatile", "normal", None]
    picked = pick(props, 1)
    assert picked["condition"].tolist() == ["sideways", "trending", "volatile", "normal"]
    assert picked["start"].is_monotonic_increasing
    assert picked.loc[picked["condition"] == "trending", "start"].iloc[0] == props["start"][4], "the latest one"


def test_the_agreement_measure_is_one_the_rule_can_fail():
    """The conditions' agreement with the synthetic generator's regimes (python -m
    simulation.testbench.conditions): against permutations of the truth, a labelling that copies the
    truth agrees fully and lies far above chance; one that ignores it does not."""
    from simulation.testbench.conditions import agreement_against_chance

    truth = np.array(["trending", "sideways", "volatile"] * 30)
    copied = agreement_against_chance(truth, truth)
    assert copied["agreement"] == 1.0 and copied["above_chance"]
    rng = np.random.default_rng(1)
    unrelated = agreement_against_chance(rng.permutation(truth), truth)
    assert not unrelated["above_chance"] and unrelated["agreement"] < copied["chance_p99"]


def test_a_fold_without_trades_has_flat_daily_returns():
    """A real-data fold in which the strategy never traded loads no candles: its equity is the wallet every
    day (it crashed comparing an empty, zone-less grid with UTC times)."""
    start, end = pd.Timestamp("2025-09-05", tz="UTC"), pd.Timestamp("2025-09-12", tz="UTC")
    m = trade_metrics(trades_frame([]), 1000.0, start, end, {})
    assert m["trades"] == 0 and m["daily_returns"] == [0.0] * 7 and m["max_drawdown"] == 0


def test_the_conditions_agree_with_the_generator_on_unseen_seeds():
    """Pre-registered (docs/results/2026-12-06-market-conditions.md, second check, committed before the
    run): on the market the bench serves (generated at 5m, the gateway's 1h aggregation), seeds 101-105
    pooled, the unchanged quartile rule agrees with the generator's regimes above the 99th percentile of
    2,000 within-seed permutations of the truth."""
    from simulation.testbench.conditions import synthetic_agreement

    result = synthetic_agreement([101, 102, 103, 104, 105])
    assert result["pooled"]["windows"] > 200
    assert result["pooled"]["above_chance"], result["pooled"]


def test_conditions_picks_refuses_what_the_span_lacks():
    from simulation.testbench.condition_runs import NoWindow, choose, mean_interval

    props = pd.DataFrame(
        {
            "start": pd.date_range("2024-01-01", periods=6, freq="1D", tz="UTC"),
            "condition": ["volatile", "normal", "volatile", "trending", None, "volatile"],
        }
    )
    picked = choose(props, ["volatile", "trending"], 2)
    assert picked["start"].dt.day.tolist() == [3, 4, 6], "the latest two volatile days and the trending one"
    with pytest.raises(NoWindow, match=r"no window of condition sideways .*volatile 3, trending 1, sideways 0"):
        choose(props, ["volatile", "sideways"], 1)
    with pytest.raises(NoWindow, match="unknown condition calm"):
        choose(props, ["calm"], 1)
    r = mean_interval([0.01, 0.03, 0.02])
    assert r["mean"] == pytest.approx(0.02) and r["se"] == pytest.approx(0.01 / math.sqrt(3))
    assert r["interval"] == pytest.approx([0.02 - 4.302653 * r["se"], 0.02 + 4.302653 * r["se"]], rel=1e-5)
    assert mean_interval([0.5])["interval"] is None


def test_conditions_bad_input_is_one_line_and_exit_2(tmp_path):
    """Unknown names, zero windows or days, and --conditions beside another mode: refused before anything
    starts, nothing written."""
    from simulation.testbench.__main__ import main

    for argv in (
        ["--conditions", "calm"],
        ["--conditions", "--condition-windows", "0"],
        ["--conditions", "--condition-days", "0"],
        ["--conditions", "--optimize"],
    ):
        base = ["--strategy", "ReferenceStrategy", "--config", "config/backtest.json", "--out", str(tmp_path / "x")]
        with pytest.raises(SystemExit) as exc:
            main([*base, *argv])
        assert exc.value.code == 2, argv
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_conditions_end_to_end_on_the_synthetic_market(tmp_path):
    """`--conditions`: every condition's latest window of the span backtested by freqtrade, the per-condition
    figures from those runs, the labels checked against the generator, the page rendered; a condition the
    span lacks is one line and exit 2 with nothing written."""
    out = tmp_path / "cond"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.testbench", "--strategy", "ReferenceStrategy", "--config",
         "config/backtest.json", "--conditions", "--condition-windows", "1", "--folds", "2", "--fold-days", "10",
         "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "conditions.json").read_text())
    assert list(result["conditions"]) == ["normal", "volatile", "trending", "sideways"]
    cands = pd.DataFrame(result["candidate_windows"])
    assert len(cands) == 20 and sum(result["candidates"].values()) == 20
    for w in result["windows"]:
        latest = cands[cands["condition"] == w["condition"]]["start"].max()
        assert w["timerange"].startswith(latest.replace("-", "")), "the condition's latest window"
        run = latest_backtest_stats(next((out / "conditions").glob(f"*-{w['condition']}")))
        assert w["metrics"]["trades"] == run["strategy"]["ReferenceStrategy"]["total_trades"]
    for name, c in result["conditions"].items():
        assert c["windows"] == 1 and c["days"] == 1
        mine = [w for w in result["windows"] if w["condition"] == name]
        assert c["trades"] == mine[0]["metrics"]["trades"]
        assert c["return_per_day"]["mean"] == pytest.approx(mine[0]["metrics"]["profit_pct"])
    v = result["validation"]
    assert v["windows"] == (cands["condition"] != "normal").sum() and 0 <= v["agreement"] <= 1
    assert "labels vs the generator's regimes" in proc.stdout
    page = check_page(out / "conditions.html", tmp_path / "conditions.png")
    assert page.errors == [] and "Market conditions" in page.dom

    lacking = tmp_path / "lacking"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.testbench", "--strategy", "ReferenceStrategy", "--config",
         "config/backtest.json", "--conditions", "sideways", "--folds", "1", "--fold-days", "1", "--out", str(lacking)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "error: no window of condition sideways" in proc.stderr
    assert not (lacking / "conditions.json").exists() and not (lacking / "conditions").exists()
