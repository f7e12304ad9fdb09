"""Causal feature selection inside one training window.

Why: FreqAI's expansion yields ~320 columns (families x periods x timeframes x correlated pairs),
many near-copies of each other. Tree models and the LSTM train several times faster on a few dozen,
and a choice made from the training rows alone cannot leak the future into the model: the columns
are ranked by the absolute Spearman correlation of each feature with the target on the rows the
model is fitted on, and nothing after them.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def rank_ic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|Spearman correlation| of every column of x with y (0 for a constant column)."""
    rx = rankdata(np.nan_to_num(x), axis=0)
    ry = rankdata(y)
    rx -= rx.mean(axis=0)
    ry -= ry.mean()
    denom = np.sqrt((rx * rx).sum(axis=0) * (ry * ry).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        ic = (rx * ry[:, None]).sum(axis=0) / denom
    return np.abs(np.nan_to_num(ic))


def select_columns(x: np.ndarray, y: np.ndarray, k: int | None) -> np.ndarray:
    """Indices (ascending) of the `k` columns with the highest |rank IC| on these rows; all if k is None/0
    or at least the number of columns."""
    if not k or k >= x.shape[1]:
        return np.arange(x.shape[1])
    if k < 1:
        raise ValueError(f"max_features must be a positive number of columns, got {k}")
    return np.sort(np.argsort(-rank_ic(x, y), kind="stable")[:k])
