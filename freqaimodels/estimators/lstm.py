"""Keras LSTM regressor (spec: LSTM layers 128/64/32, dropout 0.3, sequence length 20).

Sequences are built causally from the feature rows: the sequence for row t is rows t-19..t, with
zero rows before the first available row (never a later row). Training uses every `stride`-th
sequence (ending at the newest row): neighbouring 20-candle windows with overlapping multi-candle
labels are near-copies, so stride 4 cuts the cost by four and keeps most of the information. `warm_fit` continues
training an already fitted network on a longer window (the ensemble's refit after its hold-out fit).

Training reuses one compiled network per shape (`_Trainer`): Keras traces a new training graph for
every new model, ~5 s of each fit on 2 cores, more than the epochs themselves. The shared network is
reset to its initial state (weights, optimizer moments, dropout seeds) before each fit, trains under a
lock, and hands its weights to a private copy that serves predictions, so a retrain in one thread
never changes the model another thread predicts with. Features and target are standardized
with training statistics. Inference runs a `tf.function` with a fixed input signature (the eager
call is ~50x slower on this machine). Pickles through the native .keras format.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from freqaimodels.estimators.base import BaseEstimator, as_array
from freqaimodels.estimators.tfsupport import quiet_tensorflow


def causal_sequences(x: np.ndarray, length: int) -> np.ndarray:
    """(n, d) -> (n, length, d) windows ending at each row, zero-padded at the start (a view)."""
    pad = np.zeros((length - 1, x.shape[1]), dtype=x.dtype)
    full = np.concatenate([pad, x], axis=0)
    return np.lib.stride_tricks.sliding_window_view(full, (length, x.shape[1]))[:, 0]


class _Trainer:
    """One compiled network per (features, architecture), reset to its initial state for each fit."""

    _cache: dict[tuple, _Trainer] = {}
    _lock = threading.Lock()

    def __init__(self, model) -> None:
        self.model = model
        self.initial = [v.numpy() for v in model.variables]
        self.learning_rate = float(model.optimizer.learning_rate.numpy())

    @classmethod
    def get(cls, key: tuple, build) -> _Trainer:
        if key not in cls._cache:
            cls._cache[key] = cls(build())
        return cls._cache[key]

    def train(self, start: list | None, **fit_kw) -> list:
        """Fit from `start` weights (None: the initial state) with fresh optimizer moments; the weights after."""
        for var, value in zip(self.model.variables, self.initial, strict=True):
            var.assign(value)
        if start is not None:
            self.model.set_weights(start)
        for var in self.model.optimizer.variables:  # moments and step count restart at zero
            var.assign(self.learning_rate if var.path.endswith("learning_rate") else 0 * var.numpy())
        self.model.fit(**fit_kw)
        return self.model.get_weights()


class KerasLSTMEstimator(BaseEstimator):
    defaults = {
        "units": (128, 64, 32),
        "dropout": 0.3,
        "sequence_length": 20,
        "epochs": 4,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "patience": 2,
        "validation_fraction": 0.1,
        "seed": 42,
        "stride": 4,
        "warm_epochs": 1,
        "jit_compile": False,
    }

    def _build(self, n_features: int):
        import keras

        p = self.params
        layers: list = [keras.Input((p["sequence_length"], n_features))]
        units = list(p["units"])
        for i, u in enumerate(units):
            layers.append(keras.layers.LSTM(u, return_sequences=i < len(units) - 1))
            layers.append(keras.layers.Dropout(p["dropout"]))
        layers.append(keras.layers.Dense(1))
        model = keras.Sequential(layers)
        model.compile(optimizer=keras.optimizers.Adam(p["learning_rate"]), loss="mse", jit_compile=p["jit_compile"])
        return model

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> KerasLSTMEstimator:
        import keras

        p = self.params
        x = as_array(X)
        yv = np.asarray(y, np.float64).ravel()
        self.x_mean_, self.x_std_ = x.mean(axis=0), x.std(axis=0) + 1e-8
        self.y_mean_, self.y_std_ = float(yv.mean()), float(yv.std() + 1e-12)
        seq = causal_sequences(self._scale(x), p["sequence_length"])
        target = ((yv - self.y_mean_) / self.y_std_).astype(np.float32)
        n_val = int(len(seq) * p["validation_fraction"])
        fit_kw: dict = {"callbacks": []}
        if n_val >= p["batch_size"] // 4:  # chronological hold-out (the last rows), early stopping
            fit_kw["validation_data"] = (seq[-n_val:], target[-n_val:])
            # purged: no training label may read into the hold-out's rows
            keep = max(0, len(seq) - n_val - self.label_period_)
            seq, target = seq[:keep], target[:keep]
            fit_kw["callbacks"].append(keras.callbacks.EarlyStopping(patience=p["patience"], restore_best_weights=True))
        rows = self._strided(len(seq))
        sw = None if sample_weight is None else np.asarray(sample_weight, np.float32)[: len(seq)][rows]
        self._train(
            x.shape[1],
            None,
            int(p["seed"]),
            x=seq[rows],
            y=target[rows],
            sample_weight=sw,
            epochs=p["epochs"],
            **fit_kw,
        )
        return self

    def warm_fit(self, X: Any, y: Any, sample_weight: Any = None) -> KerasLSTMEstimator:
        """Continue training this fitted network for `warm_epochs` on X (the same columns; the scaling
        of the first fit is kept, so what the network learned still applies)."""
        p = self.params
        seq = causal_sequences(self._scale(as_array(X)), p["sequence_length"])
        target = ((np.asarray(y, np.float64).ravel() - self.y_mean_) / self.y_std_).astype(np.float32)
        rows = self._strided(len(seq))
        sw = None if sample_weight is None else np.asarray(sample_weight, np.float32)[rows]
        self._train(
            len(self.x_mean_),
            self.model_.get_weights(),
            int(p["seed"]) + 1,
            x=seq[rows],
            y=target[rows],
            sample_weight=sw,
            epochs=p["warm_epochs"],
        )
        return self

    def _train(self, n_features: int, start: list | None, seed: int, **fit_kw) -> None:
        """Train under the trainer lock, the seed set inside it: keras' random state is global, so a seed
        set before waiting for the lock would be another thread's by the time this one trains."""
        import keras

        p = self.params
        key = (n_features, tuple(p["units"]), p["dropout"], p["sequence_length"], p["learning_rate"], p["jit_compile"])
        with _Trainer._lock:
            keras.utils.set_random_seed(seed)
            trainer = _Trainer.get(key, lambda: self._build(n_features))
            weights = trainer.train(start, batch_size=p["batch_size"], verbose=0, shuffle=True, **fit_kw)
        self.model_ = self._build(n_features)  # this estimator's own copy for predictions
        self.model_.set_weights(weights)
        self._compile()

    def _strided(self, n: int) -> np.ndarray:
        stride = int(self.params["stride"])
        if stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride}")
        return np.arange(n - 1, -1, -stride)[::-1]

    def _scale(self, x: np.ndarray) -> np.ndarray:
        return np.nan_to_num((x - self.x_mean_) / self.x_std_).astype(np.float32)

    def _compile(self) -> None:
        import tensorflow as tf

        quiet_tensorflow()

        model = self.model_
        spec = tf.TensorSpec([None, self.params["sequence_length"], len(self.x_mean_)], tf.float32)
        self._infer = tf.function(lambda s: model(s, training=False), input_signature=[spec])

    def predict(self, X: Any) -> np.ndarray:
        """One prediction per row of X, which must be consecutive candles in time order."""
        seq = causal_sequences(self._scale(as_array(X)), self.params["sequence_length"])
        out = [
            self._infer(np.ascontiguousarray(seq[i : i + 2048])).numpy().reshape(-1) for i in range(0, len(seq), 2048)
        ]
        return np.concatenate(out).astype(np.float64) * self.y_std_ + self.y_mean_

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("model_", "_infer")}
        if "model_" in self.__dict__:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                self.model_.save(path)
                state["model_bytes_"] = path.read_bytes()
        return state

    def __setstate__(self, state: dict) -> None:
        data = state.pop("model_bytes_", None)
        self.__dict__.update(state)
        if data is not None:
            import keras

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                path.write_bytes(data)
                self.model_ = keras.models.load_model(path)
            self._compile()
