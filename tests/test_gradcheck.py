"""Gradients against central finite differences, in float64."""

import numpy as np
import pytest

import lstm_fast

from conftest import random_state

EPS = 1e-6


def _loss(lstm, x, hx, lengths, w_out, w_h, w_c, training=False):
    lstm.mark_updated()  # (_numeric writes into the parameter arrays in place)
    out, (h_n, c_n) = lstm.forward(x, hx, lengths=lengths, training=training)
    return float((out * w_out).sum() + (h_n * w_h).sum() + (c_n * w_c).sum()), out, h_n, c_n


def _numeric(f, a, index):
    old = a[index]
    a[index] = old + EPS
    plus = f()
    a[index] = old - EPS
    minus = f()
    a[index] = old
    return (plus - minus) / (2 * EPS)


def _check(analytic, array, f, rng, n=12):
    """Compare analytic gradient entries with finite differences at n random positions."""
    flat = [np.unravel_index(i, array.shape)
            for i in rng.choice(array.size, size=min(n, array.size), replace=False)]
    for index in flat:
        numeric = _numeric(f, array, index)
        assert abs(analytic[index] - numeric) <= 1e-6 * max(1.0, abs(numeric)), (
            f"at {index}: analytic {analytic[index]:.10g} vs numeric {numeric:.10g}")


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers,bidirectional,proj_size",
                         [(1, False, 0), (2, True, 0), (2, True, 2), (1, False, 3)])
def test_gradients_match_finite_differences(use_lengths, num_layers, bidirectional, proj_size):
    rng = np.random.default_rng(11)
    T, B, I, H = 5, 3, 3, 4
    lstm = lstm_fast.LSTM(I, H, num_layers=num_layers, bidirectional=bidirectional,
                          proj_size=proj_size, dtype=np.float64, random_state=5)
    x = rng.standard_normal((T, B, I))
    h0, c0 = random_state(lstm, B, rng)
    lengths = np.array([2, 5, 4]) if use_lengths else None
    _, out, h_n, c_n = _loss(lstm, x, (h0, c0), lengths, 0, 0, 0)
    w_out, w_h, w_c = (rng.standard_normal(a.shape) for a in (out, h_n, c_n))

    lstm.forward(x, (h0, c0), lengths=lengths, training=True)
    grad_x = lstm.backward(w_out, w_h, w_c)
    grads = {k: g.copy() for k, g in lstm.grads.items()}
    grad_h0, grad_c0 = lstm.grad_hx

    def f():
        return _loss(lstm, x, (h0, c0), lengths, w_out, w_h, w_c)[0]

    _check(grad_x, x, f, rng)
    _check(grad_h0, h0, f, rng)
    _check(grad_c0, c0, f, rng)
    for name, param in lstm.named_parameters():
        _check(grads[name], param, f, rng, n=6)


def test_gradients_accumulate_and_zero_grad():
    rng = np.random.default_rng(0)
    lstm = lstm_fast.LSTM(2, 3, dtype=np.float64, random_state=0)
    x = rng.standard_normal((4, 2, 2))
    g = rng.standard_normal((4, 2, 3))
    lstm.forward(x, training=True)
    lstm.backward(g)
    once = {k: v.copy() for k, v in lstm.grads.items()}
    assert all(np.abs(v).max() > 0 for v in once.values())
    lstm.forward(x, training=True)
    lstm.backward(g)
    for k in once:
        np.testing.assert_allclose(lstm.grads[k], 2 * once[k], rtol=1e-12)
    lstm.zero_grad()
    assert all(np.all(v == 0) for v in lstm.grads.values())
    assert lstm.grad_hx is None
