"""lstm_fast: a Cython-accelerated LSTM for the CPU.

``LSTM``, ``GRU`` and ``RNN`` are PyTorch's ``nn.LSTM``, ``nn.GRU`` and ``nn.RNN`` on NumPy
arrays; ``LSTMClassifier`` and ``LSTMRegressor`` (a label or value per sequence) and
``LSTMSequenceClassifier`` and ``LSTMSequenceRegressor`` (per step) are scikit-learn
estimators built on them (``cell=`` picks the layer), as is ``LSTMForecaster``; ``load`` reads
an estimator written by its ``save``.
"""

import glob as _glob
import os as _os

try:
    from . import _lstm  # noqa: F401  (the compiled engine)
except ImportError as _exc:
    _here = _os.path.dirname(_os.path.abspath(__file__))
    if _glob.glob(_os.path.join(_here, "_lstm.*")):
        _why = (f"{_exc}. Reinstall lstm_fast (`pip install --force-reinstall .` from its "
                "source) for this Python and NumPy.")
    else:
        _why = "that folder holds no built engine."
        if _os.path.isfile(_os.path.join(_here, _os.pardir, "setup.py")):
            _why += (" It is lstm_fast's source tree, which Python finds before the installed "
                     "package when run from the repository root: run Python from another "
                     "folder, or build the engine in place with `pip install -e .`.")
    raise ImportError(f"lstm_fast's compiled engine (lstm_fast._lstm) could not be imported "
                      f"from {_here}: {_why}") from None

from .io import load
from .models import (LSTMClassifier, LSTMForecaster, LSTMRegressor, LSTMSequenceClassifier,
                     LSTMSequenceRegressor)
from .nn import GRU, LSTM, RNN

__version__ = "0.1.0"

__all__ = ["GRU", "LSTM", "LSTMClassifier", "LSTMForecaster", "LSTMRegressor",
           "LSTMSequenceClassifier", "LSTMSequenceRegressor", "RNN", "load", "__version__"]
