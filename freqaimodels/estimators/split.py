"""Time-ordered splits with purge and embargo (never shuffled).

Why: a label at row t looks `purge` rows ahead, so training rows within `purge` rows before a test
block know part of its outcome; rows right after a block are serially tied to it (`embargo`).
`walk_forward=True` (the default, used for stacking) trains only on rows before each test block,
so every out-of-fold prediction comes from a model that saw nothing at or after that block.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np


class PurgedKFold:
    def __init__(self, n_splits: int = 5, purge: int = 0, embargo: int = 0, walk_forward: bool = True) -> None:
        if n_splits < (1 if walk_forward else 2):
            raise ValueError(f"n_splits must be at least {1 if walk_forward else 2}")
        if purge < 0 or embargo < 0:
            raise ValueError("purge and embargo must be non-negative")
        self.n_splits, self.purge, self.embargo, self.walk_forward = n_splits, purge, embargo, walk_forward

    def split(self, n_samples: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yields (train_idx, test_idx). Walk-forward: n_splits test blocks after a first training
        block (n_splits=1: one hold-out, the second half); K-fold: n_splits blocks, each tested once,
        trained on the others minus purge/embargo."""
        blocks = self.n_splits + 1 if self.walk_forward else self.n_splits
        if n_samples < blocks * (self.purge + 2):
            raise ValueError(f"{n_samples} rows are too few for {self.n_splits} purged folds")
        bounds = np.linspace(0, n_samples, blocks + 1).astype(int)
        idx = np.arange(n_samples)
        pairs = list(itertools.pairwise(bounds))
        for lo, hi in pairs[1:] if self.walk_forward else pairs:
            test = idx[lo:hi]
            before = idx < lo - self.purge
            train = idx[before] if self.walk_forward else idx[before | (idx >= hi + self.embargo)]
            yield train, test
