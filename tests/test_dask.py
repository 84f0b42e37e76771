"""Dask: searches on a LocalCluster score as serial ones; predict on Dask arrays and bags is
lazy, block by block, with the fitted model in the graph once."""

import numpy as np
import pytest

from lstm_fast import LSTMClassifier, LSTMRegressor, LSTMSequenceClassifier

da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

pytestmark = pytest.mark.filterwarnings("ignore")


def _data(n=60, T=6):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, T, 2))
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


def test_a_search_on_dask_scores_as_a_serial_one(client):
    import joblib
    from sklearn.model_selection import GridSearchCV, KFold

    X, y = _data()
    search = dict(param_grid=dict(hidden_size=[3, 5], learning_rate_init=[1e-2, 3e-3]),
                  cv=KFold(2))
    est = LSTMClassifier(max_iter=3, random_state=0)
    serial = GridSearchCV(est, **search).fit(X, y)
    with joblib.parallel_backend("dask"):
        on_dask = GridSearchCV(est, **search).fit(X, y)
    np.testing.assert_array_equal(on_dask.cv_results_["mean_test_score"],
                                  serial.cv_results_["mean_test_score"])
    assert on_dask.best_params_ == serial.best_params_


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_predict_on_a_dask_array_is_lazy_and_equal(client, method):
    X, y = _data(200)
    est = LSTMClassifier(hidden_size=32, max_iter=2, random_state=0).fit(X, y)
    lazy = getattr(est, method)(da.from_array(X, chunks=(25, 6, 2)))
    assert isinstance(lazy, da.Array) and lazy.chunks[0] == (25,) * 8
    np.testing.assert_array_equal(client.compute(lazy).result(timeout=120),
                                  getattr(est, method)(X))
    # the model is in the graph once, not once per block (8 blocks): tasks travel one by one
    tasks = [len(cloudpickle.dumps(task)) for task in dict(lazy.__dask_graph__()).values()]
    assert sum(tasks) < 2 * len(cloudpickle.dumps(est))


def test_per_step_and_regressors_and_bags(client):
    X, y = _data(40)
    steps = (np.cumsum(X[:, :, 0], axis=1) > 0).astype(int)
    tagger = LSTMSequenceClassifier(hidden_size=4, max_iter=1, random_state=0).fit(X, steps)
    lazy = tagger.predict_proba(da.from_array(X, chunks=(10, 6, 2)))
    np.testing.assert_array_equal(lazy.compute(), tagger.predict_proba(X))
    reg = LSTMRegressor(hidden_size=4, max_iter=1, random_state=0).fit(X, X[:, -1, 0])
    np.testing.assert_array_equal(reg.predict(da.from_array(X, chunks=(7, 6, 2))).compute(),
                                  reg.predict(X))
    ragged = [X[i, :2 + i % 5] for i in range(40)]
    bag = db.from_sequence(ragged, npartitions=4)
    got = tagger.predict(bag)
    assert isinstance(got, db.Bag)
    for a, b in zip(client.compute(got).result(timeout=120), tagger.predict(ragged)):
        np.testing.assert_array_equal(a, b)


def test_dask_arrays_must_be_chunked_along_samples():
    X, y = _data(20)
    est = LSTMClassifier(hidden_size=3, max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"X: a Dask array must be 3-D .*chunks along samples"):
        est.predict(da.from_array(X, chunks=(10, 3, 2)))
    with pytest.raises(ValueError, match="X: a Dask array must be 3-D"):
        est.predict(da.from_array(X[:, :, 0], chunks=(10, 6)))
