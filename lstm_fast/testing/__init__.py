"""A plain NumPy LSTM (forward and BPTT in float64): the reference the engine is tested against,
for tests and users alike."""

from .reference import quantize_int8, reference_backward, reference_forward, round_bfloat16

__all__ = ["reference_forward", "reference_backward", "round_bfloat16", "quantize_int8"]
