"""Recurrent layers with PyTorch's semantics and weight layout, on the compiled engine."""

from .lstm import LSTM, param_shapes

__all__ = ["LSTM", "param_shapes"]
