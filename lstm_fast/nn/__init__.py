"""Recurrent layers with PyTorch's semantics and weight layout, on the compiled engine."""

from ._recurrent import param_shapes
from .gru import GRU
from .lstm import LSTM
from .rnn import RNN

__all__ = ["GRU", "LSTM", "RNN", "param_shapes"]
