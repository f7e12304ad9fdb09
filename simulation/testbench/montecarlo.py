"""Monte Carlo on daily returns: how lucky was the order (and the draw) of the days?

Each path resamples the walk-forward's daily marked-to-market returns by moving blocks (of ~sqrt(n)
days, so a losing streak stays a streak: days in a row are not independent, and neither are trades
that overlap in time) and compounds them from the starting balance. Deterministic for a seed.
"""

from __future__ import annotations

import math

import numpy as np


def block_paths(returns: np.ndarray, paths: int, rng: np.random.Generator) -> np.ndarray:
    """`paths` resampled series of len(returns): moving blocks of ~sqrt(n) consecutive days."""
    n = len(returns)
    block = max(1, math.isqrt(n))
    k = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(paths, k))
    return returns[(starts[:, :, None] + np.arange(block)).reshape(paths, -1)[:, :n]]


def monte_carlo(
    returns: np.ndarray, start_balance: float, paths: int = 1000, seed: int = 0, drawdown_limit: float = 0.10
) -> dict:
    """`returns`: daily returns in order (the aggregate's `daily_returns`)."""
    if paths < 1:
        raise ValueError("Monte Carlo needs at least one path")
    returns = np.asarray(returns, dtype=float)
    n = len(returns)
    if n == 0:
        return {
            "paths": paths,
            "days": 0,
            "final_equity": {},
            "max_drawdown": {},
            "p_breach_drawdown": 0.0,
            "drawdown_limit": drawdown_limit,
            "fan": {},
            "resampling": "none: no daily returns",
        }
    rng = np.random.default_rng(seed)
    draws = block_paths(returns, paths, rng)
    equity = start_balance * np.cumprod(1.0 + draws, axis=1)
    equity = np.hstack([np.full((paths, 1), start_balance), equity])
    peak = np.maximum.accumulate(equity, axis=1)
    mdd = ((peak - equity) / peak).max(axis=1)
    q = [5, 25, 50, 75, 95]
    return {
        "paths": paths,
        "days": n,
        "seed": seed,
        "resampling": f"moving blocks of {max(1, math.isqrt(n))} days of daily marked-to-market returns",
        "final_equity": {f"p{p}": float(v) for p, v in zip(q, np.percentile(equity[:, -1], q), strict=True)},
        "max_drawdown": {f"p{p}": float(v) for p, v in zip(q, np.percentile(mdd, q), strict=True)},
        "p_loss": float((equity[:, -1] < start_balance).mean()),
        "p_breach_drawdown": float((mdd >= drawdown_limit).mean()),
        "drawdown_limit": drawdown_limit,
        "fan": {f"p{p}": np.percentile(equity, p, axis=0).round(4).tolist() for p in (5, 50, 95)},
    }
