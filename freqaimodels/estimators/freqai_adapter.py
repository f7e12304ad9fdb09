"""One thin FreqAI adapter for every estimator (like FreqAI's own prediction_models)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from freqtrade.exceptions import OperationalException
from freqtrade.freqai.base_models.BaseRegressionModel import BaseRegressionModel
from freqtrade.freqai.data_kitchen import FreqaiDataKitchen
from pandas import DataFrame

from freqaimodels.estimators.base import BaseEstimator

logger = logging.getLogger(__name__)
CONFIDENCE = "&-confidence"
BASE_PREFIX = "&-base_"  # one column per base model of an ensemble: what the predictions store scores


def base_column(name: str) -> str:
    return f"{BASE_PREFIX}{name}"


class EstimatorRegressionModel(BaseRegressionModel):
    """Fits `estimator_class(**model_training_parameters)` on FreqAI's prepared data.

    Sequence models (LSTM, the ensemble that contains it) need time-ordered rows: FreqAI must not
    shuffle the train/test split, and live prediction passes the last `sequence_length` candles.
    """

    estimator_class: ClassVar[type[BaseEstimator]]
    sequential: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.continual_learning:
            # FreqAI would hand fit() the previous model; ours start afresh each retrain, and the ensemble
            # picks its columns per training window, so a previous model's inputs would mean other things.
            raise OperationalException(
                f"{type(self).__name__} retrains from scratch every time and does not support "
                "freqai.continual_learning: set it to false"
            )
        if self.sequential:
            split = self.freqai_info.get("data_split_parameters", {})
            if split.get("shuffle", False):
                raise OperationalException(
                    f"{type(self).__name__} builds causal sequences: set freqai.data_split_parameters.shuffle to false"
                )
            self.CONV_WIDTH = max(self.CONV_WIDTH, self.sequence_length())

    def sequence_length(self) -> int:
        params = self.model_training_parameters
        return int(params.get("sequence_length", params.get("lstm", {}).get("sequence_length", 20)))

    def fit(self, data_dictionary: dict, dk: FreqaiDataKitchen, **kwargs: Any) -> BaseEstimator:
        labels = data_dictionary["train_labels"]
        if labels.shape[1] != 1:
            raise OperationalException(f"{type(self).__name__} predicts one target, got {list(labels.columns)}")
        horizon = int(self.freqai_info.get("feature_parameters", {}).get("label_period_candles", 0))
        estimator = self.estimator_class(**self.model_training_parameters).set_label_period(horizon)
        logger.info("fitting %s on %s rows x %s features", estimator, *data_dictionary["train_features"].shape)
        return estimator.fit(
            data_dictionary["train_features"], labels.iloc[:, 0].to_numpy(), data_dictionary["train_weights"]
        )

    def _features_for_prediction(self, unfiltered_df: DataFrame, dk: FreqaiDataKitchen):
        dk.find_features(unfiltered_df)
        features, _ = dk.filter_features(unfiltered_df, dk.training_features_list, training_filter=False)
        features, outliers, _ = dk.feature_pipeline.transform(features, outlier_check=True)
        return features, outliers

    def _finish(self, pred_df: DataFrame, outliers: npt.NDArray, dk: FreqaiDataKitchen):
        pred_df, _, _ = dk.label_pipeline.inverse_transform(pred_df)
        if dk.feature_pipeline["di"]:
            dk.DI_values = dk.feature_pipeline["di"].di_values
        else:
            dk.DI_values = np.zeros(outliers.shape[0])
        dk.do_predict = outliers
        return pred_df, dk.do_predict


class ConfidenceRegressionModel(EstimatorRegressionModel):
    """Adds the estimator's `&-confidence` column next to the prediction, and for an ensemble each
    base model's prediction (`&-base_<name>`, in the label's units) so each can be scored live."""

    def predict(self, unfiltered_df: DataFrame, dk: FreqaiDataKitchen, **kwargs: Any):
        features, outliers = self._features_for_prediction(unfiltered_df, dk)
        parts = getattr(self.model, "predict_parts", None)
        pred, conf, base = parts(features) if parts else (*self.model.predict_with_confidence(features), None)
        pred_df, do_predict = self._finish(DataFrame({dk.label_list[0]: pred}), outliers, dk)
        pred_df[CONFIDENCE] = conf
        # FreqAI keeps running mean/std per output column of live predictions.
        dk.data.setdefault("labels_mean", {})[CONFIDENCE] = 0.5
        dk.data.setdefault("labels_std", {})[CONFIDENCE] = 0.0
        if base is not None and base.shape[1] > 1:
            label = dk.label_list[0]
            for name, column in zip(self.model.bases_, base.T, strict=True):
                unscaled, _, _ = dk.label_pipeline.inverse_transform(DataFrame({label: column}))
                pred_df[base_column(name)] = unscaled[label].to_numpy()
                dk.data["labels_mean"][base_column(name)] = 0.0
                dk.data["labels_std"][base_column(name)] = 0.0
        return pred_df, do_predict
