"""``lstm-fast demo``: the LSTM's claims (long lags, the forget gate, orthogonal recurrent
weights) measured against a GRU and a plain RNN."""

from .run import MODELS, Settings, format_results, run_demo

__all__ = ["MODELS", "Settings", "format_results", "run_demo"]
