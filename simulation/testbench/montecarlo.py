"""Monte Carlo on a trade list: how lucky was the order (and the draw) of the trades?

Each path resamples the trades' returns on equity with replacement (bootstrap, the order and the mix
change) and compounds them from the starting balance. Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def returns_on_equity(trades: pd.DataFrame, start_balance: float) -> np.ndarray:
    """Each trade's profit over the realized equity before it closed."""
    if trades.empty:
        return np.array([])
    before = start_balance + trades.profit_abs.cumsum().shift(fill_value=0.0)
    return (trades.profit_abs / before).to_numpy(dtype=float)


def monte_carlo(returns: np.ndarray, start_balance: float, paths: int = 1000, seed: int = 0,
                drawdown_limit: float = 0.10) -> dict:
    if paths < 1:
        raise ValueError("Monte Carlo needs at least one path")
    n = len(returns)
    if n == 0:
        return {"paths": paths, "trades": 0, "final_equity": {}, "max_drawdown": {}, "p_breach_drawdown": 0.0,
                "drawdown_limit": drawdown_limit, "fan": {}}
    rng = np.random.default_rng(seed)
    draws = returns[rng.integers(0, n, size=(paths, n))]
    equity = start_balance * np.cumprod(1.0 + draws, axis=1)
    equity = np.hstack([np.full((paths, 1), start_balance), equity])
    peak = np.maximum.accumulate(equity, axis=1)
    mdd = ((peak - equity) / peak).max(axis=1)
    q = [5, 25, 50, 75, 95]
    return {
        "paths": paths,
        "trades": n,
        "seed": seed,
        "final_equity": {f"p{p}": float(v) for p, v in zip(q, np.percentile(equity[:, -1], q), strict=True)},
        "max_drawdown": {f"p{p}": float(v) for p, v in zip(q, np.percentile(mdd, q), strict=True)},
        "p_loss": float((equity[:, -1] < start_balance).mean()),
        "p_breach_drawdown": float((mdd >= drawdown_limit).mean()),
        "drawdown_limit": drawdown_limit,
        "fan": {f"p{p}": np.percentile(equity, p, axis=0).round(4).tolist() for p in (5, 50, 95)},
    }
