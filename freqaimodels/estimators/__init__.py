"""scikit-learn style regressors behind the FreqAI model classes (numpy / DataFrame in, 1-d out)."""

from freqaimodels.estimators.boosting import CatBoostEstimator, LightGBMEstimator, XGBoostEstimator
from freqaimodels.estimators.forest import TFDFRandomForestEstimator
from freqaimodels.estimators.lstm import KerasLSTMEstimator
from freqaimodels.estimators.split import PurgedKFold
from freqaimodels.estimators.stacking import StackedEnsemble

__all__ = [
    "CatBoostEstimator",
    "KerasLSTMEstimator",
    "LightGBMEstimator",
    "PurgedKFold",
    "StackedEnsemble",
    "TFDFRandomForestEstimator",
    "XGBoostEstimator",
]
