"""Parity with torch.nn.LSTM, GRU and RNN given the same weights (skipped where torch is not
installed)."""

import itertools

import numpy as np
import pytest

import lstm_fast

from conftest import assert_close, random_state

torch = pytest.importorskip("torch")
from test_cells import CELLS, _inputs, forward_backward, make, random_weights  # noqa: E402
from torch_oracle import torch_cell_forward_backward, torch_forward_backward  # noqa: E402


def ours_forward_backward(lstm, x, h0, c0, lengths, g_out, g_h, g_c):
    out, (h_n, c_n) = lstm.forward(x, (h0, c0), lengths=lengths, training=True)
    grad_x = lstm.backward(g_out, g_h, g_c)
    result = dict(out=out, h_n=h_n, c_n=c_n, grad_x=grad_x, grad_h0=lstm.grad_hx[0],
                  grad_c0=lstm.grad_hx[1])
    result.update({"grad_" + k: v for k, v in lstm.grads.items()})
    return result


@pytest.mark.parametrize("num_layers,bidirectional,proj_size,use_lengths,bias",
                         list(itertools.product([1, 2], [False, True], [0, 3], [False, True],
                                                [True])) + [(2, True, 0, True, False)])
def test_matches_torch(dtype, num_layers, bidirectional, proj_size, use_lengths, bias):
    rng = np.random.default_rng(0)
    T, B, I, H = 9, 4, 5, 7
    config = dict(input_size=I, hidden_size=H, num_layers=num_layers, bidirectional=bidirectional,
                  proj_size=proj_size, bias=bias)
    lstm = lstm_fast.LSTM(**config, dtype=dtype, random_state=1)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0, c0 = (a.astype(dtype) for a in random_state(lstm, B, rng))
    lengths = np.array([4, 9, 1, 6]) if use_lengths else None
    out_shape = (T, B, (2 if bidirectional else 1) * (proj_size or H))
    g_out = rng.standard_normal(out_shape).astype(dtype)
    g_h, g_c = (rng.standard_normal(a.shape).astype(dtype) for a in (h0, c0))
    ours = ours_forward_backward(lstm, x, h0, c0, lengths, g_out, g_h, g_c)
    theirs = torch_forward_backward(config, lstm.state_dict(), x, h0, c0, lengths, g_out, g_h, g_c)
    assert set(ours) == set(theirs)
    for key in theirs:
        assert_close(ours[key], theirs[key], dtype, key)


def test_load_state_dict_accepts_torch_tensors(dtype):
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=tdtype)
    lstm = lstm_fast.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=dtype)
    lstm.load_state_dict(ref.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(dtype)
    with torch.no_grad():
        want, (h, c) = ref(torch.from_numpy(x))
    got, (gh, gc) = lstm.forward(x)
    assert_close(got, want.numpy(), dtype, "output")
    assert_close(gh, h.numpy(), dtype, "h_n")
    assert_close(gc, c.numpy(), dtype, "c_n")


torch_params = list(itertools.product([1, 2], [False, True], [False, True], [True])) + [
    (2, True, True, False)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers,bidirectional,use_lengths,bias", torch_params)
def test_cells_match_torch(cell, dtype, num_layers, bidirectional, use_lengths, bias):
    rng = np.random.default_rng(0)
    config = dict(input_size=5, hidden_size=7, num_layers=num_layers,
                  bidirectional=bidirectional, bias=bias)
    layer = make(cell, **config, dtype=dtype)
    random_weights(layer, rng)
    x, h0, g_out, g_h = _inputs(layer, 9, 4, rng, dtype)
    lengths = np.array([4, 9, 1, 6]) if use_lengths else None
    ours = forward_backward(layer, x, h0, lengths, g_out, g_h)
    theirs = torch_cell_forward_backward(cell, config, layer.state_dict(), x, h0, lengths,
                                         g_out, g_h)
    assert set(ours) == set(theirs)
    for key in theirs:
        assert_close(ours[key], theirs[key], dtype, key)


@pytest.mark.parametrize("cell", CELLS)
def test_load_state_dict_accepts_torch_modules_weights(cell, dtype):
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(0)
    if cell == "gru":
        ref = torch.nn.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=tdtype)
    else:
        ref = torch.nn.RNN(3, 5, num_layers=2, nonlinearity=cell[4:], bidirectional=True,
                           batch_first=True, dtype=tdtype)
    layer = make(cell, 3, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=dtype)
    layer.load_state_dict(ref.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(dtype)
    with torch.no_grad():
        want, h = ref(torch.from_numpy(x))
    got, gh = layer.forward(x)
    assert_close(got, want.numpy(), dtype, "output")
    assert_close(gh, h.numpy(), dtype, "h_n")
