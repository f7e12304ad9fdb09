"""Live drift and market checks on the frame a strategy already holds (no extra data, no lookahead).

- **Feature drift**: the population stability index (PSI) of each FreqAI feature (`%-` columns) over the
  last `recent` candles against the `reference` candles before them, the window the live model was
  trained on (FreqAI retrains on the latest `train_period_days`). Bins are the reference's quantiles, one
  per 20 recent candles (3 to 10: with 50 candles in 10 bins an empty bin alone reads as a shift), shares
  smoothed by half a count; PSI = sum over bins of (recent - reference share) x ln(recent / reference
  share). Conventional reading: < 0.1 stable, 0.1-0.25 moving, > 0.25 shifted.
- **Unusual market**: the realized volatility of the last `recent` candles over its own median across
  the frame's earlier windows, and the correlation of the pair's returns with a reference pair's over
  the last `recent` candles as a z-score against the frame's earlier rolling correlations.

Every figure at candle t uses candles up to t only (a test compares a truncated frame with the full one).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _bins(recent: int) -> int:
    return int(np.clip(recent // 20, 3, 10))


def _psi(ref: np.ndarray, new: np.ndarray, edges: np.ndarray) -> float:
    edges = np.unique(edges)
    k = len(edges) + 1
    p = (np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) + 0.5) / (len(ref) + 0.5 * k)
    q = (np.bincount(np.searchsorted(edges, new, side="right"), minlength=k) + 0.5) / (len(new) + 0.5 * k)
    return float(np.sum((q - p) * np.log(q / p)))


def psi(reference: np.ndarray, recent: np.ndarray, bins: int | None = None) -> float:
    """PSI of one feature; NaN when either side has fewer than 20 finite values."""
    ref, new = reference[np.isfinite(reference)], recent[np.isfinite(recent)]
    if len(ref) < 20 or len(new) < 20:
        return math.nan
    bins = bins or _bins(len(new))
    return _psi(ref, new, np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def feature_drift(df: pd.DataFrame, recent: int, reference: int, prefix: str = "%-") -> dict[str, float]:
    """PSI per feature column: the last `recent` rows against the `reference` rows before them. Each
    column sorted once: its quantiles (numpy's linear method) and bin counts come from the sorted values
    (220 features x 1,800 rows in a few ms); columns with gaps or tied edges go through psi() itself."""
    cols = [c for c in df.columns if c.startswith(prefix)]
    if len(df) < recent + 20 or not cols:
        return {}
    values = np.array(df[cols].to_numpy(dtype=float), copy=True)  # pandas may hand a read-only view
    values[~np.isfinite(values)] = np.nan
    new = values[-recent:]
    ref = values[max(0, len(values) - recent - reference) : -recent]
    out: dict[str, float] = {}
    whole = ~np.isnan(ref).any(0) & ~np.isnan(new).any(0)
    if len(ref) >= 20 and whole.any():
        s_ref, s_new = np.sort(ref[:, whole], axis=0), np.sort(new[:, whole], axis=0)
        pos = np.linspace(0, 1, _bins(recent) + 1)[1:-1] * (len(s_ref) - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, len(s_ref) - 1)
        edges = s_ref[lo] + (pos - lo)[:, None] * (s_ref[hi] - s_ref[lo])
        k = len(pos) + 1
        for j, i in enumerate(np.flatnonzero(whole)):
            e = edges[:, j]
            if not (np.diff(e) > 0).all():
                out[cols[i]] = psi(ref[:, i], new[:, i])
                continue
            shares = []
            for side in (s_ref[:, j], s_new[:, j]):
                below = np.searchsorted(side, e, side="left")  # values under each edge: bins = edges <= x
                counts = np.diff(np.concatenate(([0], below, [len(side)])))
                shares.append((counts + 0.5) / (len(side) + 0.5 * k))
            p, q = shares
            out[cols[i]] = float(np.sum((q - p) * np.log(q / p)))
    for i in np.flatnonzero(~whole):
        out[cols[i]] = psi(ref[:, i], new[:, i])
    return {c: out[c] for c in cols}


def volatility_ratio(close: pd.Series, recent: int) -> float:
    """Std of log returns over the last `recent` candles / the median of that rolling figure before."""
    r = np.log(close.astype(float)).diff()
    vol = r.rolling(recent, min_periods=recent).std()
    earlier = vol.iloc[:-recent].dropna()
    now = vol.iloc[-1]
    if earlier.empty or not math.isfinite(now):
        return math.nan
    base = float(earlier.median())
    return float(now / base) if base > 0 else math.nan


def correlation_zscore(close: pd.Series, other: pd.Series, recent: int) -> tuple[float, float]:
    """(correlation of returns over the last `recent` candles, its z-score against the earlier rolling
    correlations); both frames aligned on their index (dates)."""
    a = np.log(close.astype(float)).diff()
    b = np.log(other.astype(float)).diff().reindex(a.index)
    corr = a.rolling(recent, min_periods=recent).corr(b)
    earlier = corr.iloc[:-recent].dropna()
    now = corr.iloc[-1]
    if len(earlier) < 2 or not math.isfinite(now):
        return (float(now) if math.isfinite(now) else math.nan), math.nan
    sd = float(earlier.std())
    return float(now), (float((now - earlier.mean()) / sd) if sd > 0 else math.nan)
