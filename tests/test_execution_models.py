"""Execution models at their boundaries: latency clipping, impact threshold and exponent, book walking."""

from __future__ import annotations

import numpy as np
import pytest

from simulation.book import OrderBook
from simulation.execution import ExecutionParams, ImpactModel, LatencyModel, taker_fill


def test_latency_is_normal_around_50ms_and_clipped():
    m = LatencyModel(seed=1)
    s = np.array([m.sample_ms() for _ in range(20_000)])
    assert s.min() >= 10.0 and s.max() <= 200.0
    assert 48 < s.mean() < 52
    assert (s == 10.0).mean() < 0.05, "clipping is rare at mean 50 / sd 20"
    tight = LatencyModel(mean_ms=300, std_ms=0, seed=1)
    assert tight.sample_ms() == 200.0, "values above max are clipped to max"
    low = LatencyModel(mean_ms=0, std_ms=0, seed=1)
    assert low.sample_ms() == 10.0, "values below min are clipped to min"
    assert LatencyModel(enabled=False).sample_ms() == 0.0


def test_latency_spikes_exceed_the_clip():
    m = LatencyModel(spike_probability=0.5, spike_ms=1000, seed=2)
    s = np.array([m.sample_ms() for _ in range(2000)])
    assert 0.4 < (s > 1000).mean() < 0.6
    with pytest.raises(ValueError):
        LatencyModel(min_ms=100, max_ms=50)


def test_impact_below_threshold_is_the_volume_impact_only():
    m = ImpactModel()
    assert m.fraction(notional=1_000, daily_notional=1_000_000, daily_volatility=0.03) == pytest.approx(0.0001)
    # exactly at the threshold: still linear (the square-root term starts above 1%)
    assert m.fraction(10_000, 1_000_000, 0.03) == pytest.approx(0.0001)
    assert m.fraction(10_001, 1_000_000, 0.03) > 0.0001 + 0.03 * 0.099


def test_square_root_impact_exponent():
    m = ImpactModel(volume_impact=0.0)
    a = m.fraction(40_000, 1_000_000, 0.02)
    b = m.fraction(160_000, 1_000_000, 0.02)
    assert b / a == pytest.approx(2.0), "4x the size, 2x the impact"
    assert a == pytest.approx(0.02 * np.sqrt(0.04))
    assert ImpactModel(enabled=False).fraction(1e9, 1.0, 0.1) == 0.0


BOOK = OrderBook(bids=[(99.9, 1.0), (99.8, 2.0), (99.7, 3.0)], asks=[(100.1, 1.0), (100.2, 2.0), (100.3, 3.0)])


def test_taker_fill_walks_levels():
    f = taker_fill(BOOK, "BUY", 2.5)
    assert f.qty == 2.5 and f.levels == 2
    assert f.book_price == pytest.approx((1.0 * 100.1 + 1.5 * 100.2) / 2.5)
    s = taker_fill(BOOK, "SELL", 1.0)
    assert s.price == pytest.approx(99.9) and s.levels == 1


def test_taker_fill_partial_when_book_or_limit_runs_out():
    f = taker_fill(BOOK, "BUY", 10.0)
    assert f.qty == pytest.approx(6.0), "only what the book shows"
    lim = taker_fill(BOOK, "BUY", 10.0, limit_price=100.15)
    assert lim.qty == pytest.approx(1.0) and lim.price <= 100.15
    none = taker_fill(BOOK, "BUY", 1.0, limit_price=100.0)
    assert none.qty == 0.0


def test_impact_never_crosses_the_limit():
    big = ImpactModel(volume_impact=0.01)
    f = taker_fill(BOOK, "BUY", 1.0, limit_price=100.2, impact=big, daily_notional=1e6, daily_volatility=0.02)
    assert f.price == pytest.approx(100.2)
    g = taker_fill(BOOK, "BUY", 1.0, impact=big, daily_notional=1e6, daily_volatility=0.02)
    assert g.price == pytest.approx(100.1 * 1.01)


def test_params_from_config_and_errors():
    p = ExecutionParams.from_config({"latency": {"mean_ms": 80}, "impact": {"threshold": 0.02}, "taker_fee": 0.00075})
    assert p.latency.mean_ms == 80 and p.impact.threshold == 0.02 and p.taker_fee == 0.00075
    with pytest.raises(ValueError, match="unknown simulation settings"):
        ExecutionParams.from_config({"latncy": {}})
    with pytest.raises(ValueError, match="allowed"):
        ExecutionParams.from_config({"latency": {"avg": 3}})
    with pytest.raises(ValueError):
        ExecutionParams.from_config({"taker_fee": 0.5})


def test_queue_models_differ_exactly_on_a_touch():
    from simulation.execution import ExecutionParams, QueueModel

    touch, through = (99.0, 101.0), (98.9, 101.0)  # (low, high) a buy limit at 99 sees
    back, touch_m = QueueModel("trade_through"), QueueModel("touch")
    assert not back.fills("BUY", 99.0, *touch, 1, 0) and back.fills("BUY", 99.0, *through, 1, 0)
    assert touch_m.fills("BUY", 99.0, *touch, 1, 0) and touch_m.fills("SELL", 101.0, *touch, 1, 0)
    assert not touch_m.fills("BUY", 98.0, *touch, 1, 0), "no touch, no fill"
    prob = QueueModel("probabilistic", touch_fill_prob=0.3, seed=4)
    draws = [prob.fills("BUY", 99.0, *touch, oid, 0) for oid in range(2000)]
    assert abs(np.mean(draws) - 0.3) < 3 * np.sqrt(0.3 * 0.7 / 2000)
    assert draws == [
        QueueModel("probabilistic", touch_fill_prob=0.3, seed=4).fills("BUY", 99.0, *touch, oid, 0)
        for oid in range(2000)
    ]
    assert all(prob.fills("BUY", 99.0, *through, oid, 0) for oid in range(50)), "trade-through always fills"
    assert ExecutionParams.from_config({"queue": {"kind": "touch"}}).queue == touch_m
    with pytest.raises(ValueError, match=r"queue\.kind"):
        ExecutionParams.from_config({"queue": {"kind": "front"}})


def test_corwin_schultz_recovers_a_known_spread():
    """Trades at mid * (1 +/- s/2) on a random walk: the estimate rises with s and finds a spread that
    is large against the bar's volatility; small ones it overstates (the zero-clipping bias the
    authors report), which is why the book's spread is a stated, scalable assumption."""
    from simulation.marketdata.spread import corwin_schultz

    rng = np.random.default_rng(8)
    n_bars, per_bar = 3000, 200
    mid = 100 * np.exp(np.cumsum(rng.normal(0, 2e-4, n_bars * per_bar)))
    side = rng.choice([-1.0, 1.0], size=mid.size)

    def estimate(spread: float) -> float:
        trades = (mid * (1 + side * spread / 2)).reshape(n_bars, per_bar)
        return float(np.nanmean(corwin_schultz(trades.max(axis=1), trades.min(axis=1))))

    est = [estimate(s) for s in (0.0, 0.002, 0.005)]
    assert est[0] < est[1] < est[2]
    assert est[2] == pytest.approx(0.005, rel=0.1)
    assert est[0] > 0, "no spread still reads as some spread: the estimator's known upward bias"


def test_book_uses_the_calibrated_spread_and_its_scale():
    from simulation.book import BookParams, synthesize_book
    from simulation.markets import MarketSpec

    m = MarketSpec("BTC", "USDT", tick_size=0.01, step_size=0.00001)
    fixed = synthesize_book(m, 50_000.0, 10.0, params=BookParams())
    wide = synthesize_book(m, 50_000.0, 10.0, params=BookParams(spread_scale=10.0))
    calibrated = synthesize_book(m, 50_000.0, 10.0, params=BookParams(spread_model="corwin_schultz"), spread=0.001)

    def width(b) -> float:
        return b.best_ask - b.best_bid

    assert width(wide) == pytest.approx(10 * width(fixed), rel=0.01)
    assert width(calibrated) == pytest.approx(50.0, rel=0.01)
    with pytest.raises(ValueError, match="spread_model"):
        BookParams(spread_model="magic")
