"""Streams: weights packed once and reused until they change, and the estimators' stream()
fed chunks of any sizes giving the whole-sequence predictions exactly."""

import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from lstm_fast import (GRU, LSTM, RNN, LSTMClassifier, LSTMRegressor, LSTMSequenceClassifier,
                       LSTMSequenceRegressor)
from lstm_fast._lstm import Prepared, Workspace, backward_layer, forward_layer
from lstm_fast.optim import make_optimizer
from test_errors import _backward_args, _forward_args

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

LAYERS = [LSTM, GRU, RNN]


def _fresh_like(layer):
    """A new layer with the same parameters (nothing packed yet)."""
    other = type(layer)(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                        dtype=layer.dtype, random_state=1)
    other.load_state_dict(layer.state_dict())
    return other


def _steps(layer, x):
    """x (T, 1, I) fed one step at a time, the state carried: the outputs (T, 1, H)."""
    hx, out = None, []
    for t in range(len(x)):
        o, hx = layer.forward(x[t:t + 1], hx=hx)
        out.append(o)
    return np.concatenate(out)


@pytest.mark.parametrize("Layer", LAYERS)
def test_every_known_change_of_the_weights_repacks_them(Layer):
    layer = Layer(3, 6, num_layers=2, dtype=np.float64, random_state=0)
    x = np.random.default_rng(0).standard_normal((5, 1, 3))
    first = _steps(layer, x)
    np.testing.assert_array_equal(_steps(layer, x), first)  # reused: the same numbers
    rng = np.random.default_rng(1)
    layer.weight_hh_l1 = rng.standard_normal(layer.weight_hh_l1.shape)  # assignment
    np.testing.assert_array_equal(_steps(layer, x), _steps(_fresh_like(layer), x))
    state = {k: v + 0.1 for k, v in layer.state_dict().items()}
    layer.load_state_dict(state)
    np.testing.assert_array_equal(_steps(layer, x), _steps(_fresh_like(layer), x))
    optimizer = make_optimizer("adam", [p for _, p in layer.named_parameters()],
                               dict(learning_rate=0.1, momentum=0.9, beta_1=0.9, beta_2=0.999,
                                    epsilon=1e-8))
    out, _ = layer.forward(x, training=True)
    layer.backward(np.ones_like(out))
    optimizer.step(list(layer.grads.values()))  # in place, after backward
    np.testing.assert_array_equal(_steps(layer, x), _steps(_fresh_like(layer), x))
    layer.weight_ih_l0[...] *= 2  # in place: mark_updated says so
    layer.mark_updated()
    np.testing.assert_array_equal(_steps(layer, x), _steps(_fresh_like(layer), x))
    assert not np.allclose(_steps(layer, x), first)


def test_the_engine_reuses_only_weights_packed_from_the_same_arrays():
    rng = np.random.default_rng(0)
    weights = dict(w_ih=rng.standard_normal((8, 2)).astype(np.float32),
                   w_hh=rng.standard_normal((8, 2)).astype(np.float32))

    def run(ws, prepared, **change):
        args = _forward_args(x=np.ones((5, 2), np.float32), **dict(weights, **change))
        forward_layer(**args, workspace=ws, prepared=prepared)
        return args["out"]

    ws = Workspace()
    want = run(ws, Prepared.PACK)
    assert np.any(want != 0)
    np.testing.assert_array_equal(run(ws, Prepared.REUSE_PACKED), want)
    other = {k: 2 * w for k, w in weights.items()}  # other arrays: packed anew
    np.testing.assert_array_equal(run(ws, Prepared.REUSE_PACKED, **other),
                                  run(Workspace(), Prepared.PACK, **other))
    with pytest.raises(ValueError, match="prepared must be"):
        run(ws, 7)
    with pytest.raises(ValueError, match="prepared must be PACK or PACKED"):
        backward_layer(**_backward_args(), workspace=ws, prepared=Prepared.REUSE_PACKED)


def _fitted(Estimator, cell="lstm", n=30, T=9, F=2, seed=0, **params):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F))
    running = np.cumsum(X[:, :, 0], axis=1)
    per_step = Estimator in (LSTMSequenceClassifier, LSTMSequenceRegressor)
    y = running if per_step else running[:, -1]
    if Estimator in (LSTMClassifier, LSTMSequenceClassifier):
        y = (y > 0).astype(int)
    est = Estimator(hidden_size=5, max_iter=2, cell=cell, random_state=0, **params).fit(X, y)
    return est, X


def _chunks(T, rng):
    cuts = np.sort(rng.choice(np.arange(1, T), rng.integers(0, T - 1), replace=False))
    return list(zip(np.r_[0, cuts], np.r_[cuts, T]))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("Estimator", [LSTMSequenceClassifier, LSTMSequenceRegressor])
def test_per_step_streams_in_chunks_are_the_whole_sequence(Estimator, cell):
    est, X = _fitted(Estimator, cell, num_layers=2)
    whole = est.predict(X)
    rng = np.random.default_rng(0)
    for i in range(4):
        stream = est.stream()
        got = [stream.update(X[i, a:b]) for a, b in _chunks(X.shape[1], rng)]
        np.testing.assert_array_equal(np.concatenate(got), whole[i])
    batch = est.stream()
    got = np.concatenate([batch.update(X[:6, a:b]) for a, b in _chunks(X.shape[1], rng)],
                         axis=1)
    np.testing.assert_array_equal(got, whole[:6])


@pytest.mark.parametrize("Estimator", [LSTMClassifier, LSTMRegressor])
def test_many_to_one_streams_give_the_prediction_so_far(Estimator):
    est, X = _fitted(Estimator)
    stream = est.stream()
    for t in range(1, X.shape[1] + 1):
        now = stream.update(X[3, t - 1:t])
        assert np.ndim(now) == 0
        np.testing.assert_array_equal(now, est.predict(X[3:4, :t])[0])
    stream.reset()
    rng = np.random.default_rng(1)
    for a, b in _chunks(X.shape[1], rng):
        batch = stream.update(X[:5, a:b])
    np.testing.assert_array_equal(batch, est.predict(X[:5]))


def test_univariate_series_stream_as_one_dimensional_chunks():
    rng = np.random.default_rng(2)
    series = rng.standard_normal((20, 8))
    est = LSTMSequenceRegressor(hidden_size=4, max_iter=2, random_state=0).fit(
        series, np.cumsum(series, axis=1))
    stream = est.stream()
    got = np.concatenate([stream.update(series[0, :3]), stream.update(series[0, 3:])])
    np.testing.assert_array_equal(got, est.predict(series[:1])[0])
    assert est.stream().update(series[:2, :4]).shape == (2, 4)


def test_a_stream_follows_the_model_as_it_trains():
    """Training repacks the weights the streams (and predict) share."""
    est, X = _fitted(LSTMRegressor)
    stream = est.stream()
    before = stream.update(X[0])
    est.partial_fit(X, X[:, :, 0].sum(axis=1))
    stream.reset()
    after = stream.update(X[0])
    assert after != before
    np.testing.assert_array_equal(after, est.predict(X[:1])[0])


def test_streams_refuse_what_they_cannot_do():
    est, X = _fitted(LSTMSequenceRegressor)
    stream = est.stream()
    with pytest.raises(ValueError, match=r"X_chunk must be \(t, 2\) or \(B, t, 2\)"):
        stream.update(X[0, :, 0])
    with pytest.raises(ValueError, match="X_chunk has 3 features per step"):
        stream.update(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="X_chunk.*NaN"):
        stream.update(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="X_chunk: Found array with 0 sample"):
        stream.update(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="X_chunk has no steps"):
        stream.update(np.zeros((3, 0, 2)))
    stream.update(X[0, :2])
    with pytest.raises(ValueError, match="carries one sequence, but X_chunk gives a batch of 3"):
        stream.update(X[:3, 2:4])
    stream.reset()
    assert stream.update(X[:3, :2]).shape == (3, 2)
    bidirectional, _ = _fitted(LSTMClassifier, bidirectional=True)
    with pytest.raises(ValueError, match="unidirectional"):
        bidirectional.stream()
    with pytest.raises(NotFittedError):
        LSTMClassifier().stream()


def test_many_streams_share_one_model_across_threads():
    est, X = _fitted(LSTMSequenceClassifier, n=40)
    want = est.predict(X)
    got = [None] * 8
    errors = []

    def feed(i):
        try:
            stream = est.stream()
            got[i] = np.concatenate([stream.update(X[i, t:t + 1]) for t in range(X.shape[1])])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(8)]
    with warnings.catch_warnings():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    for i in range(8):
        np.testing.assert_array_equal(got[i], want[i])
    shared, parts = est.stream(), []
    lock_free = [threading.Thread(target=lambda: parts.append(shared.update(X[:2, :1])))
                 for _ in range(4)]
    for t in lock_free:
        t.start()
    for t in lock_free:
        t.join()
    assert len(parts) == 4  # one update at a time: every one of them completed
