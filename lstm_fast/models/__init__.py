"""scikit-learn estimators on the recurrent layers: a label or value per sequence
(many-to-one) or per step, and forecasts of series."""

from .classifier import LSTMClassifier
from .forecaster import LSTMForecaster
from .per_step import LSTMSequenceClassifier, LSTMSequenceRegressor
from .regressor import LSTMRegressor
from ._stream import Stream

__all__ = ["LSTMClassifier", "LSTMRegressor", "LSTMSequenceClassifier", "LSTMSequenceRegressor",
           "LSTMForecaster", "Stream", "ESTIMATORS"]

#: The estimators by name, as model files name them.
ESTIMATORS = {cls.__name__: cls for cls in (LSTMClassifier, LSTMRegressor,
                                            LSTMSequenceClassifier, LSTMSequenceRegressor)}
