"""Gates and state gradients from the engine: forward(return_gates=True) and
backward(return_state_grads=True) for the LSTM, GRU and RNN."""

import numpy as np
import pytest

import lstm_fast
from lstm_fast.testing import reference_forward

from conftest import assert_close
from test_cells import make, random_weights

CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def layer_for(cell, I, H, **kwargs):
    if cell == "lstm":
        return lstm_fast.LSTM(I, H, **kwargs)
    return make(cell, I, H, **kwargs)


def _mask(lengths, B, T):
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    return np.arange(T)[None, :, None] < lengths[:, None, None]  # (B, T, 1), batch-first


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("use_lengths", [False, True])
def test_gates_reproduce_the_outputs(cell, bidirectional, use_lengths, dtype):
    """Recomputing each step's state from the returned gates gives the layer's output (batch
    first, both directions), and padded steps are 0."""
    rng = np.random.default_rng(0)
    B, T, H = 5, 7, 4
    layer = layer_for(cell, 3, H, num_layers=2, bidirectional=bidirectional, batch_first=True,
                      dtype=dtype, random_state=0)
    random_weights(layer, rng)
    x = rng.standard_normal((B, T, 3)).astype(dtype)
    lengths = np.array([7, 3, 5, 1, 6]) if use_lengths else None
    output, state, gates = layer.forward(x, lengths=lengths, return_gates=True)
    plain_output, _ = layer.forward(x, lengths=lengths)
    np.testing.assert_array_equal(output, plain_output)
    D, mask = layer.num_directions, _mask(lengths, B, T)
    assert len(gates) == 2 * D
    for d in range(D):
        g = gates[D + d]  # the last layer's
        h = _replay(cell, g, d == 1, mask)
        assert_close(h, output[:, :, d * H:(d + 1) * H], dtype, f"h from the gates, d={d}")
        for name, a in g.items():
            assert a.shape == (B, T, H) and a.dtype == dtype
            assert np.all(a[~np.broadcast_to(mask, a.shape)] == 0), name


def _replay(cell, g, reverse, mask):
    """h_t for every step from the gate record alone (the states start at 0)."""
    B, T, H = next(iter(g.values())).shape
    order = range(T - 1, -1, -1) if reverse else range(T)
    h, c, hs = np.zeros((B, H)), np.zeros((B, H)), np.zeros((B, T, H))
    for t in order:
        m = mask[:, t]
        if cell == "lstm":
            c_new = g["f"][:, t] * c + g["i"][:, t] * g["g"][:, t]
            assert_close(np.where(m, c_new, 0), g["c"][:, t], g["c"].dtype.type, "c")
            h_new = g["o"][:, t] * np.tanh(c_new)
            c = np.where(m, c_new, c)
        elif cell == "gru":
            h_new = (1 - g["z"][:, t]) * g["n"][:, t] + g["z"][:, t] * h
            assert_close(np.where(m, h_new, 0), g["h"][:, t], g["h"].dtype.type, "h")
        else:
            h_new = g["h"][:, t]
        h = np.where(m, h_new, h)
        hs[:, t] = np.where(m, h_new, 0)
    return hs


@pytest.mark.parametrize("cell", CELLS)
def test_gates_equal_the_reference(cell, dtype):
    rng = np.random.default_rng(1)
    T, B, H = 6, 3, 5
    layer = layer_for(cell, 2, H, bidirectional=True, dtype=dtype, random_state=0)
    random_weights(layer, rng)
    x = rng.standard_normal((T, B, 2))
    lengths = np.array([6, 2, 4])
    _, _, gates = layer.forward(x.astype(dtype), lengths=lengths, return_gates=True)
    params = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    c_width = H if cell == "lstm" else 0
    *_, cache = reference_forward(params, x, np.zeros((2, B, H)), np.zeros((2, B, c_width)),
                                  lengths, 1, True, cell=cell)
    names = {"lstm": ["i", "f", "g", "o", None, "c"], "gru": ["r", "z", "n"],
             "rnn_tanh": ["h"], "rnn_relu": ["h"]}[cell]
    mask = np.arange(T)[:, None] < lengths[None, :]
    for d in range(2):
        for t, _, _, saved, _ in cache["steps"][d]:
            for name, want in zip(names, saved):
                if name is not None:
                    assert_close(gates[d][name][t], np.where(mask[t][:, None], want, 0), dtype,
                                 f"{name}, step {t}")


@pytest.mark.parametrize("cell", CELLS)
def test_state_gradients_match_finite_differences(cell):
    """dL/dh_t (and the LSTM's dL/dc_t) from backward(return_state_grads=True) against central
    differences of the loss as a function of the state at step t: the steps after t are a
    forward from hx = (h_t, c_t), the output at t counts once. dL/dh_t holds c_t, dL/dc_t moves
    h_t = o_t tanh(c_t) with it (BPTT's total gradient of the cell state)."""
    rng = np.random.default_rng(2)
    T, B, H, eps = 6, 2, 3, 1e-6
    layer = layer_for(cell, 2, H, dtype=np.float64, random_state=0)
    random_weights(layer, rng)
    x = rng.standard_normal((T, B, 2))
    w_out, w_h = rng.standard_normal((T, B, H)), rng.standard_normal((1, B, H))
    _, _, gates = layer.forward(x, return_gates=True)
    layer.forward(x, training=True)
    _, state_grads = layer.backward(w_out, w_h, return_state_grads=True)
    lstm = cell == "lstm"
    for t in (0, 2, T - 2):
        o_t = gates[0]["o"][t][None] if lstm else None

        def loss(h_t, c_t):  # the loss as a function of the state at step t
            out, st = layer.forward(x[t + 1:], hx=(h_t, c_t) if lstm else h_t)
            h_n = st[0] if lstm else st
            return float((out * w_out[t + 1:]).sum() + (h_n * w_h).sum()
                         + (h_t[0] * w_out[t]).sum())

        h_t, c_t = _hidden(cell, gates[0], t)[None], gates[0]["c"][t][None] if lstm else None
        for name in ["h", "c"] if lstm else ["h"]:
            for b, j in [(0, 0), (1, 2)]:
                values = []
                for sign in (1, -1):
                    h, c = h_t.copy(), None if c_t is None else c_t.copy()
                    if name == "h":
                        h[0, b, j] += sign * eps
                    else:  # h_t = o_t tanh(c_t) moves with c_t
                        c[0, b, j] += sign * eps
                        h = o_t * np.tanh(c)
                    values.append(loss(h, c))
                numeric = (values[0] - values[1]) / (2 * eps)
                got = state_grads[0][name][t, b, j]
                assert abs(got - numeric) <= 1e-6 * max(1.0, abs(numeric)), (
                    f"dL/d{name}_{t}[{b}, {j}]: {got:.10g} vs finite differences {numeric:.10g}")


def _hidden(cell, g, t):
    if cell == "lstm":
        return g["o"][t] * np.tanh(g["c"][t])
    return g["h"][t]


@pytest.mark.parametrize("cell", CELLS)
def test_runs_of_steps_unbatched_and_training_give_the_same_records(cell, monkeypatch):
    rng = np.random.default_rng(3)
    layer = layer_for(cell, 2, 4, num_layers=2, bidirectional=True, dtype=np.float64,
                      random_state=0)
    x = rng.standard_normal((30, 2))
    out, _, gates = layer.forward(x, return_gates=True)
    assert all(a.shape == (30, 4) for g in gates for a in g.values())
    monkeypatch.setattr(layer, "_call_rows", [(7, 7)] * 2)
    for training in (False, True):
        out2, _, gates2 = layer.forward(x, training=training, return_gates=True)
        np.testing.assert_allclose(out2, out, rtol=1e-13, atol=1e-15)
        for g, g2 in zip(gates, gates2):
            for name in g:
                np.testing.assert_allclose(g2[name], g[name], rtol=1e-13, atol=1e-15)
    grad_x, state_grads = layer.backward(np.ones_like(out), return_state_grads=True)
    assert grad_x.shape == x.shape and len(state_grads) == 4
    assert set(state_grads[0]) == ({"h", "c"} if cell == "lstm" else {"h"})
    # a second backward of the records' training forward is refused as before
    with pytest.raises(RuntimeError, match="preceding forward"):
        layer.backward(np.ones_like(out))


def test_lstm_with_projection_returns_its_gates_and_state_grads():
    rng = np.random.default_rng(4)
    lstm = lstm_fast.LSTM(3, 5, proj_size=2, dtype=np.float64, random_state=0)
    x = rng.standard_normal((6, 2, 3))
    out, _, gates = lstm.forward(x, return_gates=True, training=True)
    r = gates[0]["o"] * np.tanh(gates[0]["c"])
    assert_close(r @ lstm.weight_hr_l0.T, out, np.float64, "projected h")
    _, state_grads = lstm.backward(np.ones_like(out), return_state_grads=True)
    assert state_grads[0]["h"].shape == (6, 2, 2) and state_grads[0]["c"].shape == (6, 2, 5)
    np.testing.assert_array_equal(state_grads[0]["h"][-1], np.ones((2, 2)))  # dL/dh_T = w_out_T


# ----------------------------------------------------------------------------- estimators


def _adding(n, T, rng):
    values, markers = rng.uniform(0, 1, (n, T)), np.zeros((n, T))
    for i in range(n):
        markers[i, rng.choice(T, 2, replace=False)] = 1
    return np.stack([values, markers], axis=2), (values * markers).sum(axis=1)


@pytest.fixture(scope="module", params=["lstm", "gru", "rnn"])
def fitted(request):
    import warnings
    rng = np.random.default_rng(5)
    X, y = _adding(300, 12, rng)
    est = lstm_fast.LSTMRegressor(cell=request.param, hidden_size=8, bidirectional=True,
                                  dropout=0.3, num_layers=2, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    return est, X, y


def test_estimator_gates_are_the_layers(fitted):
    est, X, _ = fitted
    records = est.gate_activations(X)
    data = est._standardized(lstm_fast.models._sequences.check_sequences(
        est, X, reset=False, dtype=est.lstm_.dtype))
    _, _, want = est.lstm_.forward(data.X, return_gates=True)
    assert len(records) == 4
    for got, w in zip(records, want):
        assert set(got) == set(w)
        for name in w:
            np.testing.assert_array_equal(got[name], w[name])
    ragged = est.gate_activations([X[0][:5], X[1]])
    assert len(ragged) == 2 and len(ragged[0]) == 4
    first = est.gate_activations(X[:1, :5])
    for name, a in ragged[0][0].items():
        assert a.shape == (5, 8)
        np.testing.assert_allclose(a, first[0][name][0], rtol=1e-6)


def test_estimator_gate_summary_and_gradient_flow(fitted):
    est, X, y = fitted
    before = est.predict(X)
    summary = est.gate_summary(X)
    gate = {"lstm": "f", "gru": "z", "rnn": "h"}[est.cell]
    values = [r[gate] if gate != "h" else 1 - r["h"] ** 2 for r in est.gate_activations(X)]
    for s, v in zip(summary, values):
        np.testing.assert_allclose(s["mean_per_unit"], v.mean(axis=(0, 1)), rtol=1e-5)
        np.testing.assert_allclose(s["mean_over_time"], v.mean(axis=(0, 2)), rtol=1e-5)
        assert s["share_above"] == pytest.approx(float((v > 0.9).mean()))
    flow = est.gradient_flow(X, y)
    assert len(flow) == 4 and set(flow[0]) == ({"h", "c"} if est.cell == "lstm" else {"h"})
    # at the last step of the last layer's forward direction, dL/dh_T is what the output layer
    # sends back: (mean-loss gradient of the predictions) W_out^T
    pred = est.predict(X)
    d_pred = (pred - y) / (est.target_scale_[0] * len(y))  # (in the units of normalize_y)
    H = est.lstm_.hidden_size
    want = np.linalg.norm(d_pred[:, None] * est.coefs_[0][:H, 0][None, :])
    assert flow[2]["h"][-1] == pytest.approx(want, rel=1e-4)
    assert all(np.all(np.isfinite(f[k])) and f[k].shape == (12,) for f in flow for k in f)
    np.testing.assert_array_equal(est.predict(X), before)  # nothing changed
    assert est.lstm_.dropout == 0.3 and all(not g.any() for g in est.lstm_.grads.values())
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.gradient_flow(X, y[:-1])
