"""Parity with torch.nn.LSTM, GRU and RNN from committed golden files (made by
golden/make_golden.py)."""

import glob
import json
import os

import numpy as np
import pytest

import lstm_fast

from conftest import assert_close

FILES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "golden", "*.npz")))


def test_golden_files_exist():
    assert len(FILES) >= 7


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_matches_golden(path):
    data = np.load(path)
    config = json.loads(str(data["config"]))
    dtype, lengths = np.dtype(config.pop("dtype")).type, config.pop("lengths")
    cell = config.pop("cell", "lstm")
    if cell != "lstm":
        return _matches_golden_cell(data, cell, config, dtype, lengths)
    lstm = lstm_fast.LSTM(**config, dtype=dtype)
    lstm.load_state_dict({k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("weight:")})
    out, (h_n, c_n) = lstm.forward(data["x"], (data["h0"], data["c0"]), lengths=lengths,
                                   training=True)
    grad_x = lstm.backward(data["g_out"], data["g_h"], data["g_c"])
    ours = dict(out=out, h_n=h_n, c_n=c_n, grad_x=grad_x, grad_h0=lstm.grad_hx[0],
                grad_c0=lstm.grad_hx[1], **{"grad_" + k: v for k, v in lstm.grads.items()})
    expected = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("torch:")}
    assert set(ours) == set(expected)
    for key, want in expected.items():
        assert_close(ours[key], want, dtype, key)


def _matches_golden_cell(data, cell, config, dtype, lengths):
    layer = (lstm_fast.GRU(**config, dtype=dtype) if cell == "gru" else
             lstm_fast.RNN(**config, nonlinearity=cell[4:], dtype=dtype))
    layer.load_state_dict({k.split(":", 1)[1]: data[k] for k in data.files
                           if k.startswith("weight:")})
    out, h_n = layer.forward(data["x"], data["h0"], lengths=lengths, training=True)
    grad_x = layer.backward(data["g_out"], data["g_h"])
    ours = dict(out=out, h_n=h_n, grad_x=grad_x, grad_h0=layer.grad_hx,
                **{"grad_" + k: v for k, v in layer.grads.items()})
    expected = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("torch:")}
    assert set(ours) == set(expected)
    for key, want in expected.items():
        assert_close(ours[key], want, dtype, key)
