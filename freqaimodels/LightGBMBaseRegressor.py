"""LightGBM (spec - 200 estimators, lr 0.1, max depth 8) as a FreqAI model: `--freqaimodel LightGBMBaseRegressor`.

Hyper-parameters: the spec's defaults, overridden by `freqai.model_training_parameters`.
"""

from freqaimodels.estimators import LightGBMEstimator
from freqaimodels.estimators.freqai_adapter import EstimatorRegressionModel


class LightGBMBaseRegressor(EstimatorRegressionModel):
    estimator_class = LightGBMEstimator
    sequential = False
