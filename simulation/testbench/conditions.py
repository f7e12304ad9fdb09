"""Market conditions (spec §5: normal / volatile / trending / sideways), measured on the data itself.

A window's condition comes from two properties of one reference pair's hourly closes over the window:
- realized volatility: the standard deviation of hourly log returns, annualised (x sqrt(24 x 365));
- trend strength: Kaufman's efficiency ratio, |last close - first close| / sum of |hourly moves|, in [0, 1]
  (1: a straight line, near 0: back and forth).
Thresholds are the quartiles of the candidate windows themselves (fixed before any bench used them):
`volatile` if its volatility is in the top quarter; else `trending` if its efficiency ratio is in the top
quarter; else `sideways` if its efficiency ratio is in the bottom quarter and its volatility below the
median; else `normal`. The labels describe past windows for an evaluation; no strategy sees them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

CONDITIONS = ("normal", "volatile", "trending", "sideways")
HOURS_PER_YEAR = 24 * 365
DAY = pd.Timedelta(days=1)


def window_properties(closes: pd.Series, starts: Sequence[pd.Timestamp], days: float) -> pd.DataFrame:
    """Realized volatility (annualised) and efficiency ratio of `closes` (indexed by time) in each window
    [start, start + days). Windows with fewer than two closes get NaN."""
    rows = []
    span = pd.Timedelta(days=days)
    for start in starts:
        c = closes[(closes.index >= start) & (closes.index < start + span)].to_numpy(float)
        if len(c) < 3:
            rows.append({"start": start, "end": start + span, "realized_vol": np.nan, "efficiency_ratio": np.nan})
            continue
        r = np.diff(np.log(c))
        path = np.abs(np.diff(c)).sum()
        rows.append(
            {
                "start": start,
                "end": start + span,
                "realized_vol": float(r.std(ddof=1) * math.sqrt(HOURS_PER_YEAR)),
                "efficiency_ratio": float(abs(c[-1] - c[0]) / path) if path > 0 else 0.0,
            }
        )
    return pd.DataFrame(rows)


def classify(props: pd.DataFrame) -> pd.Series:
    """One of CONDITIONS per window, by the quartile rules in the module docstring."""
    vol, er = props["realized_vol"], props["efficiency_ratio"]
    ok = vol.notna() & er.notna()
    v75, vmed = vol[ok].quantile(0.75), vol[ok].median()
    e75, e25 = er[ok].quantile(0.75), er[ok].quantile(0.25)
    out = pd.Series("normal", index=props.index, dtype=object)
    out[ok & (er <= e25) & (vol < vmed)] = "sideways"
    out[ok & (er >= e75)] = "trending"
    out[ok & (vol >= v75)] = "volatile"
    out[~ok] = None
    return out


def candidate_starts(first: pd.Timestamp, end: pd.Timestamp, days: int) -> list[pd.Timestamp]:
    """Consecutive, non-overlapping windows of `days` ending at `end`, none starting before `first`."""
    n = int((end - first) / (days * DAY))
    return [end - (n - i) * days * DAY for i in range(n)]


def pick(props: pd.DataFrame, per_condition: int) -> pd.DataFrame:
    """For each condition, its latest `per_condition` windows; all picked windows in time order."""
    if per_condition < 1:
        raise ValueError("need at least one window per condition")
    labelled = props.assign(condition=classify(props)).dropna(subset=["condition"])
    picked = labelled.sort_values("start").groupby("condition", group_keys=False).tail(per_condition)
    return picked.sort_values("start").reset_index(drop=True)


MAPPING = {
    "trending_bull": "trending",
    "trending_bear": "trending",
    "sideways": "sideways",
    "high_volatility": "volatile",
}


def agreement_against_chance(
    ours: np.ndarray, truth: np.ndarray, permutations: int = 2000, seed: int = 0, groups: np.ndarray | None = None
) -> dict:
    """Share of windows whose condition equals the truth, against the same share under random permutations
    of the truth (chance with the same label frequencies; within each of `groups` when given, e.g. per
    market, so no market's frequencies leak into another's): above chance when it beats their 99th
    percentile."""
    ours, truth = np.asarray(ours), np.asarray(truth)
    groups = np.zeros(len(truth), dtype=int) if groups is None else np.asarray(groups)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)

    def shuffled() -> np.ndarray:
        out = truth.copy()
        for idx in members:
            out[idx] = truth[rng.permutation(idx)]
        return out

    chance = np.array([(ours == shuffled()).mean() for _ in range(permutations)])
    share = float((ours == truth).mean())
    return {
        "windows": len(ours),
        "agreement": share,
        "chance_median": float(np.median(chance)),
        "chance_p99": float(np.percentile(chance, 99)),
        "p_value": float((chance >= share).mean()),
        "above_chance": bool(share > np.percentile(chance, 99)),
    }


def generator_truth(props: pd.DataFrame, ground_truth: pd.DataFrame) -> list[str]:
    """Each window's majority regime in the generator's labels, mapped to a condition by MAPPING."""
    gt = ground_truth.set_index("date")["regime"]
    majority = [gt[(gt.index >= w.start) & (gt.index < w.end)].mode().iloc[0] for w in props.itertuples()]
    return [MAPPING[r] for r in majority]


def synthetic_windows(
    seed: int, days: int = 120, window_days: float = 1, pair: str = "BTC/USDT", generated_at: str = "5m"
) -> pd.DataFrame:
    """The rule's windows on the synthetic market beside the generator's regimes: each window's `truth` is
    the majority of its candles' regimes (mapped by MAPPING). The market is generated at `generated_at`
    (the gateway's default 5m, which the bench serves) and its hourly closes are the gateway's own 1h
    aggregation of those candles, i.e. what freqtrade downloads."""
    from simulation.marketdata.store import CandleSeries
    from simulation.synthetic import SyntheticConfig, generate

    market = generate(SyntheticConfig(seed=seed, days=days, timeframe=generated_at, start="2024-01-01"))
    series = CandleSeries.from_frame(generated_at, market.candles[pair])
    hourly = series if generated_at == "1h" else series.resample("1h")
    closes = pd.Series(hourly.close, index=pd.to_datetime(hourly.open_time, unit="ms", utc=True))
    first = closes.index[0] + pd.Timedelta(days=10)
    props = window_properties(
        closes, candidate_starts(first, closes.index[0] + pd.Timedelta(days=days), window_days), window_days
    )
    props["truth"] = generator_truth(props, market.ground_truth)
    props["condition"] = classify(props)
    props["seed"] = seed
    return props


def synthetic_agreement(seeds: Sequence[int], **kwargs) -> dict:
    """The rule against the generator's regimes over `seeds` (windows the rule calls "normal" have no
    counterpart and are left out), pooled, permuting the truth within each seed; and seed by seed."""
    windows = pd.concat([synthetic_windows(s, **kwargs) for s in seeds], ignore_index=True)
    kept = windows[(windows["condition"] != "normal") & windows["condition"].notna()]
    per_seed = {
        int(s): agreement_against_chance(g["condition"], g["truth"]) for s, g in kept.groupby("seed", sort=True)
    }
    pooled = agreement_against_chance(kept["condition"], kept["truth"], groups=kept["seed"].to_numpy())
    return {"seeds": [int(s) for s in seeds], **kwargs, "pooled": pooled, "per_seed": per_seed}


if __name__ == "__main__":
    import json
    import sys

    args = sys.argv[1:]
    generated_at = "5m"
    if args and not args[0].isdigit():
        generated_at, *args = args
    print(json.dumps(synthetic_agreement([int(a) for a in args] or [3], generated_at=generated_at), indent=1))
