"""Common parameter handling: spec defaults, overridden by FreqAI's model_training_parameters."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import pandas as pd


def as_array(X: Any) -> np.ndarray:
    """float32 C-contiguous 2-d array from a DataFrame or array."""
    arr = X.to_numpy(dtype=np.float32) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=np.float32)
    return np.ascontiguousarray(arr.reshape(len(arr), -1))


class BaseEstimator:
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = {**self.defaults, **params}

    label_period_: int = 0  # rows a label looks ahead (FreqAI's label_period_candles), set by the adapter

    def set_label_period(self, rows: int) -> BaseEstimator:
        """How many rows ahead a label reads: every split inside `fit` (out-of-fold blocks, a validation
        hold-out) leaves at least this many rows between the rows it trains on and the rows it checks,
        or the training labels would be read from the checked rows' future."""
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise ValueError(f"label period must be a non-negative number of rows, got {rows!r}")
        self.label_period_ = rows
        return self

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


def compute_threads(default: int | None) -> int | None:
    """Threads for a library that does not follow OMP_NUM_THREADS on its own (CatBoost, YDF, LightGBM's
    sklearn API): OMP_NUM_THREADS when a supervisor set it (jobs sharing a machine), else `default`.
    Two jobs whose OpenMP teams outnumber the cores spin against each other: a 1-second fit takes 80."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return default
