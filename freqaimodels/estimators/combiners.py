"""Meta-learners of the stacked ensemble: how the out-of-fold base predictions become one prediction.

- `ridge(...)`: the spec's stacking learner, a standardized, clipped ridge (alpha by CV) on the base
  predictions, optionally with the original features passed through. It fits weights *and* an
  intercept, and on real data neither carried over to the next week (docs/results).
- `WeightedAverage`: no intercept, no fitted slope: an average of the base predictions, with equal
  weights, weights proportional to each base model's positive out-of-fold information coefficient, all
  weight on the member that got the most directions right (`best`), or non-negative least-squares
  weights shrunk halfway toward equal weights (`nnls`). Fewer degrees of freedom, so less to get wrong
  when the training window's drift does not persist.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import nnls
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

WEIGHTINGS = ("equal", "ic", "best", "nnls")
NNLS_SHRINK = 0.5  # share of equal weight mixed into the NNLS weights (fixed, not tuned)


def ridge(alphas: Sequence[float], clip: float) -> Pipeline:
    """Standardize, then clip (passed-through features drift; a linear model must not extrapolate them)."""
    return make_pipeline(
        StandardScaler(), FunctionTransformer(np.clip, kw_args={"a_min": -clip, "a_max": clip}), RidgeCV(alphas=alphas)
    )


class WeightedAverage:
    """Weighted mean of the base predictions (columns of X); weights sum to 1."""

    def __init__(self, weighting: str = "equal") -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {list(WEIGHTINGS)}, got {weighting!r}")
        self.weighting = weighting

    def fit(self, X: np.ndarray, y: np.ndarray) -> WeightedAverage:
        X = np.asarray(X, np.float64)
        w = np.ones(X.shape[1])
        if self.weighting == "ic":
            self.ic_ = np.array([_spearman(X[:, j], y) for j in range(X.shape[1])])
            # A base model that ranked the training window's returns no better than chance gets no say;
            # if none did, fall back to equal weights rather than predicting nothing.
            w = np.clip(self.ic_, 0.0, None) if (self.ic_ > 0).any() else w
        elif self.weighting == "best":
            nz = y != 0
            hits = [(np.sign(X[nz, j]) == np.sign(y[nz])).mean() if nz.any() else 0.0 for j in range(X.shape[1])]
            w = np.zeros(X.shape[1])
            w[int(np.argmax(hits))] = 1.0  # ties: the first member
        elif self.weighting == "nnls":
            raw, _ = nnls(X, np.asarray(y, np.float64))
            raw = raw / raw.sum() if raw.sum() > 0 else np.full(X.shape[1], 1.0 / X.shape[1])
            w = (1 - NNLS_SHRINK) * raw + NNLS_SHRINK / X.shape[1]
        self.weights_ = w / w.sum()
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, np.float64) @ self.weights_


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ic = spearmanr(a, b).statistic
    return 0.0 if np.isnan(ic) else float(ic)


def rolling_hit_rate_weights(
    preds: np.ndarray, realized: np.ndarray, label_period: int, window: int, start: int = 0
) -> np.ndarray:
    """Per row t >= `start`, weights of the base models (columns of `preds`) proportional to how far each
    model's direction hit rate over the last `window` rows whose outcome is known at t (rows
    s <= t - `label_period`) is above a coin flip; equal weights where none is. Causal by construction:
    row t reads `realized` only up to t - `label_period`, the outcome a live bot can score from the closes
    it already has. Rows before `start` only feed the hit rates (e.g. the training window's out-of-fold
    predictions, so the first test rows are not equal-weighted blind)."""
    preds, realized = np.asarray(preds, np.float64), np.asarray(realized, np.float64)
    n, k = preds.shape
    hits = (np.sign(preds) == np.sign(realized)[:, None]).astype(float)
    known = ~np.isnan(realized)
    hits[~known] = 0.0
    csum = np.vstack([np.zeros((1, k)), np.cumsum(hits, axis=0)])
    ccount = np.r_[0, np.cumsum(known)]
    weights = np.full((n, k), 1.0 / k)
    for t in range(start, n):
        hi = t - label_period + 1  # rows [lo, hi) are scored by t
        if hi <= 0:
            continue
        lo = max(0, hi - window)
        count = ccount[hi] - ccount[lo]
        if count == 0:
            continue
        edge = np.clip((csum[hi] - csum[lo]) / count - 0.5, 0.0, None)
        if edge.sum() > 0:
            weights[t] = edge / edge.sum()
    return weights[start:]
