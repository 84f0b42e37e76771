"""GRU and RNN layers: against the NumPy reference and finite differences over a grid of
configurations (against torch.nn.GRU / torch.nn.RNN: test_torch_parity.py)."""

import copy
import itertools
import pickle

import numpy as np
import pytest

import lstm_fast
from lstm_fast.testing import reference_backward, reference_forward

from conftest import assert_close
from test_gradcheck import _check

CELLS = ["gru", "rnn_tanh", "rnn_relu"]


def make(cell, input_size, hidden_size, **kwargs):
    """The layer for `cell` ("gru", "rnn_tanh", "rnn_relu")."""
    if cell == "gru":
        return lstm_fast.GRU(input_size, hidden_size, **kwargs)
    return lstm_fast.RNN(input_size, hidden_size, nonlinearity=cell[4:], **kwargs)


def random_weights(layer, rng, scale=0.5):
    """Random parameters of every entry (biases too), so that no term of the maths is 0."""
    layer.load_state_dict({k: rng.standard_normal(v.shape) * scale
                           for k, v in layer.state_dict().items()})


def forward_backward(layer, x, h0, lengths, g_out, g_h):
    out, h_n = layer.forward(x, h0, lengths=lengths, training=True)
    grad_x = layer.backward(g_out, g_h)
    result = dict(out=out, h_n=h_n, grad_x=grad_x, grad_h0=layer.grad_hx)
    result.update({"grad_" + k: v for k, v in layer.grads.items()})
    return result


def reference(layer, x, h0, lengths, g_out, g_h, batch_first=False):
    """The NumPy reference's forward_backward for layer's weights (float64, time-major in and
    out unless batch_first)."""
    params = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    x64, g64 = (np.asarray(a, np.float64) for a in (x, g_out))
    if batch_first:
        x64, g64 = x64.swapaxes(0, 1), g64.swapaxes(0, 1)
    T, B = x64.shape[:2]
    lens = np.full(B, T) if lengths is None else np.asarray(lengths)
    c0 = np.zeros(h0.shape[:2] + (0,))
    out, h_n, _, cache = reference_forward(params, x64, h0, c0, lens, layer.num_layers,
                                           layer.bidirectional, cell=layer._cell)
    grad_x, grads, grad_h0, _ = reference_backward(params, cache, g64, g_h)
    if batch_first:
        out, grad_x = out.swapaxes(0, 1), grad_x.swapaxes(0, 1)
    result = dict(out=out, h_n=h_n, grad_x=grad_x, grad_h0=grad_h0)
    result.update({"grad_" + k: v for k, v in grads.items()})
    return result


def _inputs(layer, T, B, rng, dtype, batch_first=False):
    D = layer.num_directions
    x = rng.standard_normal((B, T, layer.input_size) if batch_first else (T, B, layer.input_size))
    h0 = rng.standard_normal((D * layer.num_layers, B, layer.hidden_size))
    out_shape = x.shape[:2] + (D * layer.hidden_size,)
    g_out, g_h = rng.standard_normal(out_shape), rng.standard_normal(h0.shape)
    return tuple(a.astype(dtype) for a in (x, h0, g_out, g_h))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,use_lengths",
                         list(itertools.product([1, 2], [False, True], [False, True],
                                                [False, True])))
def test_matches_reference(cell, dtype, num_layers, bidirectional, batch_first, use_lengths):
    rng = np.random.default_rng(3)
    layer = make(cell, 4, 6, num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=batch_first, dtype=dtype)
    random_weights(layer, rng)
    x, h0, g_out, g_h = _inputs(layer, 8, 5, rng, dtype, batch_first)
    lengths = np.array([8, 3, 5, 1, 8]) if use_lengths else None
    ours = forward_backward(layer, x, h0, lengths, g_out, g_h)
    ref = reference(layer, x, h0.astype(np.float64), lengths, g_out, g_h.astype(np.float64),
                    batch_first)
    assert set(ours) == set(ref)
    for key in ref:
        assert_close(ours[key], ref[key], dtype, key)
    if use_lengths:  # padded steps' outputs are 0 and take no gradient
        pad = (np.arange(8)[:, None] >= lengths[None, :])
        out = ours["out"].swapaxes(0, 1) if batch_first else ours["out"]
        assert np.all(out[pad] == 0)


@pytest.mark.parametrize("cell", CELLS)
def test_unbatched_and_no_bias_match_reference(cell, dtype):
    rng = np.random.default_rng(4)
    layer = make(cell, 3, 5, num_layers=2, bidirectional=True, bias=False, dtype=dtype)
    assert not any(k.startswith("bias") for k in layer.state_dict())
    random_weights(layer, rng)
    x, h0, g_out, g_h = _inputs(layer, 6, 1, rng, dtype)
    ours = forward_backward(layer, x[:, 0], h0[:, 0], None, g_out[:, 0], g_h[:, 0])
    ref = reference(layer, x, h0.astype(np.float64), None, g_out, g_h.astype(np.float64))
    for key in ("out", "grad_x"):
        assert_close(ours[key], ref[key][:, 0], dtype, key)
    for key in ("h_n", "grad_h0"):
        assert_close(ours[key], ref[key][:, 0], dtype, key)
    assert ours["out"].shape == (6, 10) and ours["h_n"].shape == (4, 5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers,bidirectional,use_lengths",
                         [(1, False, False), (2, True, True)])
def test_gradients_match_finite_differences(cell, num_layers, bidirectional, use_lengths):
    rng = np.random.default_rng(11)
    layer = make(cell, 3, 4, num_layers=num_layers, bidirectional=bidirectional,
                 dtype=np.float64, random_state=5)
    random_weights(layer, rng)
    x, h0, w_out, w_h = _inputs(layer, 5, 3, rng, np.float64)
    lengths = np.array([2, 5, 4]) if use_lengths else None
    ours = forward_backward(layer, x, h0, lengths, w_out, w_h)

    def loss():
        layer.mark_updated()  # (_check writes into the parameter arrays in place)
        out, h_n = layer.forward(x, h0, lengths=lengths)
        return float((out * w_out).sum() + (h_n * w_h).sum())

    _check(ours["grad_x"], x, loss, rng, n=8)
    _check(ours["grad_h0"], h0, loss, rng, n=8)
    for name, param in layer.named_parameters():
        _check(ours["grad_" + name], param, loss, rng, n=8)


@pytest.mark.parametrize("cell", CELLS)
def test_runs_of_steps_equal_one_call(cell, monkeypatch):
    """A long call split into runs of steps (the Ctrl-C granularity) gives one call's results."""
    rng = np.random.default_rng(5)
    layer = make(cell, 3, 8, num_layers=2, bidirectional=True, dtype=np.float64)
    x, h0, g_out, g_h = _inputs(layer, 40, 6, rng, np.float64)
    lengths = rng.integers(1, 41, size=6)
    whole = forward_backward(layer, x, h0, lengths, g_out, g_h)
    layer.zero_grad()
    monkeypatch.setattr(layer, "_call_rows", [(37, 37)] * 2)
    runs = forward_backward(layer, x, h0, lengths, g_out, g_h)
    for key in whole:
        np.testing.assert_allclose(runs[key], whole[key], rtol=1e-12, atol=1e-14, err_msg=key)


@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_names_shapes_and_init(cell):
    layer = make(cell, 3, 5, num_layers=2, bidirectional=True, random_state=0)
    G = 3 if cell == "gru" else 1
    shapes = {k: v.shape for k, v in layer.state_dict().items()}
    assert shapes["weight_ih_l0"] == (G * 5, 3)
    assert shapes["weight_ih_l1_reverse"] == (G * 5, 10)
    assert shapes["weight_hh_l1"] == (G * 5, 5)
    assert shapes["bias_hh_l0_reverse"] == (G * 5,)
    assert len(shapes) == 16
    w = layer.weight_hh_l0.astype(np.float64)
    for block in np.split(w, G):  # each gate block orthogonal
        np.testing.assert_allclose(block @ block.T, np.eye(5), atol=1e-5)
    assert not layer.bias_ih_l0.any() and not layer.bias_hh_l0.any()
    again = make(cell, 3, 5, num_layers=2, bidirectional=True, random_state=0)
    assert all(np.array_equal(a, b) for a, b in zip(layer.state_dict().values(),
                                                    again.state_dict().values()))


def test_rnn_and_gru_arguments_and_errors():
    with pytest.raises(ValueError, match="nonlinearity"):
        lstm_fast.RNN(2, 3, nonlinearity="sigmoid")
    rnn = lstm_fast.RNN(2, 3, 2, "relu")  # torch's positional order
    assert rnn.num_layers == 2 and rnn.nonlinearity == "relu"
    assert repr(rnn) == "RNN(2, 3, num_layers=2, nonlinearity='relu', dtype=float32)"
    gru = lstm_fast.GRU(2, 3)
    with pytest.raises(ValueError, match="hx h_0 must have shape"):
        gru.forward(np.zeros((4, 1, 2)), hx=np.zeros((1, 2, 3)))
    with pytest.raises(AttributeError, match="fixed"):
        rnn.nonlinearity = "tanh"
    with pytest.raises(RuntimeError, match="preceding forward"):
        gru.backward(np.zeros((4, 1, 3)))
    with pytest.raises(ValueError, match=r"weight_ih_l0.*has shape \(12, 2\), expected \(9, 2\)"):
        gru.load_state_dict(lstm_fast.LSTM(2, 3).state_dict())


@pytest.mark.parametrize("cell", CELLS)
def test_copies_and_threads(cell):
    """Copies and pickles hold the weights; several threads may run inference on one layer."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(6)
    layer = make(cell, 4, 32, num_layers=2, random_state=1)
    x = rng.standard_normal((20, 16, 4)).astype(np.float32)
    want, _ = layer.forward(x)
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert np.array_equal(other.forward(x)[0], want)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: layer.forward(x)[0], range(8)))
    assert all(np.array_equal(r, want) for r in results)


def test_engine_refuses_arrays_a_cell_has_no_use_for():
    from lstm_fast._lstm import CELL_KINDS, forward_layer

    f4 = np.float32
    x, w_ih, w_hh = np.ones((2, 2), f4), np.ones((9, 2), f4), np.ones((9, 3), f4)
    steps, offsets = np.array([1, 1], np.intp), np.array([0, 1], np.intp)
    h, out = np.zeros((1, 3), f4), np.zeros((2, 3), f4)
    args = (x, w_ih, w_hh, None, None, None, steps, offsets, h)
    forward_layer(*args, None, out, 0, False, kind=CELL_KINDS["gru"])
    with pytest.raises(ValueError, match="cell must be None"):
        forward_layer(*args, np.zeros((1, 3), f4), out, 0, False, kind=CELL_KINDS["gru"])
    with pytest.raises(ValueError, match="kind must be one of 0 .lstm."):
        forward_layer(*args, None, out, 0, False, kind=7)
    with pytest.raises(ValueError, match="w_ih must be"):
        forward_layer(*args, None, out, 0, False, kind=CELL_KINDS["rnn_tanh"])
    with pytest.raises(ValueError, match="hidden_gates must be"):
        forward_layer(*args, None, out, 0, False, np.zeros((2, 9), f4), None, None,
                      np.zeros((2, 3), f4), kind=CELL_KINDS["gru"])


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_between_layers_matches_the_reference(cell, dtype):
    """Training applies dropout to every layer's input but the first (the masks the layer drew
    reproduce its output and gradients in the reference); inference applies none."""
    rng = np.random.default_rng(7)
    layer = make(cell, 3, 5, num_layers=3, dropout=0.5, dtype=dtype, random_state=0)
    x = rng.standard_normal((6, 4, 3))
    out_eval, _ = layer.forward(x)
    out_train, _ = layer.forward(x, training=True)
    assert not np.allclose(out_train, out_eval)
    masks = [m["mask"] for m in layer._cache["cache"]]
    assert masks[0] is None and 0.3 < np.mean(masks[1] != 0) < 0.7
    params = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    dmasks = [None] + [m.reshape(6, 4, -1) for m in masks[1:]]
    r_out, _, _, cache = reference_forward(params, x, np.zeros((3, 4, 5)), np.zeros((3, 4, 0)),
                                           np.full(4, 6), 3, False, dmasks, cell=layer._cell)
    assert_close(out_train, r_out, dtype, "out")
    g = rng.standard_normal(out_train.shape)
    r_gx, r_grads, _, _ = reference_backward(params, cache, g)
    assert_close(layer.backward(g), r_gx, dtype, "grad_x")
    for k in r_grads:
        assert_close(layer.grads[k], r_grads[k], dtype, k)
