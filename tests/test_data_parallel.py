"""Data-parallel training on Dask: a fit on a Dask array or bag across 2 workers gives the model
a fit in one process gives (the same random_state, the same global batches), up to the order of
the sums; the workers apply the same optimiser steps as the client."""

import copy
import time

import numpy as np
import pytest

from lstm_fast import (LSTMClassifier, LSTMRegressor, LSTMSequenceClassifier,
                       LSTMSequenceRegressor)
from lstm_fast.models import _data_parallel

da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")
distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.filterwarnings("ignore")

# Largest relative parameter difference from the one-process fit, per dtype: the sums over the
# workers round differently, and the difference grows with the steps.
RTOL = {"float64": 1e-10, "float32": 2e-4}


def test_without_a_client_a_dask_fit_says_what_to_do():
    """(First in the file: before the module's cluster starts.)"""
    X, y, _ = _data(20)
    with pytest.raises(ValueError, match=r"X: fitting on a Dask collection .*Client"):
        LSTMClassifier(max_iter=1).fit(da.from_array(X, chunks=(10, 8, 3)), y)


def test_on_an_in_process_cluster_the_replicas_keep_models_of_their_own():
    """(Before the module's cluster starts.) In-process workers get the client's objects as
    they are: the replicas must copy the model and the updates, or steps count twice. Without
    n_threads a replica uses its worker's threads."""
    X, y, _ = _data()
    kw = dict(hidden_size=6, max_iter=3, batch_size=16, alpha=1e-2, clip_grad_norm=0.5,
              random_state=0, dtype="float64")
    local = LSTMClassifier(**kw).fit(X, y)
    with distributed.Client(processes=False, n_workers=2, threads_per_worker=2,
                            dashboard_address=None) as c:
        spread = LSTMClassifier(**kw).fit(da.from_array(X, chunks=(30, 8, 3)), y)
        assert set(c.run(_data_parallel._worker_threads).values()) == {2}
    _assert_same_model(local, spread, RTOL["float64"])


def test_shares_are_contiguous_and_balanced():
    assert [list(g) for g in _data_parallel._contiguous([30, 31], 2, 2)] == [[0], [1]]
    assert [list(g) for g in _data_parallel._contiguous([10, 10, 11], 3, 3)] == [[0], [1], [2]]
    assert [list(g) for g in _data_parallel._contiguous(None, 2, 5)] == [[0, 1], [2, 3, 4]]


def _actors_on_workers(client, timeout=10):
    """Actors the workers hold, once the releases have reached them (within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        n = sum(client.run(lambda dask_worker: len(dask_worker.state.actors)).values())
        if n == 0 or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def _data(n=120, T=8, F=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F))
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int), X[:, -3:, 1].sum(axis=1)


def _assert_same_model(local, spread, rtol):
    assert spread.n_iter_ == local.n_iter_
    for p, q in zip(local._parameters(), spread._parameters()):
        scale = max(np.abs(p).max(), 1e-3)
        assert np.abs(p - q).max() <= rtol * scale
    np.testing.assert_allclose(spread.loss_curve_, local.loss_curve_, rtol=rtol)


def _differs(local, spread):
    return max(np.abs(p - q).max() for p, q in zip(local._parameters(), spread._parameters()))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_classifier_fit_across_workers_equals_one_process(client, dtype):
    X, y, _ = _data()
    kw = dict(hidden_size=8, max_iter=4, batch_size=16, random_state=0, dtype=dtype)
    local = LSTMClassifier(**kw).fit(X, y)
    spread = LSTMClassifier(**kw).fit(da.from_array(X, chunks=(30, 8, 3)), y)
    _assert_same_model(local, spread, RTOL[dtype])
    np.testing.assert_array_equal(spread.predict(X), local.predict(X))


def test_the_options_that_touch_a_step_keep_it_equal(client):
    """Weights, class weights, weight decay, clipping, momentum SGD, a second layer,
    bidirectional, and early stopping (the validation score comes from the workers)."""
    X, y, _ = _data(150)
    w = np.random.default_rng(1).uniform(0, 2, len(y))
    w[:10] = 0
    kw = dict(hidden_size=6, num_layers=2, bidirectional=True, max_iter=6, batch_size=20,
              alpha=1e-2, clip_grad_norm=0.5, solver="sgd", learning_rate_init=0.05,
              class_weight="balanced", early_stopping=True, validation_fraction=0.2,
              random_state=3, dtype="float64")
    local = LSTMClassifier(**kw).fit(X, y, sample_weight=w)
    spread = LSTMClassifier(**kw).fit(da.from_array(X, chunks=(40, 8, 3)), y, sample_weight=w)
    _assert_same_model(local, spread, RTOL["float64"])
    np.testing.assert_allclose(spread.validation_scores_, local.validation_scores_, rtol=1e-12)


def test_regressors_series_and_dask_targets(client):
    X, _, t = _data(100)
    kw = dict(hidden_size=5, max_iter=3, batch_size=32, random_state=0, dtype="float64",
              normalize_y=True, cell="gru")
    local = LSTMRegressor(**kw).fit(X, 100 * t + 7)
    spread = LSTMRegressor(**kw).fit(da.from_array(X, chunks=(25, 8, 3)),
                                     da.from_array(100 * t + 7, chunks=25))
    _assert_same_model(local, spread, RTOL["float64"])
    np.testing.assert_allclose(spread.target_mean_, local.target_mean_, rtol=1e-12)
    series = X[:, :, 0]  # 2-D: univariate series
    local = LSTMRegressor(**kw).fit(series, t)
    spread = LSTMRegressor(**kw).fit(da.from_array(series, chunks=(60, 8)), t)
    _assert_same_model(local, spread, RTOL["float64"])
    assert spread.n_features_in_ == 8


def test_ragged_bags_and_per_step_targets(client):
    X, _, _ = _data(90)
    ragged = [X[i, :3 + i % 6] for i in range(90)]
    steps = [(np.cumsum(s[:, 0]) > 0).astype(int) for s in ragged]
    kw = dict(hidden_size=6, max_iter=3, batch_size=16, random_state=0, dtype="float64",
              early_stopping=True)
    local = LSTMSequenceClassifier(**kw).fit(ragged, steps)
    spread = LSTMSequenceClassifier(**kw).fit(db.from_sequence(ragged, npartitions=5), steps)
    _assert_same_model(local, spread, RTOL["float64"])
    np.testing.assert_allclose(spread.validation_scores_, local.validation_scores_, rtol=1e-12)
    from dask import delayed  # a worker of 2 sequences, a worker of none: the same model
    for parts in ([ragged[:88], ragged[88:]], [ragged, []]):
        bag = db.from_delayed([delayed(list)(p) for p in parts])
        _assert_same_model(local, LSTMSequenceClassifier(**kw).fit(bag, steps), 1e-10)
    values = [np.cumsum(s[:, 1]) for s in ragged]
    kw.pop("early_stopping")
    local = LSTMSequenceRegressor(**kw).fit(ragged, values)
    spread = LSTMSequenceRegressor(**kw).fit(db.from_sequence(ragged, npartitions=3), values)
    _assert_same_model(local, spread, RTOL["float64"])


def test_partial_fit_across_workers(client):
    X, y, _ = _data()
    kw = dict(hidden_size=4, batch_size=25, random_state=0, dtype="float64")
    local, spread = LSTMClassifier(**kw), LSTMClassifier(**kw)
    for part in (slice(0, 60), slice(60, 120)):
        local.partial_fit(X[part], y[part], classes=[0, 1])
        spread.partial_fit(da.from_array(X[part], chunks=(20, 8, 3)), y[part], classes=[0, 1])
    _assert_same_model(local, spread, RTOL["float64"])


def test_every_worker_holds_the_clients_model(client, monkeypatch):
    """The replicas apply the same steps as the client: after the last step's update their
    parameters are the client's, bit for bit; their dropout masks come from streams of their
    own."""
    held = []
    close = _data_parallel._Replicas.close

    def flush_and_close(replicas):
        [c.result() for c in [a.step(np.arange(0), replicas.pending) for a in replicas.actors]]
        held.extend(actor.estimator for actor in replicas.actors)  # (an actor's attribute)
        close(replicas)

    monkeypatch.setattr(_data_parallel._Replicas, "close", flush_and_close)
    X, y, _ = _data(200)
    kw = dict(hidden_size=8, num_layers=2, dropout=0.2, max_iter=10, batch_size=20,
              learning_rate_init=1e-2, random_state=0)
    est = LSTMClassifier(**kw).fit(da.from_array(X, chunks=(50, 8, 3)), y)
    assert len(held) == 2
    for replica in held:
        for p, q in zip(est._parameters(), replica._parameters()):
            np.testing.assert_array_equal(p, q)
    masks = [r.lstm_._rng.random_sample(8) for r in held]
    assert not np.array_equal(*masks)
    assert est.loss_curve_[-1] < 0.9 * est.loss_curve_[0]  # (it learns with dropout)
    assert _differs(LSTMClassifier(**kw).fit(X, y), est) > 1e-4  # (other masks, other fit)


def test_a_diverging_fit_across_workers_stops_clearly(client):
    X, _, t = _data(60)
    est = LSTMRegressor(solver="sgd", learning_rate_init=1e20, clip_grad_norm=None,
                        hidden_size=8, max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="training diverged at epoch 1 .*Lower learning_rate"):
        est.fit(da.from_array(X, chunks=(30, 8, 3)), t)
    assert not hasattr(est, "lstm_")


def test_bad_dask_input_names_x(client):
    X, y, _ = _data(40)
    est = LSTMClassifier(hidden_size=3, max_iter=1)
    with pytest.raises(ValueError, match=r"X: a Dask array must be 3-D .* or 2-D"):
        est.fit(da.from_array(X[:, :, :, None], chunks=(10, 8, 3, 1)), y)
    with pytest.raises(ValueError, match="X: the Dask bag holds no sequences"):
        est.fit(db.from_sequence([], npartitions=1), [])
    with pytest.raises(ValueError, match=r"X: a Dask array must be 3-D .*chunks along samples"):
        est.fit(da.from_array(X, chunks=(10, 4, 3)), y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(da.from_array(X, chunks=(10, 8, 3)), y[:-1])
    bad = X.copy()
    bad[33, 2, 1] = np.nan
    with pytest.raises(ValueError, match="X.*NaN"):
        est.fit(da.from_array(bad, chunks=(10, 8, 3)), y)
    fitted = LSTMClassifier(hidden_size=3, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features per step"):
        fitted.partial_fit(da.from_array(X[:, :, :2], chunks=(10, 8, 2)), y)
    assert _actors_on_workers(client) == 0  # (failed fits release their replicas)


def test_fits_release_their_replicas_and_draw_new_masks_each_call(client):
    X, y, _ = _data()
    est = LSTMClassifier(hidden_size=4, num_layers=2, dropout=0.3, max_iter=1,
                         random_state=0)
    est.fit(da.from_array(X, chunks=(30, 8, 3)), y)
    assert _actors_on_workers(client) == 0
    seed = copy.deepcopy(est.lstm_._rng).randint(2 ** 31)  # (the next call's masks' seed)
    est.partial_fit(da.from_array(X, chunks=(30, 8, 3)), y)  # (it draws it)
    assert copy.deepcopy(est.lstm_._rng).randint(2 ** 31) != seed
