"""Keras LSTM (spec - 128/64/32 units, dropout 0.3, sequence length 20) as a FreqAI model:
`--freqaimodel KerasLSTMRegressor`.

Hyper-parameters: the spec's defaults, overridden by `freqai.model_training_parameters`.
"""

from freqaimodels.estimators import KerasLSTMEstimator
from freqaimodels.estimators.freqai_adapter import EstimatorRegressionModel


class KerasLSTMRegressor(EstimatorRegressionModel):
    estimator_class = KerasLSTMEstimator
    sequential = True
