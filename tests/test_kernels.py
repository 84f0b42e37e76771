"""The engine's own sigmoid and tanh against NumPy, over the whole float range."""

import numpy as np
import pytest

from lstm_fast._lstm import activations

# Largest relative error allowed, in units of the dtype's epsilon.
ULPS = 8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_are_accurate_everywhere(dtype):
    rng = np.random.default_rng(0)
    x = np.concatenate([
        np.linspace(-30, 30, 200001),
        rng.standard_normal(10000) * 1e-4,
        np.geomspace(1e-30, 1e3, 2000), -np.geomspace(1e-30, 1e3, 2000),
        [0.0, -0.0, 1e4, -1e4, np.finfo(dtype).max, -np.finfo(dtype).max],
    ]).astype(dtype)
    sig, th = np.empty_like(x), np.empty_like(x)
    activations(x, sig, th)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        sig_true = np.where(x64 >= 0, 1 / (1 + np.exp(-np.abs(x64))),
                            np.exp(-np.abs(x64)) / (1 + np.exp(-np.abs(x64))))
    th_true = np.tanh(x64)
    eps = np.finfo(dtype).eps
    tiny = np.finfo(dtype).tiny
    for got, want, name in ((sig, sig_true, "sigmoid"), (th, th_true, "tanh")):
        assert np.all(np.isfinite(got)), name
        err = np.abs(got - want) / np.maximum(np.abs(want), tiny / eps)
        assert err.max() <= ULPS * eps, f"{name}: {err.max() / eps:.1f} ulp at x={x[err.argmax()]}"
    assert np.all((sig >= 0) & (sig <= 1)) and np.all(np.abs(th) <= 1)
