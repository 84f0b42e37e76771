"""LSTM layer behaviour: initialisation, state_dict, dropout, streaming, threads, layouts."""

import copy
import pickle
import re
import threading

import numpy as np
import pytest

import lstm_fast
from lstm_fast._lstm import build_info
from lstm_fast.testing import reference_backward, reference_forward

from conftest import assert_close, needs_packed_kernel


def test_default_initialisation():
    H, I = 6, 4
    lstm = lstm_fast.LSTM(I, H, num_layers=2, bidirectional=True, forget_bias=1.0,
                          dtype=np.float64, random_state=0)
    sd = lstm.state_dict()
    assert list(sd) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
                        "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1",
                        "bias_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse",
                        "bias_ih_l1_reverse", "bias_hh_l1_reverse"]
    assert sd["weight_ih_l1"].shape == (4 * H, 2 * H)
    for gate in range(4):
        block = sd["weight_hh_l0"][gate * H:(gate + 1) * H]
        np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-12)
    bias = sd["bias_ih_l0"]
    np.testing.assert_array_equal(bias[H:2 * H], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[H:2 * H]), 0.0)
    np.testing.assert_array_equal(sd["bias_hh_l0"], 0.0)
    limit = np.sqrt(6 / (4 * H + I))
    assert np.abs(sd["weight_ih_l0"]).max() <= limit
    assert np.abs(sd["weight_ih_l0"]).max() > 0.5 * limit
    again = lstm_fast.LSTM(I, H, num_layers=2, bidirectional=True, dtype=np.float64,
                           random_state=0).state_dict()
    for k in sd:
        np.testing.assert_array_equal(sd[k], again[k])
    other = lstm_fast.LSTM(I, H, num_layers=2, bidirectional=True, dtype=np.float64,
                           random_state=1).state_dict()
    assert not np.array_equal(sd["weight_hh_l0"], other["weight_hh_l0"])


def test_projection_and_no_bias_shapes():
    lstm = lstm_fast.LSTM(3, 8, proj_size=2, bias=False, random_state=0)
    sd = lstm.state_dict()
    assert set(sd) == {"weight_ih_l0", "weight_hh_l0", "weight_hr_l0"}
    assert sd["weight_hh_l0"].shape == (32, 2) and sd["weight_hr_l0"].shape == (2, 8)
    out, (h, c) = lstm.forward(np.ones((4, 2, 3)))
    assert out.shape == (4, 2, 2) and h.shape == (1, 2, 2) and c.shape == (1, 2, 8)
    assert out.dtype == np.float32


def test_state_dict_round_trip_and_copy_semantics(dtype):
    a = lstm_fast.LSTM(3, 4, bidirectional=True, dtype=dtype, random_state=0)
    b = lstm_fast.LSTM(3, 4, bidirectional=True, dtype=dtype, random_state=1)
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])
    sd = a.state_dict()
    sd["weight_ih_l0"][...] = 0
    assert np.abs(a.weight_ih_l0).max() > 0  # state_dict is a copy, attributes are live


def test_dropout_between_layers_in_training_only(dtype):
    rng = np.random.default_rng(0)
    lstm = lstm_fast.LSTM(3, 5, num_layers=3, dropout=0.5, dtype=dtype, random_state=0)
    x = rng.standard_normal((6, 4, 3))
    out_eval1, _ = lstm.forward(x)
    out_eval2, _ = lstm.forward(x)
    np.testing.assert_array_equal(out_eval1, out_eval2)
    out_train, _ = lstm.forward(x, training=True)
    assert not np.allclose(out_train, out_eval1)
    masks = [layer["mask"] for layer in lstm._cache["cache"]]
    assert masks[0] is None
    assert masks[1] is not None and masks[2] is not None
    kept = np.mean(masks[1] != 0)
    assert 0.3 < kept < 0.7
    np.testing.assert_allclose(masks[1][masks[1] != 0], 2.0)
    params = {k: v.astype(np.float64) for k, v in lstm.state_dict().items()}
    dmasks = [None] + [m.reshape(6, 4, -1) for m in masks[1:]]
    zeros = (np.zeros((3, 4, 5)),) * 2
    r_out, _, _, cache = reference_forward(params, x, *zeros, np.full(4, 6), 3, False, dmasks)
    assert_close(out_train, r_out, dtype, "out")
    g = rng.standard_normal(out_train.shape)
    r_gx, r_grads, _, _ = reference_backward(params, cache, g)
    assert_close(lstm.backward(g), r_gx, dtype, "grad_x")
    for k in r_grads:
        assert_close(lstm.grads[k], r_grads[k], dtype, k)


@pytest.mark.parametrize("k", [1, 4, 7])
def test_chunked_streaming_equals_one_call(dtype, k):
    rng = np.random.default_rng(4)
    lstm = lstm_fast.LSTM(3, 5, num_layers=2, proj_size=2, dtype=dtype, random_state=0)
    x = rng.standard_normal((8, 3, 3))
    out, (h, c) = lstm.forward(x)
    out1, state = lstm.forward(x[:k])
    out2, (h2, c2) = lstm.forward(x[k:], hx=state)
    assert_close(np.concatenate([out1, out2]), out, dtype)
    assert_close(h2, h, dtype)
    assert_close(c2, c, dtype)


@needs_packed_kernel
@pytest.mark.parametrize("bidirectional", [False, True])
def test_each_sequence_gets_the_same_bits_in_any_batch(dtype, bidirectional):
    """A sequence's output does not depend on what else is in its batch, bit for bit, on either
    side of the batch size (4) where the input projection leaves the time loop (what
    scikit-learn's subset-invariance check asks of predict)."""
    rng = np.random.default_rng(5)
    lstm = lstm_fast.LSTM(3, 40, bidirectional=bidirectional, dtype=dtype, random_state=0)
    x = rng.standard_normal((6, 9, 3))
    lengths = rng.integers(1, 7, size=9)
    out, (h, c) = lstm.forward(x, lengths=lengths)
    for part in (slice(0, 1), slice(1, 3), slice(3, 8)):
        out_p, (h_p, c_p) = lstm.forward(x[:, part], lengths=lengths[part])
        np.testing.assert_array_equal(out_p, out[:, part])
        np.testing.assert_array_equal(h_p, h[:, part])
        np.testing.assert_array_equal(c_p, c[:, part])


def test_threads_share_a_layer(dtype):
    rng = np.random.default_rng(5)
    lstm = lstm_fast.LSTM(8, 32, num_layers=2, bidirectional=True, dtype=dtype, random_state=0)
    inputs = [rng.standard_normal((50, 4, 8)) for _ in range(8)]
    expected = [lstm.forward(x)[0] for x in inputs]
    results = [None] * len(inputs)

    def work(i):
        for _ in range(3):
            results[i] = lstm.forward(inputs[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_memory_layouts_and_input_dtypes(dtype):
    rng = np.random.default_rng(6)
    lstm = lstm_fast.LSTM(3, 4, batch_first=True, dtype=dtype, random_state=0)
    x = rng.standard_normal((2, 5, 3))
    expected = lstm.forward(x)[0]
    fortran = np.asfortranarray(x)
    strided = np.repeat(x, 2, axis=2)[:, :, ::2]
    assert not strided.flags.c_contiguous
    for variant in (fortran, strided, x.tolist()):
        np.testing.assert_array_equal(lstm.forward(variant)[0], expected)
    for other in (np.float16, np.float32, np.float64):
        got = lstm.forward(x.astype(other))[0]
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, lstm.forward(x.astype(other).astype(dtype))[0])


def test_backward_only_once_and_needs_training_forward():
    lstm = lstm_fast.LSTM(2, 3, random_state=0)
    x = np.ones((3, 1, 2))
    with pytest.raises(RuntimeError, match="training=True"):
        lstm.backward(np.ones((3, 1, 3)))
    lstm.forward(x)
    with pytest.raises(RuntimeError, match="training=True"):
        lstm.backward(np.ones((3, 1, 3)))
    lstm.forward(x, training=True)
    lstm.backward(np.ones((3, 1, 3)))
    with pytest.raises(RuntimeError, match="already"):
        lstm.backward(np.ones((3, 1, 3)))


@pytest.mark.parametrize("bidirectional,proj_size,use_lengths",
                         [(False, 0, False), (True, 2, True), (True, 0, True), (False, 3, True)])
def test_runs_of_steps_give_the_results_of_one_call(dtype, monkeypatch, bidirectional, proj_size,
                                                    use_lengths):
    """A long layer-direction goes to the engine in runs of whole steps (so that Ctrl-C is seen
    between them), the state carried from run to run: forward gives the same bits as one call,
    backward the same gradients to rounding (its weight gradients are summed run by run)."""
    rng = np.random.default_rng(8)
    T, B = 23, 5
    lstm = lstm_fast.LSTM(3, 6, num_layers=2, bidirectional=bidirectional, proj_size=proj_size,
                          dropout=0.0, dtype=dtype, random_state=0)
    x = rng.standard_normal((T, B, 3))
    lengths = rng.integers(1, T + 1, size=B) if use_lengths else None
    hx = random_state_for(lstm, B, rng)
    g = rng.standard_normal((T, B, lstm.num_directions * lstm.output_size))

    def run():
        lstm.zero_grad()
        inference = lstm.forward(x, hx, lengths=lengths)
        out, state = lstm.forward(x, hx, lengths=lengths, training=True)
        grad_x = lstm.backward(g, state[0], state[1])
        return inference, (out, state), grad_x, dict(lstm.grads), lstm.grad_hx

    whole = copy.deepcopy(run())
    for rows in (1, 4, 7, 40):
        monkeypatch.setattr(lstm, "_call_rows", [(rows, rows)] * 2)
        assert len(lstm_fast.nn.packing.packing_for(lengths, T, B).runs(rows)) > 1
        runs = run()
        for got, want in zip(_leaves(runs[:2]), _leaves(whole[:2])):
            if build_info()["matmul_kernel"] == "blas":  # BLAS's rows depend on the others
                assert_close(got, want, dtype)
            else:
                np.testing.assert_array_equal(got, want)
        for got, want in zip(_leaves(runs[2:]), _leaves(whole[2:])):
            assert_close(got, want, dtype)


def _leaves(tree):
    """The arrays of nested tuples, lists and dicts, in order."""
    if isinstance(tree, np.ndarray):
        return [tree]
    items = tree.values() if isinstance(tree, dict) else tree
    return [leaf for item in items for leaf in _leaves(item)]


def random_state_for(lstm, B, rng):
    k = lstm.num_directions * lstm.num_layers
    return (rng.standard_normal((k, B, lstm.output_size)),
            rng.standard_normal((k, B, lstm.hidden_size)))


def test_packing_runs_cover_every_step_once():
    lengths = np.array([9, 3, 7, 1, 9])
    packing = lstm_fast.nn.packing.packing_for(lengths, 9, 5)
    for rows in (1, 2, 5, 11, 30):
        runs = packing.runs(rows)
        assert runs[0][2] == 0 and runs[-1][3] == packing.n_rows
        steps = np.concatenate([bs for bs, _, _, _ in runs])
        np.testing.assert_array_equal(steps, packing.batch_sizes)
        for (bs, offsets, r0, r1), nxt in zip(runs, runs[1:] + [None]):
            np.testing.assert_array_equal(offsets, packing.offsets[
                np.searchsorted(packing.offsets, r0):][:len(bs)] - r0)
            assert r1 - r0 == bs.sum() and (nxt is None or nxt[2] == r1)
            assert len(bs) == 1 or r1 - r0 - bs[-1] < rows  # whole steps, about `rows` rows
    full = lstm_fast.nn.packing.packing_for(None, 50, 64)  # 50 steps of 64 rows
    sizes = [r1 - r0 for _, _, r0, r1 in full.runs(1024)]
    assert len(sizes) == 4 and max(sizes) <= 1024 and max(sizes) - min(sizes) <= 2 * 64


def test_assigning_a_parameter_copies_it_in(dtype):
    """``lstm.weight_ih_l0 = w`` used to leave a shadow attribute that forward ignored."""
    rng = np.random.default_rng(9)
    lstm = lstm_fast.LSTM(3, 4, dtype=dtype, random_state=0)
    x = rng.standard_normal((5, 2, 3))
    before = lstm.forward(x)[0]
    live = lstm.weight_ih_l0
    new = rng.standard_normal((16, 3))
    lstm.weight_ih_l0 = new
    assert lstm.weight_ih_l0 is live and "weight_ih_l0" not in vars(lstm)
    np.testing.assert_array_equal(live, new.astype(dtype))
    twin = lstm_fast.LSTM(3, 4, dtype=dtype, random_state=0)
    twin.load_state_dict(dict(twin.state_dict(), weight_ih_l0=new))
    np.testing.assert_array_equal(lstm.forward(x)[0], twin.forward(x)[0])
    assert not np.array_equal(lstm.forward(x)[0], before)
    with pytest.raises(ValueError, match=r"weight_hh_l0 has shape \(4, 4\), expected \(16, 4\)"):
        lstm.weight_hh_l0 = np.zeros((4, 4))
    with pytest.raises(ValueError, match="bias_ih_l0 contains NaN"):
        lstm.bias_ih_l0 = np.full(16, np.nan)
    with pytest.raises(TypeError, match="bias_hh_l0 must hold floating-point"):
        lstm.bias_hh_l0 = np.zeros(16, dtype=int)
    for name in ("hidden_size", "num_layers", "proj_size", "dtype", "bidirectional"):
        with pytest.raises(AttributeError, match=f"{name} is fixed"):
            setattr(lstm, name, 2)
    with pytest.raises(ValueError, match="dropout"):
        lstm.dropout = 2.0
    lstm.dropout, lstm.batch_first = 0.5, True  # these may change


def test_two_threads_training_one_layer_get_a_clear_error():
    """Training keeps the activations in the layer for one backward: a backward of activations
    another thread's training forward made (or replaced) is refused, and so is a training call
    while another thread's runs, instead of mixing the two."""
    lstm = lstm_fast.LSTM(4, 32, random_state=0)
    x = np.random.default_rng(0).standard_normal((400, 8, 4))
    lstm.forward(x, training=True)  # this thread's, awaiting backward
    thread = threading.Thread(target=lambda: lstm.forward(x, training=True))
    thread.start()
    thread.join()
    with pytest.raises(RuntimeError, match="made by another thread .* one thread at a time"):
        lstm.backward(np.ones((400, 8, 32)))
    lstm.forward(x[:2])  # inference is never refused
    lstm.forward(x, training=True)  # an abandoned forward blocks no one
    lstm.backward(np.ones((400, 8, 32)))

    # Two threads stepping at once: each call either runs or is refused, and the gradients of
    # every step that ran are those of its own forward.
    twin = lstm_fast.LSTM(4, 32, random_state=0)
    twin.forward(x, training=True)
    want = twin.backward(np.ones((400, 8, 32)))
    refused, done = [], []
    start = threading.Barrier(2)

    def steps():
        start.wait()
        for _ in range(20):
            try:
                lstm.forward(x, training=True)
                grads = lstm.backward(np.ones((400, 8, 32)))
            except RuntimeError as exc:
                assert re.search("one thread at a time|already backpropagated", str(exc)), exc
                refused.append(exc)
            else:
                done.append(grads)

    threads = [threading.Thread(target=steps) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused and done
    for grads in done:
        np.testing.assert_array_equal(grads, want)


def test_copies_hold_no_gradients_or_pending_forward():
    lstm = lstm_fast.LSTM(2, 3, random_state=0)
    out, _ = lstm.forward(np.ones((4, 1, 2)), training=True)
    lstm.backward(np.ones_like(out))
    lstm.forward(np.ones((4, 1, 2)), training=True)
    for other in (copy.deepcopy(lstm), pickle.loads(pickle.dumps(lstm))):
        assert all(np.all(g == 0) for g in other.grads.values()) and other.grad_hx is None
        assert set(other.grads) == set(lstm.grads)
        with pytest.raises(RuntimeError, match="preceding forward"):
            other.backward(np.ones_like(out))
        np.testing.assert_array_equal(other.forward(np.ones((4, 1, 2)))[0],
                                      lstm.forward(np.ones((4, 1, 2)))[0])


def test_runs_of_steps_with_the_directions_on_two_threads(monkeypatch):
    """Large enough for the two directions to run at once (the reverse one on the worker
    thread), each in runs of steps: the results of one call."""
    from threadpoolctl import threadpool_limits

    from lstm_fast._lstm import threads_for

    rng = np.random.default_rng(10)
    lstm = lstm_fast.LSTM(8, 64, bidirectional=True, random_state=0)
    x = rng.standard_normal((30, 16, 8))
    lengths = rng.integers(1, 31, size=16)
    with threadpool_limits(limits=2):
        if threads_for(16, 64, 64) < 2:
            pytest.skip("one thread here")
        whole = lstm.forward(x, lengths=lengths)[0]
        lstm.forward(x, lengths=lengths, training=True)
        grad_whole = lstm.backward(np.ones_like(whole))
        monkeypatch.setattr(lstm, "_call_rows", [(37, 37)])
        np.testing.assert_array_equal(lstm.forward(x, lengths=lengths)[0], whole)
        lstm.forward(x, lengths=lengths, training=True)
        assert_close(lstm.backward(np.ones_like(whole)), grad_whole, np.float32)


@pytest.mark.parametrize("config", [dict(), dict(num_layers=3, bidirectional=True),
                                    dict(num_layers=2, proj_size=2, bias=False)])
def test_parameter_count_is_the_state_dict_size(config):
    lstm = lstm_fast.LSTM(3, 5, **config)
    assert lstm._param_count() == sum(v.size for v in lstm.state_dict().values())
