"""Backtest vs simulation, per signal and per trade, with numbers that can fail.

Why each choice:
- Signals are matched one to one, and only *forward*: a simulated entry may come up to one candle
  after the backtest's (latency, a late candle) but never before it (that would need lookahead). So
  an always-signalling strategy scores a low precision, and an early entry is flagged, not matched.
- The PnL gap is an additive waterfall: missed trades + extra trades + the matched trades' difference
  split by sequential substitution into size, entry price, exit price and fees, plus the rounding
  left by freqtrade's own profit figures. The residual is printed and is zero to float rounding.
- A cancelled-unfilled entry followed by a re-entry on the same pair within `relink_candles` is one
  event ("re-entry after a cancel"), not a miss plus an extra.
- The per-trade difference carries a moving-block bootstrap interval; below MIN_MATCHED matched
  trades the verdict is "insufficient evidence" (with fewer than 10 the bootstrap's resamples repeat
  a handful of values and its interval is not worth printing as evidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_MATCHED = 10
LAG_CANDLES = 1


@dataclass(frozen=True)
class SignalMatch:
    pairs: list[tuple[int, int]]  # (backtest index, simulation index)
    early: int  # simulated signals up to one candle *before* a backtest entry (flagged, never matched)
    lags: dict[int, int]  # candles of delay -> count
    n_backtest: int
    n_sim: int

    @property
    def precision(self) -> float | None:
        return len(self.pairs) / self.n_sim if self.n_sim else None

    @property
    def recall(self) -> float | None:
        return len(self.pairs) / self.n_backtest if self.n_backtest else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if not p or not r:
            return 0.0 if (self.n_sim or self.n_backtest) else None
        return 2 * p * r / (p + r)


def match_signals(bt: pd.DataFrame, sim: pd.DataFrame, tf_ms: int, lag_candles: int = LAG_CANDLES) -> SignalMatch:
    """`bt` and `sim`: columns pair, time_ms (entry times). One-to-one, earliest first, lag in [0, lag] candles."""
    bt = bt.reset_index(drop=True)
    sim = sim.reset_index(drop=True)
    used: set[int] = set()
    pairs, lags, early = [], {}, 0
    for i, b in bt.sort_values("time_ms").iterrows():
        same = sim[(sim.pair == b.pair) & ~sim.index.isin(used)]
        ok = same[
            (same.time_ms >= b.time_ms) & (same.time_ms - b.time_ms <= lag_candles * tf_ms)
        ]  # at most `lag` candles
        if len(ok):
            j = int(ok.time_ms.idxmin())
            used.add(j)
            pairs.append((int(i), j))
            lag = int((sim.time_ms[j] - b.time_ms) // tf_ms)
            lags[lag] = lags.get(lag, 0) + 1
        elif ((same.time_ms < b.time_ms) & (same.time_ms >= b.time_ms - lag_candles * tf_ms)).any():
            early += 1
    return SignalMatch(pairs, early, dict(sorted(lags.items())), len(bt), len(sim))


def _profit(amount: float, open_rate: float, close_rate: float, fee_open: float, fee_close: float) -> float:
    """A long spot trade's profit as freqtrade computes it (fees on both legs' values)."""
    return amount * (close_rate * (1 - fee_close) - open_rate * (1 + fee_open))


def waterfall(matched: pd.DataFrame, missed: pd.DataFrame, extra: pd.DataFrame, total: float) -> dict:
    """Additive lines summing to `total` (simulation minus backtest PnL), and the residual.

    `matched` columns per side (bt_/sim_): amount, open_rate, close_rate, fee_open, fee_close, profit."""
    lines = {
        "missed_trades": -float(missed.bt_profit.sum()) if len(missed) else 0.0,
        "extra_trades": float(extra.sim_profit.sum()) if len(extra) else 0.0,
        "size": 0.0,
        "entry_price": 0.0,
        "exit_price": 0.0,
        "fees": 0.0,
        "rounding": 0.0,
    }
    for t in matched.itertuples():
        lines["size"] += (t.sim_amount - t.bt_amount) * (
            t.bt_close_rate * (1 - t.bt_fee_close) - t.bt_open_rate * (1 + t.bt_fee_open)
        )
        lines["entry_price"] += -t.sim_amount * (t.sim_open_rate - t.bt_open_rate) * (1 + t.bt_fee_open)
        lines["exit_price"] += t.sim_amount * (t.sim_close_rate - t.bt_close_rate) * (1 - t.bt_fee_close)
        lines["fees"] += t.sim_amount * (
            t.sim_close_rate * (t.bt_fee_close - t.sim_fee_close) + t.sim_open_rate * (t.bt_fee_open - t.sim_fee_open)
        )
        lines["rounding"] += (
            t.sim_profit - _profit(t.sim_amount, t.sim_open_rate, t.sim_close_rate, t.sim_fee_open, t.sim_fee_close)
        ) - (t.bt_profit - _profit(t.bt_amount, t.bt_open_rate, t.bt_close_rate, t.bt_fee_open, t.bt_fee_close))
    return {"total": total, "lines": lines, "residual": total - sum(lines.values())}


def block_bootstrap_means(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> np.ndarray | None:
    """Moving-block bootstrap distribution of the mean (blocks of ~sqrt(n): trades in a row are not independent)."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 2:
        return None
    block = max(1, math.isqrt(n))
    starts = np.arange(n - block + 1)
    rng = np.random.default_rng(seed)
    k = int(np.ceil(n / block))
    idx = (rng.choice(starts, (resamples, k))[:, :, None] + np.arange(block)).reshape(resamples, -1)[:, :n]
    return v[idx].mean(axis=1)


def block_bootstrap_ci(
    values: np.ndarray, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Moving-block bootstrap interval of the mean."""
    means = block_bootstrap_means(values, resamples, seed)
    if means is None:
        return None
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def trade_statistics(delta: np.ndarray, seed: int = 0) -> dict:
    """Per matched trade: simulation minus backtest PnL, its interval, the minimum detectable difference
    (80% power, 5% two-sided: 2.8 standard errors, the standard error of the same block bootstrap as the
    interval, so serial dependence widens both alike) and the verdict."""
    d = np.asarray(delta, dtype=float)
    n = len(d)
    ci = block_bootstrap_ci(d, seed=seed)
    means = block_bootstrap_means(d, seed=seed)  # the same resamples as the interval
    out = {
        "n": n,
        "mean": float(d.mean()) if n else None,
        "ci95": ci,
        "min_detectable": 2.8 * float(np.std(means, ddof=1)) if means is not None else None,
    }
    if n < MIN_MATCHED:
        out["verdict"] = f"insufficient evidence ({n} matched trades, at least {MIN_MATCHED} needed)"
    elif ci[0] <= 0 <= ci[1]:
        out["verdict"] = "no per-trade difference detected"
    else:
        out["verdict"] = "the simulation differs per trade"
    return out


def return_tracking(eq_bt: np.ndarray, eq_sim: np.ndarray) -> dict:
    """Correlation and tracking error of per-candle *returns* (levels correlate even with a constant cost)."""
    r_bt, r_sim = np.diff(eq_bt) / eq_bt[:-1], np.diff(eq_sim) / eq_sim[:-1]
    corr = float(np.corrcoef(r_bt, r_sim)[0, 1]) if len(r_bt) > 2 and np.std(r_bt) > 0 and np.std(r_sim) > 0 else None
    return {"return_correlation": corr, "tracking_error": float(np.std(r_sim - r_bt)) if len(r_bt) else None}


def link_reentries(
    missed_unfilled: pd.DataFrame, extra: pd.DataFrame, tf_ms: int, relink_candles: int = 3
) -> list[tuple[int, int]]:
    """(missed row, extra row) pairs: an entry cancelled unfilled, re-entered on the same pair soon after."""
    links, used = [], set()
    for i, m in missed_unfilled.iterrows():
        cand = extra[
            (extra.pair == m.pair)
            & (extra.sim_open_ms >= m.bt_open_ms)
            & (extra.sim_open_ms <= m.bt_open_ms + relink_candles * tf_ms)
            & ~extra.index.isin(used)
        ]
        if len(cand):
            j = cand.sim_open_ms.idxmin()
            used.add(j)
            links.append((i, j))
    return links


# Settings that change what a run does; compared between the backtest's and the bot's resolved configs.
COMPARED_SETTINGS = (
    "strategy",
    "timeframe",
    "stake_currency",
    "stake_amount",
    "max_open_trades",
    "dry_run_wallet",
    "minimal_roi",
    "stoploss",
    "trailing_stop",
    "trailing_stop_positive",
    "trailing_stop_positive_offset",
    "use_exit_signal",
    "exit_profit_only",
    "ignore_roi_if_entry_signal",
    "order_types",
    "entry_pricing",
    "exit_pricing",
    "unfilledtimeout",
    "exchange.pair_whitelist",
    "fee",
    "risk",
    "freqai.enabled",
    "freqai.identifier",
    "freqai.train_period_days",
    "freqai.backtest_period_days",
    "freqai.live_retrain_hours",
    "freqai.feature_parameters",
)


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def comparability(bt_config: dict, bot_config: dict, extra: list[dict] | None = None) -> list[dict]:
    """What differs between the two runs by construction, setting by setting (the report opens with it).

    FreqAI is always listed: the backtest retrains every `backtest_period_days` from the window's start
    (the comparison sets it to the bot's cadence, `compare.freqai_schedule`), the bot every
    `live_retrain_hours` from its first training, in the warm-up before the window: the phases differ, and
    each live model has seen the market up to its own training time, so the models differ even when
    nothing else does."""
    rows = []
    for key in COMPARED_SETTINGS:
        a, b = _get(bt_config, key), _get(bot_config, key)
        rows.append({"setting": key, "backtest": a, "simulation": b, "differs": a != b})
    fa = bt_config.get("freqai") or {}
    if fa.get("enabled"):
        rows.append(
            {
                "setting": "freqai retraining",
                "backtest": f"every {fa.get('backtest_period_days')} days from the window's start",
                "simulation": f"every {fa.get('live_retrain_hours', 0)} h from its first training (in the warm-up)",
                "differs": True,
            }
        )
    return rows + list(extra or [])
