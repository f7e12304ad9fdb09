"""Stacked ensemble: base regressors -> out-of-fold predictions -> combiner, plus confidence.

1. Out-of-fold (OOF) base predictions from a purged walk-forward split: each block is predicted by
   models trained only on rows before it, minus `purge` rows (the label horizon). The default is one
   hold-out (`n_splits=1`: fit on the first half, predict the second): the equal-weight combiner needs
   no fitted weights, so the OOF predictions only calibrate the confidence and score the candidates.
2. `max_features`: each fit uses the columns ranked highest by |rank IC| with the target on its own
   training rows (`selection`); a few dozen instead of FreqAI's ~320 near-copies.
3. The combiner (`meta`, see `combiners`): `"mean"` (equal-weight average, no fitted intercept),
   `"best"` (the member that got the most OOF directions right), `"nnls_shrunk"` (non-negative least
   squares weights on the OOF predictions, shrunk halfway toward equal), `"ic_weighted"` (weighted by each
   base model's positive OOF information coefficient), `"passthrough"` (the spec's stack: standardized
   ridge, alpha by CV, on the base predictions with the selected features passed through), `"bases"`
   (the ridge on the base predictions only). A list (the default: mean, best, nnls_shrunk) or `"auto"`
   (all six): fit each and keep the one whose own OOF predictions (a purged split over the OOF rows,
   training data only) get the direction right most often, ties to the first listed.
4. Confidence: the chosen combiner's OOF predictions give, per row,
   a score = agreement (share of base models with the ensemble's sign) x strength (rank of |pred|);
   an isotonic fit maps the score to the observed direction hit rate. So `confidence` reads as
   "historical probability that the predicted direction is right" and is monotone by construction.
5. Base models are refitted on all rows for inference; with `warm_start` a model that can continue
   (the LSTM) continues from its hold-out fit for a few epochs instead of starting again, and the
   columns stay those chosen on the hold-out's training rows so its inputs keep their meaning.
6. `center_target`: every model (bases and combiner) learns the target minus the mean of the
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
from freqaimodels.estimators.boosting import CatBoostEstimator, LightGBMEstimator, XGBoostEstimator
from freqaimodels.estimators.combiners import WeightedAverage, ridge
from freqaimodels.estimators.forest import TFDFRandomForestEstimator
from freqaimodels.estimators.lstm import KerasLSTMEstimator
from freqaimodels.estimators.selection import select_columns
from freqaimodels.estimators.split import PurgedKFold

logger = logging.getLogger(__name__)

BASE_MODELS: dict[str, type[BaseEstimator]] = {
    "lightgbm": LightGBMEstimator,
    "catboost": CatBoostEstimator,
    "random_forest": TFDFRandomForestEstimator,
    "lstm": KerasLSTMEstimator,
    "xgboost": XGBoostEstimator,
}
# The spec's model sets per bot: trend following (the default), mean reversion, the arbitrage scout.
MODEL_SETS = {
    "trend": ["lightgbm", "catboost", "lstm"],
    "mean_reversion": ["random_forest", "xgboost"],
    "arbitrage": ["lstm"],
}
METAS = ("passthrough", "bases", "mean", "ic_weighted", "best", "nnls_shrunk")
# the default: chosen in each training window by purged inner validation among these (ties: the first)
VALIDATED = ("mean", "best", "nnls_shrunk")
WEIGHTING = {"mean": "equal", "ic_weighted": "ic", "best": "best", "nnls_shrunk": "nnls"}


class StackedEnsemble(BaseEstimator):
    defaults = {
        "models": MODEL_SETS["trend"],
        "n_splits": 1,
        "purge": 12,
        "meta": list(VALIDATED),
        "max_features": 40,
        "warm_start": True,
        "alphas": (1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
        "clip": 4.0,
        "center_target": False,
    }

    def make_bases(self) -> dict[str, BaseEstimator]:
        unknown = set(self.params["models"]) - set(BASE_MODELS)
        if unknown:
            raise ValueError(f"unknown base models {sorted(unknown)}; choose from {sorted(BASE_MODELS)}")
        return {
            name: BASE_MODELS[name](**self.params.get(name, {})).set_label_period(self._purge())
            for name in self.params["models"]
        }

    def _purge(self) -> int:
        """Rows left out before every checked block: the configured purge, at least the label's horizon."""
        return max(int(self.params["purge"]), self.label_period_)

    def _fit_target(self, y: np.ndarray) -> np.ndarray:
        """`center_target`: learn the return in excess of the training window's mean (its drift)."""
        return y - y.mean() if self.params["center_target"] else y

    def _meta_inputs(self, base_preds: np.ndarray, x: np.ndarray, kind: str | None = None) -> np.ndarray:
        kind = kind or self.meta_kind_
        return np.hstack([base_preds, np.nan_to_num(x)]) if kind == "passthrough" else base_preds

    def _new_meta(self, kind: str):
        if kind in ("passthrough", "bases"):
            return ridge(self.params["alphas"], self.params["clip"])
        return WeightedAverage(WEIGHTING[kind])

    def _meta_candidates(self) -> list[str]:
        choice = self.params["meta"]
        names = list(METAS) if choice == "auto" else [choice] if isinstance(choice, str) else list(choice)
        if not names or any(not isinstance(n, str) or n not in METAS for n in names):
            raise ValueError(f"meta must be one of {['auto', *METAS]} or a list of them, got {choice!r}")
        return names

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> StackedEnsemble:
        x = as_array(X)
        yv = np.asarray(y, np.float64).ravel()
        w = None if sample_weight is None else np.asarray(sample_weight)
        candidates = self._meta_candidates()
        splitter = PurgedKFold(self.params["n_splits"], purge=self._purge())
        names = list(self.params["models"])
        oof = np.full((len(x), len(names)), np.nan)
        self.folds_: list[tuple[np.ndarray, np.ndarray]] = []
        self.timings_: dict[str, float] = dict.fromkeys([*names, "selection"], 0.0)
        last: tuple[dict[str, BaseEstimator], np.ndarray] | None = None
        for k, (train, test) in enumerate(splitter.split(len(x))):
            self.folds_.append((train, test))
            cols = self._select(x[train], yv[train])
            bases = self.make_bases()
            # Predict the block with the rows just before it as context (the LSTM's sequences), keep the block.
            lo = max(0, test[0] - self._context())
            for j, (name, est) in enumerate(bases.items()):
                t0 = time.perf_counter()
                est.fit(x[train][:, cols], self._fit_target(yv[train]), None if w is None else w[train])
                oof[test, j] = est.predict(x[lo : test[-1] + 1][:, cols])[test - lo]
                self.timings_[name] += time.perf_counter() - t0
            last = (bases, cols)
            logger.info("stacking fold %d/%d done", k + 1, self.params["n_splits"])
        warm = bool(self.params["warm_start"]) and last is not None
        self.columns_ = last[1] if warm else self._select(x, yv)
        xs = x[:, self.columns_]
        rows = ~np.isnan(oof).any(axis=1)
        self.oof_rows_ = np.flatnonzero(rows)
        self.oof_ = oof[rows]
        self.metas_, meta_oofs, self.meta_scores_ = {}, {}, {}
        y_meta = self._fit_target(yv[rows])
        for kind in candidates:
            meta_x = self._meta_inputs(self.oof_, xs[rows], kind)
            self.metas_[kind] = self._new_meta(kind).fit(meta_x, y_meta)
            meta_oofs[kind] = self._meta_oof(kind, meta_x, y_meta)
            ok = ~np.isnan(meta_oofs[kind])
            self.meta_scores_[kind] = float((np.sign(meta_oofs[kind][ok]) == np.sign(yv[rows][ok])).mean())
        self.meta_kind_ = max(candidates, key=lambda k: self.meta_scores_[k])
        self.meta_ = self.metas_[self.meta_kind_]
        logger.info(
            "meta-learner: %s (OOF direction accuracy %s)",
            self.meta_kind_,
            {k: round(v, 4) for k, v in self.meta_scores_.items()},
        )
        self._fit_confidence(meta_oofs[self.meta_kind_], yv[rows], self.oof_)
        self.bases_ = {}
        for name, est in self.make_bases().items():
            t0 = time.perf_counter()
            previous = last[0][name] if warm else None
            if previous is not None and hasattr(previous, "warm_fit"):
                self.bases_[name] = previous.warm_fit(xs, self._fit_target(yv), w)
            else:
                self.bases_[name] = est.fit(xs, self._fit_target(yv), w)
            self.timings_[name] += time.perf_counter() - t0
        return self

    def _context(self) -> int:
        """Rows before a block that a sequence model needs to predict its first row."""
        return max(
            (
                int(self.params.get(n, {}).get("sequence_length", KerasLSTMEstimator.defaults["sequence_length"])) - 1
                for n in self.params["models"]
                if n == "lstm"
            ),
            default=0,
        )

    def _select(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        cols = select_columns(x, self._fit_target(y), self.params["max_features"])
        self.timings_["selection"] += time.perf_counter() - t0
        return cols

    def _meta_oof(self, kind: str, meta_x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The meta-learner's own out-of-fold predictions (purged split over the OOF rows)."""
        meta_oof = np.full(len(y), np.nan)
        for train, test in PurgedKFold(4, purge=self._purge()).split(len(y)):
            meta_oof[test] = self._new_meta(kind).fit(meta_x[train], y[train]).predict(meta_x[test])
        return meta_oof

    def _fit_confidence(self, meta_oof: np.ndarray, y: np.ndarray, base_preds: np.ndarray) -> None:
        """Isotonic map from agreement x strength to direction hit rate, on meta OOF predictions."""
        ok = ~np.isnan(meta_oof)
        self.strength_ref_ = np.sort(np.abs(meta_oof[ok]))
        score = self._score(meta_oof[ok], base_preds[ok])
        hit = (np.sign(meta_oof[ok]) == np.sign(y[ok])).astype(float)
        self.calibrator_ = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(
            score, hit
        )
        self.meta_oof_direction_accuracy_ = float(hit.mean())

    def _score(self, pred: np.ndarray, base_preds: np.ndarray) -> np.ndarray:
        agree = (np.sign(base_preds) == np.sign(pred)[:, None]).mean(axis=1)
        strength = np.searchsorted(self.strength_ref_, np.abs(pred)) / max(len(self.strength_ref_), 1)
        return agree * strength

    def base_predictions(self, X: Any) -> np.ndarray:
        x = as_array(X)[:, self.columns_]
        return np.column_stack([est.predict(x) for est in self.bases_.values()])

    def predict_parts(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, confidence, base predictions: one column per base model) in one pass."""
        x = as_array(X)
        base = self.base_predictions(x)
        pred = self.meta_.predict(self._meta_inputs(base, x[:, self.columns_]))
        return pred, self.calibrator_.predict(self._score(pred, base)), base

    def predict_with_confidence(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_parts(X)[:2]

    def predict_meta(self, X: Any, kind: str) -> np.ndarray:
        """Prediction of one fitted meta-learner candidate (for comparing them; `predict` uses the chosen one)."""
        x = as_array(X)
        return self.metas_[kind].predict(self._meta_inputs(self.base_predictions(x), x[:, self.columns_], kind))

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_with_confidence(X)[0]
