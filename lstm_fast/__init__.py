"""lstm_fast: a Cython-accelerated LSTM for the CPU.

``LSTM`` is PyTorch's ``nn.LSTM`` on NumPy arrays; ``LSTMClassifier`` and ``LSTMRegressor`` are
scikit-learn estimators built on it; ``load`` reads an estimator written by its ``save``.
"""

from ._estimators import LSTMClassifier, LSTMRegressor
from ._layer import LSTM
from ._persistence import load

__version__ = "0.1.0"

__all__ = ["LSTM", "LSTMClassifier", "LSTMRegressor", "load", "__version__"]
