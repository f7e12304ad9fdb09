"""Stacked ensemble (LightGBM + CatBoost + TF-DF random forest + Keras LSTM -> meta-learner)
as a FreqAI model: `--freqaimodel StackedEnsembleRegressor`.

Returns the prediction plus `&-confidence`: the calibrated probability (from out-of-fold history)
that the predicted direction is right. `freqai.model_training_parameters` may hold `n_splits`,
`purge` (set it to the label horizon), `models` (subset of base models), `meta` (how the base
predictions are combined: see `estimators/stacking.py`) and one dict per base model
(`lightgbm`, `catboost`, `random_forest`, `lstm`) overriding the spec parameters.
"""

from freqaimodels.estimators import StackedEnsemble
from freqaimodels.estimators.freqai_adapter import ConfidenceRegressionModel


class StackedEnsembleRegressor(ConfidenceRegressionModel):
    estimator_class = StackedEnsemble
    sequential = True
