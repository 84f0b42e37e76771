"""scikit-learn estimators on the recurrent layers: many-to-one classifier and regressor."""

from .classifier import LSTMClassifier
from .regressor import LSTMRegressor

__all__ = ["LSTMClassifier", "LSTMRegressor"]
