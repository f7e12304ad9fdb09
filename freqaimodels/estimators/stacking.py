"""Stacked ensemble: base regressors -> out-of-fold predictions -> meta-learner, plus confidence.

1. Out-of-fold (OOF) base predictions from a purged walk-forward split: each block is predicted by
   models trained only on rows before it, minus `purge` rows (the label horizon).
2. The meta-learner (`meta`, see `combiners`) combines the OOF base predictions:
   `"passthrough"` (the spec's stack: standardized ridge, alpha by CV, on the base predictions with
   the original features passed through; the default), `"bases"` (the ridge on the base predictions
   only), `"mean"` (equal-weight average, no fitted intercept), `"ic_weighted"` (average weighted by
   each base model's positive OOF information coefficient), or `"auto"`: fit all four and keep the
   one whose own OOF predictions (a purged split over the OOF rows, training data only) get the
   direction right most often. On real data the plain `mean` beat every fitted candidate out of
   sample, `auto` included (docs/results); the default stays the spec's.
3. Confidence: the chosen meta-learner's OOF predictions give, per row,
   a score = agreement (share of base models with the ensemble's sign) x strength (rank of |pred|);
   an isotonic fit maps the score to the observed direction hit rate. So `confidence` reads as
   "historical probability that the predicted direction is right" and is monotone by construction.
4. Base models are refitted on all rows for inference.
5. `center_target`: every model (bases and meta-learner) learns the target minus the mean of the
   rows it is trained on, so predictions are returns in excess of the training window's drift.
   On real data a 30-day window's drift told the next week's direction worse than a coin flip, and
   tree models that learn it inherit that (docs/results). Direction scores stay on the raw target.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

from freqaimodels.estimators.base import BaseEstimator, as_array
from freqaimodels.estimators.boosting import CatBoostEstimator, LightGBMEstimator
from freqaimodels.estimators.combiners import WeightedAverage, ridge
from freqaimodels.estimators.forest import TFDFRandomForestEstimator
from freqaimodels.estimators.lstm import KerasLSTMEstimator
from freqaimodels.estimators.split import PurgedKFold

logger = logging.getLogger(__name__)

BASE_MODELS: dict[str, type[BaseEstimator]] = {
    "lightgbm": LightGBMEstimator,
    "catboost": CatBoostEstimator,
    "random_forest": TFDFRandomForestEstimator,
    "lstm": KerasLSTMEstimator,
}
METAS = ("passthrough", "bases", "mean", "ic_weighted")


class StackedEnsemble(BaseEstimator):
    defaults = {"models": list(BASE_MODELS), "n_splits": 5, "purge": 12, "meta": "passthrough",
                "alphas": (1.0, 10.0, 100.0, 1e3, 1e4, 1e5), "clip": 4.0, "center_target": False}

    def make_bases(self) -> dict[str, BaseEstimator]:
        unknown = set(self.params["models"]) - set(BASE_MODELS)
        if unknown:
            raise ValueError(f"unknown base models {sorted(unknown)}; choose from {sorted(BASE_MODELS)}")
        return {name: BASE_MODELS[name](**self.params.get(name, {})) for name in self.params["models"]}

    def _fit_target(self, y: np.ndarray) -> np.ndarray:
        """`center_target`: learn the return in excess of the training window's mean (its drift)."""
        return y - y.mean() if self.params["center_target"] else y

    def _meta_inputs(self, base_preds: np.ndarray, x: np.ndarray, kind: str | None = None) -> np.ndarray:
        kind = kind or self.meta_kind_
        return np.hstack([base_preds, np.nan_to_num(x)]) if kind == "passthrough" else base_preds

    def _new_meta(self, kind: str):
        if kind in ("passthrough", "bases"):
            return ridge(self.params["alphas"], self.params["clip"])
        return WeightedAverage("ic" if kind == "ic_weighted" else "equal")

    def _meta_candidates(self) -> list[str]:
        choice = self.params["meta"]
        if choice != "auto" and choice not in METAS:
            raise ValueError(f"meta must be one of {['auto', *METAS]}, got {choice!r}")
        return list(METAS) if choice == "auto" else [choice]

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> StackedEnsemble:
        x = as_array(X)
        yv = np.asarray(y, np.float64).ravel()
        candidates = self._meta_candidates()
        splitter = PurgedKFold(self.params["n_splits"], purge=self.params["purge"])
        names = list(self.params["models"])
        oof = np.full((len(x), len(names)), np.nan)
        self.folds_: list[tuple[np.ndarray, np.ndarray]] = []
        self.timings_: dict[str, float] = dict.fromkeys(names, 0.0)
        for k, (train, test) in enumerate(splitter.split(len(x))):
            self.folds_.append((train, test))
            for j, (name, est) in enumerate(self.make_bases().items()):
                t0 = time.perf_counter()
                est.fit(x[train], self._fit_target(yv[train]), None if sample_weight is None else np.asarray(sample_weight)[train])
                # Predict with the rows before the block as context (LSTM sequences), keep the block.
                oof[test, j] = est.predict(x[: test[-1] + 1])[test]
                self.timings_[name] += time.perf_counter() - t0
            logger.info("stacking fold %d/%d done", k + 1, self.params["n_splits"])
        rows = ~np.isnan(oof).any(axis=1)
        self.oof_rows_ = np.flatnonzero(rows)
        self.oof_ = oof[rows]
        self.metas_, meta_oofs, self.meta_scores_ = {}, {}, {}
        y_meta = self._fit_target(yv[rows])
        for kind in candidates:
            meta_x = self._meta_inputs(self.oof_, x[rows], kind)
            self.metas_[kind] = self._new_meta(kind).fit(meta_x, y_meta)
            meta_oofs[kind] = self._meta_oof(kind, meta_x, y_meta)
            ok = ~np.isnan(meta_oofs[kind])
            self.meta_scores_[kind] = float((np.sign(meta_oofs[kind][ok]) == np.sign(yv[rows][ok])).mean())
        self.meta_kind_ = max(candidates, key=lambda k: self.meta_scores_[k])
        self.meta_ = self.metas_[self.meta_kind_]
        logger.info("meta-learner: %s (OOF direction accuracy %s)", self.meta_kind_,
                    {k: round(v, 4) for k, v in self.meta_scores_.items()})
        self._fit_confidence(meta_oofs[self.meta_kind_], yv[rows], self.oof_)
        self.bases_ = {}
        for name, est in self.make_bases().items():
            t0 = time.perf_counter()
            self.bases_[name] = est.fit(x, self._fit_target(yv), sample_weight)
            self.timings_[name] += time.perf_counter() - t0
        return self

    def _meta_oof(self, kind: str, meta_x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The meta-learner's own out-of-fold predictions (purged split over the OOF rows)."""
        meta_oof = np.full(len(y), np.nan)
        for train, test in PurgedKFold(4, purge=self.params["purge"]).split(len(y)):
            meta_oof[test] = self._new_meta(kind).fit(meta_x[train], y[train]).predict(meta_x[test])
        return meta_oof

    def _fit_confidence(self, meta_oof: np.ndarray, y: np.ndarray, base_preds: np.ndarray) -> None:
        """Isotonic map from agreement x strength to direction hit rate, on meta OOF predictions."""
        ok = ~np.isnan(meta_oof)
        self.strength_ref_ = np.sort(np.abs(meta_oof[ok]))
        score = self._score(meta_oof[ok], base_preds[ok])
        hit = (np.sign(meta_oof[ok]) == np.sign(y[ok])).astype(float)
        self.calibrator_ = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(score, hit)
        self.meta_oof_direction_accuracy_ = float(hit.mean())

    def _score(self, pred: np.ndarray, base_preds: np.ndarray) -> np.ndarray:
        agree = (np.sign(base_preds) == np.sign(pred)[:, None]).mean(axis=1)
        strength = np.searchsorted(self.strength_ref_, np.abs(pred)) / max(len(self.strength_ref_), 1)
        return agree * strength

    def base_predictions(self, X: Any) -> np.ndarray:
        x = as_array(X)
        return np.column_stack([est.predict(x) for est in self.bases_.values()])

    def predict_with_confidence(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        x = as_array(X)
        base = self.base_predictions(x)
        pred = self.meta_.predict(self._meta_inputs(base, x))
        return pred, self.calibrator_.predict(self._score(pred, base))

    def predict_meta(self, X: Any, kind: str) -> np.ndarray:
        """Prediction of one fitted meta-learner candidate (for comparing them; `predict` uses the chosen one)."""
        x = as_array(X)
        return self.metas_[kind].predict(self._meta_inputs(self.base_predictions(x), x, kind))

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_with_confidence(X)[0]
