"""CatBoost (spec - 300 iterations, lr 0.05, depth 6) as a FreqAI model: `--freqaimodel CatBoostBaseRegressor`.

Hyper-parameters: the spec's defaults, overridden by `freqai.model_training_parameters`.
"""

from freqaimodels.estimators import CatBoostEstimator
from freqaimodels.estimators.freqai_adapter import EstimatorRegressionModel


class CatBoostBaseRegressor(EstimatorRegressionModel):
    estimator_class = CatBoostEstimator
    sequential = False
