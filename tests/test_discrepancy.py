"""The discrepancy measures on constructed signal and trade sets whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulation.run.compare import match_trades
from simulation.run.discrepancy import (
    MIN_MATCHED,
    block_bootstrap_ci,
    link_reentries,
    match_signals,
    return_tracking,
    trade_statistics,
    waterfall,
)

TF = 300_000


def _signals(times: list[int], pair: str = "BTC/USDT") -> pd.DataFrame:
    return pd.DataFrame({"pair": pair, "time_ms": [t * TF for t in times]})


def test_an_always_signalling_strategy_cannot_score_precision_one():
    bt = _signals([10, 30, 50])
    always = _signals(list(range(100)))
    m = match_signals(bt, always, TF)
    assert m.recall == 1.0 and m.precision == pytest.approx(3 / 100) and m.f1 < 0.1


def test_an_early_entry_is_flagged_not_matched_and_lags_are_counted():
    bt = _signals([10, 20, 30])
    sim = _signals([9, 20, 31])  # one candle early, on time, one candle late
    m = match_signals(bt, sim, TF)
    assert len(m.pairs) == 2 and m.early == 1 and m.lags == {0: 1, 1: 1}
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3)

    def trades(times: list[int]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": range(len(times)),
                "pair": "BTC/USDT",
                "open_ms": [t * TF for t in times],
                "open_rate": 1.0,
                "close_ms": 0,
                "exit_reason": "roi",
                "profit": 1.0,
            }
        )

    table = match_trades(trades([10]), trades([9]), TF)
    assert table.sim_id.isna().sum() == 1 and table.bt_open_ms.isna().sum() == 1, (
        "an early simulated trade stays unmatched"
    )


def _side(prefix: str, amount, open_rate, close_rate, fee_open, fee_close, profit=None) -> dict:
    if profit is None:
        profit = amount * (close_rate * (1 - fee_close) - open_rate * (1 + fee_open))
    return {
        f"{prefix}_amount": amount,
        f"{prefix}_open_rate": open_rate,
        f"{prefix}_close_rate": close_rate,
        f"{prefix}_fee_open": fee_open,
        f"{prefix}_fee_close": fee_close,
        f"{prefix}_profit": profit,
    }


def test_a_constant_per_trade_cost_lands_exactly_in_its_line_and_the_residual_is_zero():
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(40):  # same prices and sizes; the simulation pays 0.1% more fee on entry
        a, n, x = rng.uniform(0.5, 2), rng.uniform(90, 110), rng.uniform(90, 110)
        rows.append({**_side("bt", a, n, x, 0.001, 0.001), **_side("sim", a, n, x, 0.002, 0.001)})
    matched = pd.DataFrame(rows)
    empty = pd.DataFrame(columns=["bt_profit", "sim_profit"])
    total = float(matched.sim_profit.sum() - matched.bt_profit.sum())
    w = waterfall(matched, empty, empty, total)
    expected_fee = -float((matched.sim_amount * matched.sim_open_rate * 0.001).sum())
    assert w["lines"]["fees"] == pytest.approx(expected_fee, rel=1e-12)
    assert all(abs(v) < 1e-9 for k, v in w["lines"].items() if k != "fees")
    assert abs(w["residual"]) < 1e-9


def test_every_line_of_a_mixed_gap_adds_up():
    matched = pd.DataFrame(
        [
            {**_side("bt", 1.0, 100, 105, 0.001, 0.001), **_side("sim", 0.9, 100.3, 104.0, 0.00075, 0.001)},
            {
                **_side("bt", 2.0, 50, 48, 0.001, 0.001),
                **_side("sim", 2.0, 50.1, 48.2, 0.001, 0.001, profit=-4.5),
            },  # rounding
        ]
    )
    missed = pd.DataFrame({"bt_profit": [3.0, -1.0]})
    extra = pd.DataFrame({"sim_profit": [0.7]})
    total = float(matched.sim_profit.sum() + extra.sim_profit.sum() - matched.bt_profit.sum() - missed.bt_profit.sum())
    w = waterfall(matched, missed, extra, total)
    assert w["lines"]["missed_trades"] == -2.0 and w["lines"]["extra_trades"] == 0.7
    assert w["lines"]["rounding"] != 0 and abs(w["residual"]) < 1e-9


def test_a_cancel_then_re_entry_is_one_event():
    missed = pd.DataFrame({"pair": ["BTC/USDT", "ETH/USDT"], "bt_open_ms": [10 * TF, 10 * TF]})
    extra = pd.DataFrame({"pair": ["BTC/USDT", "BTC/USDT"], "sim_open_ms": [11 * TF, 40 * TF]})
    assert link_reentries(missed, extra, TF) == [(0, 0)]


def test_few_trades_are_insufficient_evidence_and_a_real_difference_is_found():
    assert "insufficient evidence" in trade_statistics(np.full(MIN_MATCHED - 1, -1.0))["verdict"]
    rng = np.random.default_rng(2)
    shifted = trade_statistics(rng.normal(-1.0, 0.5, 60))
    assert shifted["verdict"] == "the simulation differs per trade" and shifted["ci95"][1] < 0
    same = trade_statistics(rng.normal(0.0, 0.5, 60))
    assert same["verdict"] == "no per-trade difference detected" and same["ci95"][0] < 0 < same["ci95"][1]
    assert block_bootstrap_ci(np.array([1.0])) is None


def test_return_correlation_sees_a_constant_cost_that_levels_hide():
    rng = np.random.default_rng(3)
    eq = 1000 + np.cumsum(rng.normal(1.0, 1, 500))  # a rising equity curve
    cost = eq - np.where(np.arange(500) % 10 == 0, 1.0, 0.0).cumsum()  # minus a cost every 10 candles
    levels = np.corrcoef(eq, cost)[0, 1]
    t = return_tracking(eq, cost)
    assert levels > 0.9999, "the levels barely notice the cost"
    assert t["return_correlation"] < 0.97 and t["tracking_error"] > 1e-4, t


def test_comparability_lists_what_differs_by_construction():
    from simulation.run.discrepancy import comparability

    bt = {
        "strategy": "S",
        "timeframe": "5m",
        "max_open_trades": 3,
        "freqai": {"enabled": True, "backtest_period_days": 7, "live_retrain_hours": 6},
    }
    bot = {**bt, "max_open_trades": 2}
    rows = {r["setting"]: r for r in comparability(bt, bot)}
    assert rows["max_open_trades"]["differs"] and not rows["timeframe"]["differs"]
    assert rows["freqai retraining"]["differs"], "FreqAI retrains on different schedules in the two runs, always"


def test_spread_sensitivity_summary_reads_each_run():
    from simulation.run.sensitivity import summarize

    def run(pnl: float) -> dict:
        return {
            "trades_sim": 3,
            "trades_matched": 2,
            "gap": {"pnl_sim": pnl, "waterfall": {"lines": {"entry_price": pnl / 2}}},
            "mean_slippage_bps": 1.0,
            "verdict": "insufficient evidence",
        }

    rows = summarize({10.0: run(-5.0), 0.1: run(1.0), 1.0: run(0.0)})
    assert [r["spread_scale"] for r in rows] == [0.1, 1.0, 10.0]
    assert rows[2]["pnl_sim"] == -5.0 and rows[2]["entry_price_line"] == -2.5


def test_the_signal_window_is_exactly_one_candle():
    """Issue 34 §3: documented as up to one candle after; the integer division matched up to 2 candles - 1 ms."""
    bt = _signals([10, 20])
    sim = pd.DataFrame({"pair": "BTC/USDT", "time_ms": [11 * TF, 21 * TF + 1]})
    m = match_signals(bt, sim, TF)
    assert len(m.pairs) == 1 and m.lags == {1: 1}


def test_the_minimum_detectable_difference_widens_with_serial_dependence():
    """It comes from the same block bootstrap as the interval: trending (autocorrelated) differences have
    a larger one than independent ones of the same spread; the iid formula saw no difference."""
    rng = np.random.default_rng(4)
    iid = rng.normal(0, 1, 400)
    walk = np.convolve(rng.normal(0, 1, 420), np.ones(20) / np.sqrt(20), mode="valid")[:400]  # same variance, dependent
    a, b = trade_statistics(iid), trade_statistics(walk)
    assert b["min_detectable"] > 2 * a["min_detectable"]
    width = b["ci95"][1] - b["ci95"][0]
    assert b["min_detectable"] == pytest.approx(2.8 * width / (2 * 1.96), rel=0.25)


def test_the_equity_grid_is_never_filled_with_a_later_price():
    """Issue 34 §3: a grid instant before the first close was back-filled with that later close."""
    from simulation.marketdata.store import Candle
    from simulation.run.compare import known_prices

    candles = [
        Candle(2 * TF, 100.0, 110.0, 90.0, 105.0, 1.0, 3 * TF - 1),
        Candle(3 * TF, 105.0, 106.0, 104.0, 104.5, 1.0, 4 * TF - 1),
    ]
    got = known_prices(candles, np.array([TF, 2 * TF, 3 * TF, 4 * TF, 5 * TF]))
    assert np.isnan(got[0]), "no price existed yet"
    assert got.tolist()[1:] == [100.0, 105.0, 104.5, 104.5]  # the open at its instant, then closes as they come
