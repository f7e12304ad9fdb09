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
