"""TensorFlow Decision Forests random forest (spec - 150 trees, max depth 10) as a FreqAI model:
`--freqaimodel TFDFRandomForestRegressor`.

Hyper-parameters: the spec's defaults, overridden by `freqai.model_training_parameters`.
"""

from freqaimodels.estimators import TFDFRandomForestEstimator
from freqaimodels.estimators.freqai_adapter import EstimatorRegressionModel


class TFDFRandomForestRegressor(EstimatorRegressionModel):
    estimator_class = TFDFRandomForestEstimator
    sequential = False
