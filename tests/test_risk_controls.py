"""Risk limits at their boundaries (pure checks; the strategies call the same function)."""

from __future__ import annotations

import numpy as np
import pytest

from cryptobot_ops.risk import (
    Position,
    RiskLimits,
    check_entry,
    daily_loss,
    drawdown,
    max_correlation,
    portfolio_heat,
)

L = RiskLimits()
BASE = {
    "stake": 100.0,
    "stop_distance": 0.02,
    "equity": 10_000.0,
    "peak_equity": 10_000.0,
    "day_start_equity": 10_000.0,
    "positions": [],
}


def test_defaults_are_the_spec_limits():
    assert (L.max_drawdown, L.daily_loss, L.portfolio_heat, L.correlation_limit) == (0.10, 0.03, 0.15, 0.7)
    assert check_entry(L, **BASE).allowed


def test_max_drawdown_boundary():
    just_below = {**BASE, "equity": 9_000.01, "day_start_equity": 9_000.01}  # the loss happened on earlier days
    at = {**BASE, "equity": 9_000.0, "day_start_equity": 9_000.0}
    assert check_entry(L, **just_below).allowed
    d = check_entry(L, **at)
    assert not d.allowed and d.reason == "max_drawdown"
    assert drawdown(9_000, 10_000) == pytest.approx(0.10)


def test_daily_loss_boundary():
    ok = {**BASE, "equity": 9_700.01, "day_start_equity": 10_000.0}
    stop = {**BASE, "equity": 9_700.0, "day_start_equity": 10_000.0}
    assert check_entry(L, **ok).allowed
    assert check_entry(L, **stop).reason == "daily_loss"
    assert daily_loss(10_100, 10_000) == 0.0, "a winning day is no loss"


def test_portfolio_heat_boundary():
    # 14 open positions of 1,000 x 10% stop = 1,400 = 14% heat; the candidate adds 100 x 2% = 0.02%
    open_ = [Position(f"P{i}/USDT", 1_000.0, 0.10) for i in range(14)]
    assert portfolio_heat(open_, 10_000) == pytest.approx(0.14)
    assert check_entry(L, **{**BASE, "positions": open_}).allowed
    big = {**BASE, "positions": open_, "stake": 1_000.0, "stop_distance": 0.10}  # -> 15.0%: at the limit
    assert check_entry(L, **big).allowed, "heat equal to the limit is allowed"
    bigger = {**big, "stop_distance": 0.1001}
    d = check_entry(L, **bigger)
    assert not d.allowed and d.reason == "portfolio_heat"


def test_correlation_boundary():
    rng = np.random.default_rng(0)
    base = rng.normal(size=500)
    noise = rng.normal(size=500)

    def mix(rho):  # a series with correlation ~rho to base
        return rho * base + np.sqrt(1 - rho**2) * noise

    low, high = mix(0.6), mix(0.8)
    _, r_low = max_correlation(low, {"A/USDT": base})
    _, r_high = max_correlation(high, {"A/USDT": base})
    assert r_low < 0.7 < r_high
    assert check_entry(L, **BASE, candidate_returns=low, open_returns={"A/USDT": base}).allowed
    d = check_entry(L, **BASE, candidate_returns=high, open_returns={"A/USDT": base})
    assert not d.allowed and d.reason == "correlation" and "A/USDT" in d.detail
    # too little history: no opinion rather than a false block
    assert check_entry(L, **BASE, candidate_returns=high[:5], open_returns={"A/USDT": base[:5]}).allowed


def test_emergency_blocks_first():
    d = check_entry(L, **{**BASE, "equity": 1.0}, emergency=True)
    assert d.reason == "emergency_stop"


def test_config_errors_are_clear():
    assert RiskLimits.from_config({"risk": {"daily_loss": 0.05}}).daily_loss == 0.05
    with pytest.raises(ValueError, match="unknown risk settings"):
        RiskLimits.from_config({"risk": {"max_dd": 0.2}})
    with pytest.raises(ValueError, match="fraction"):
        RiskLimits.from_config({"risk": {"max_drawdown": 10}})


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"correlation_window": 288.0}, "risk.correlation_window must be an integer"),
        ({"max_drawdown": "0.1"}, "risk.max_drawdown must be a number"),
        ({"daily_loss": None}, "risk.daily_loss must be a number"),
        ({"portfolio_heat": True}, "risk.portfolio_heat must be a number"),
        ({"max_drawdown": float("nan")}, "risk.max_drawdown must be a number"),
        ({"emergency_file": ""}, "risk.emergency_file must name a file"),
        ({"emergency_file": "  "}, "risk.emergency_file must name a file"),
        ({"max_drawdown": 0.2, "emergency_drawdown": 0.15}, "emergency_drawdown .* must be >= risk.max_drawdown"),
        ({"ledger": None}, "risk.ledger must be a string"),
        ({"watch_interval_s": 0}, "risk.watch_interval_s must be positive"),
        ({"watch_interval_s": "fast"}, "risk.watch_interval_s must be a number"),
    ],
)
def test_config_validation_is_strict_and_names_the_key(setting, message):
    with pytest.raises(ValueError, match=message):
        RiskLimits.from_config({"risk": setting})


def test_emergency_drawdown_defaults_to_one_and_a_half_times_the_limit():
    assert RiskLimits().emergency_drawdown == pytest.approx(0.15)
    assert RiskLimits.from_config({"risk": {"max_drawdown": 0.2}}).emergency_drawdown == pytest.approx(0.30)
    with pytest.raises(ValueError, match="must be an object"):
        RiskLimits.from_config({"risk": [0.1]})
