"""The Cython engine against the NumPy reference over a grid of configurations."""

import itertools

import numpy as np
import pytest

import lstm_fast
from lstm_fast.testing import reference_backward, reference_forward

from conftest import assert_close, random_state

GRID = list(itertools.product(
    [1, 2],           # num_layers
    [False, True],    # bidirectional
    [0, 3],           # proj_size
    [False, True],    # batch_first
    [False, True],    # lengths
    [False, True],    # hx given
))


def _to_time_major(a, batch_first):
    return np.swapaxes(a, 0, 1) if batch_first else a


def run_both(lstm, x, hx, lengths, rng, batched=True, batch_first=False):
    """Forward + backward through lstm and through the reference; returns both results."""
    out, (h_n, c_n) = lstm.forward(x, hx, lengths=lengths, training=True)
    g_out = rng.standard_normal(out.shape)
    g_h, g_c = rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape)
    g_x = lstm.backward(g_out, g_h, g_c)
    ours = dict(out=out, h_n=h_n, c_n=c_n, grad_x=g_x, grad_h0=lstm.grad_hx[0],
                grad_c0=lstm.grad_hx[1], **lstm.grads)

    params = {k: v.astype(np.float64) for k, v in lstm.state_dict().items()}
    x64 = np.asarray(x, np.float64)
    if not batched:
        x64, g_out = x64[:, None], g_out[:, None]
        g_h, g_c = g_h[:, None], g_c[:, None]
        hx = None if hx is None else (hx[0][:, None], hx[1][:, None])
    x64, g_out = _to_time_major(x64, batch_first), _to_time_major(g_out, batch_first)
    T, B = x64.shape[:2]
    if hx is None:
        k = lstm.num_directions * lstm.num_layers
        hx = (np.zeros((k, B, lstm.output_size)), np.zeros((k, B, lstm.hidden_size)))
    lens = np.full(B, T) if lengths is None else np.reshape(lengths, B)
    r_out, r_h, r_c, cache = reference_forward(params, x64, hx[0], hx[1], lens,
                                               lstm.num_layers, lstm.bidirectional)
    r_gx, r_grads, r_gh, r_gc = reference_backward(params, cache, g_out, g_h, g_c)
    r_out, r_gx = _to_time_major(r_out, batch_first), _to_time_major(r_gx, batch_first)
    if not batched:
        r_out, r_h, r_c, r_gx, r_gh, r_gc = (a[:, 0] for a in (r_out, r_h, r_c, r_gx, r_gh, r_gc))
    ref = dict(out=r_out, h_n=r_h, c_n=r_c, grad_x=r_gx, grad_h0=r_gh, grad_c0=r_gc, **r_grads)
    return ours, ref


@pytest.mark.parametrize("num_layers,bidirectional,proj_size,batch_first,use_lengths,use_hx", GRID)
def test_matches_reference(dtype, num_layers, bidirectional, proj_size, batch_first, use_lengths,
                           use_hx):
    rng = np.random.default_rng(7)
    T, B, I, H = 7, 5, 4, 6
    lstm = lstm_fast.LSTM(I, H, num_layers=num_layers, bidirectional=bidirectional,
                          proj_size=proj_size, batch_first=batch_first, dtype=dtype, random_state=3)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    lengths = np.array([3, 7, 1, 5, 7]) if use_lengths else None
    hx = random_state(lstm, B, rng) if use_hx else None
    ours, ref = run_both(lstm, x, hx, lengths, rng, batch_first=batch_first)
    # every gradient PyTorch names, each checked (both key sets come from the same state_dict,
    # so the names themselves are checked against PyTorch's rule here)
    names = {f"{w}_l{k}{'_reverse' * d}" for k in range(num_layers) for d in
             range(1 + bidirectional) for w in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
             + ["weight_hr"] * bool(proj_size)}
    assert set(ref) == set(ours) == names | {"out", "h_n", "c_n", "grad_x", "grad_h0", "grad_c0"}
    for key in ref:
        assert ours[key].dtype == dtype, key
        assert_close(ours[key], ref[key], dtype, key)


@pytest.mark.parametrize("B", [2, 3, 4, 9])
@pytest.mark.parametrize("bidirectional,proj_size", [(False, 0), (True, 2)])
def test_both_input_projection_paths(dtype, B, bidirectional, proj_size):
    """Batches below 4 hoist the input projection out of the time loop in chunks; from 4 up each
    step adds it in the recurrent product's pass: both match the reference, lengths included."""
    rng = np.random.default_rng(B)
    T, I, H = 9, 3, 5
    lstm = lstm_fast.LSTM(I, H, num_layers=2, bidirectional=bidirectional, proj_size=proj_size,
                          dtype=dtype, random_state=1)
    x = rng.standard_normal((T, B, I))
    lengths = rng.integers(1, T + 1, size=B)
    ours, ref = run_both(lstm, x, random_state(lstm, B, rng), lengths, rng)
    for key in ref:
        assert_close(ours[key], ref[key], dtype, key)


@pytest.mark.parametrize("bidirectional,proj_size", [(False, 0), (True, 2)])
def test_unbatched_matches_reference(dtype, bidirectional, proj_size):
    rng = np.random.default_rng(1)
    lstm = lstm_fast.LSTM(3, 4, num_layers=2, bidirectional=bidirectional, proj_size=proj_size,
                          dtype=dtype, random_state=0)
    x = rng.standard_normal((6, 3))
    ours, ref = run_both(lstm, x, random_state(lstm, 1, rng, batched=False), None, rng,
                         batched=False)
    for key in ref:
        assert_close(ours[key], ref[key], dtype, key)


def test_long_sequences_use_chunked_inference(dtype):
    """The input projection runs in chunks of 64 KiB of gate rows (T = 700 spans several, with
    lengths ending inside them): inference and training agree, and match the reference."""
    rng = np.random.default_rng(2)
    lstm = lstm_fast.LSTM(3, 5, bidirectional=True, dtype=dtype, random_state=0)
    x = rng.standard_normal((700, 3, 3))
    lengths = rng.integers(1, 701, size=3)
    out_i, (h_i, c_i) = lstm.forward(x, lengths=lengths)
    out_t, (h_t, c_t) = lstm.forward(x, lengths=lengths, training=True)
    for a, b in ((out_i, out_t), (h_i, h_t), (c_i, c_t)):
        assert_close(a, b, dtype)
    params = {k: v.astype(np.float64) for k, v in lstm.state_dict().items()}
    zeros = (np.zeros((2, 3, 5)), np.zeros((2, 3, 5)))
    r_out, r_h, _, _ = reference_forward(params, x, *zeros, lengths, 1, True)
    assert_close(out_i, r_out, dtype, "out")
    assert_close(h_i, r_h, dtype, "h_n")


def test_padded_steps_do_not_matter(dtype):
    rng = np.random.default_rng(3)
    lstm = lstm_fast.LSTM(2, 4, bidirectional=True, num_layers=2, dtype=dtype, random_state=0)
    x = rng.standard_normal((6, 3, 2))
    lengths = np.array([2, 6, 4])
    out1, (h1, c1) = lstm.forward(x, lengths=lengths)
    x2 = x.copy()
    for b, n in enumerate(lengths):
        x2[n:, b] = rng.standard_normal((6 - n, 2)) * 100
    out2, (h2, c2) = lstm.forward(x2, lengths=lengths)
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(h1, h2)
    for b, n in enumerate(lengths):
        assert np.all(out1[n:, b] == 0)
        # Each sequence alone, cut to its length, gives the same output and final state.
        out_b, (h_b, _) = lstm.forward(x[:n, b])
        assert_close(out1[:n, b], out_b, dtype)
        assert_close(h1[:, b], h_b, dtype)
