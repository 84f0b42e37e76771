"""A plain NumPy LSTM (forward and BPTT in float64): the reference the engine is tested against,
for tests and users alike."""

from .reference import reference_backward, reference_forward

__all__ = ["reference_forward", "reference_backward"]
