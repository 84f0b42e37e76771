"""lstm_fast: a Cython-accelerated LSTM for the CPU.

``LSTM`` is PyTorch's ``nn.LSTM`` on NumPy arrays; ``LSTMClassifier`` and ``LSTMRegressor`` are
scikit-learn estimators built on it.
"""

from ._layer import LSTM

__version__ = "0.1.0"

__all__ = ["LSTM", "__version__"]
