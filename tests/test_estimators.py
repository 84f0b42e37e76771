"""LSTMClassifier and LSTMRegressor: scikit-learn's contract, learning, persistence, bad input."""

import io
import pickle
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_info

import lstm_fast
from lstm_fast import LSTMClassifier, LSTMRegressor


@parametrize_with_checks([LSTMClassifier(), LSTMRegressor()])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def adding_problem(n, T, rng):
    """Pairs (value, marker); the target is the sum of the two marked values (mean guess: 1/6)."""
    values = rng.uniform(0, 1, (n, T))
    markers = np.zeros((n, T))
    for i in range(n):
        markers[i, rng.choice(T, 2, replace=False)] = 1
    return np.stack([values, markers], axis=2), (values * markers).sum(axis=1)


def sequences(n, rng, n_features=2, t_min=3, t_max=12):
    """Ragged list of sequences; label/target depends on the whole sequence."""
    X = [rng.standard_normal((rng.integers(t_min, t_max + 1), n_features)) for _ in range(n)]
    y = np.array([x[:, 0].sum() for x in X])
    return X, y


def test_learns_the_adding_problem():
    rng = np.random.default_rng(0)
    X, y = adding_problem(4000, 50, rng)
    X_test, y_test = adding_problem(1000, 50, rng)
    reg = LSTMRegressor(hidden_size=32, learning_rate_init=0.01, batch_size=64, max_iter=20,
                        tol=0, standardize=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    mse = np.mean((reg.predict(X_test) - y_test) ** 2)
    print(f"\nadding problem T=50: test MSE {mse:.5f} (mean guess 0.1667)")
    assert mse < 0.01


def test_classifies_digits_as_row_sequences():
    """scikit-learn's bundled digits: 8x8 images read as 8 steps of 8 pixels."""
    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.images, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    clf = LSTMClassifier(hidden_size=64, learning_rate_init=5e-3, max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    accuracy = clf.score(X_test, y_test)
    print(f"\ndigits (8 steps x 8 pixels): test accuracy {accuracy:.4f}")
    assert accuracy > 0.93


@pytest.mark.parametrize("Estimator", [LSTMClassifier, LSTMRegressor])
def test_ragged_list_equals_one_at_a_time(Estimator):
    rng = np.random.default_rng(1)
    X, y = sequences(60, rng)
    if Estimator is LSTMClassifier:
        y = np.where(y > 0, "pos", "neg")
    est = Estimator(hidden_size=8, max_iter=5, bidirectional=True, random_state=0).fit(X, y)
    method = est.predict_proba if Estimator is LSTMClassifier else est.predict
    together = method(X)
    alone = np.concatenate([method([x]) for x in X])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    # Padding a sequence with anything changes nothing: only its true steps are read.
    padded_prediction = method([np.vstack([X[0], np.full((5, 2), 100.0)])[:len(X[0])]])
    np.testing.assert_allclose(padded_prediction, alone[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("Estimator", [LSTMClassifier, LSTMRegressor])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_refit_is_bitwise_deterministic(Estimator, solver):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 6, 3))
    y = (X[:, :, 0].sum(1) > 0).astype(int) if Estimator is LSTMClassifier else X[:, :, 1].sum(1)
    params = dict(hidden_size=8, num_layers=2, dropout=0.3, max_iter=4, solver=solver,
                  random_state=3, n_threads=1, alpha=1e-3)
    a = Estimator(**params).fit(X, y)
    b = Estimator(**params).fit(X, y)
    for (name, pa), (_, pb) in zip(a.lstm_.named_parameters(), b.lstm_.named_parameters()):
        np.testing.assert_array_equal(pa, pb, err_msg=name)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    c = Estimator(**dict(params, random_state=4)).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


@pytest.mark.parametrize("Estimator", [LSTMClassifier, LSTMRegressor])
def test_pickle_joblib_and_save_load_round_trips(Estimator, tmp_path):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 5, 2))
    y = np.array(["a", "b", "c"])[np.arange(30) % 3] if Estimator is LSTMClassifier else \
        X[:, :, :2].sum(1)
    est = Estimator(hidden_size=6, proj_size=3, bidirectional=True, max_iter=3,
                    dtype="float64", random_state=0).fit(X, y)
    expected = est.predict(X)
    restored = [pickle.loads(pickle.dumps(est))]
    joblib.dump(est, tmp_path / "model.joblib")
    restored.append(joblib.load(tmp_path / "model.joblib"))
    est.save(tmp_path / "model.npz")
    restored.append(lstm_fast.load(tmp_path / "model.npz"))
    for other in restored:
        np.testing.assert_array_equal(other.predict(X), expected)
        assert other.get_params() == est.get_params()
        assert other.n_iter_ == est.n_iter_ and other.loss_curve_ == est.loss_curve_
    if Estimator is LSTMClassifier:
        np.testing.assert_array_equal(restored[-1].classes_, est.classes_)
        np.testing.assert_array_equal(restored[-1].predict_proba(X), est.predict_proba(X))


def test_load_rejects_damaged_or_foreign_files(tmp_path):
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((20, 4, 2)), np.arange(20) % 2
    LSTMClassifier(hidden_size=4, max_iter=2, random_state=0).fit(X, y).save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[:len(data) // 2])
    (tmp_path / "noise.npz").write_bytes(bytes(rng.integers(0, 256, 500, dtype=np.uint8)))
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    for name in ("truncated.npz", "noise.npz", "foreign.npz"):
        with pytest.raises(ValueError, match="lstm_fast model file"):
            lstm_fast.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        lstm_fast.load(tmp_path / "missing.npz")
    with np.load(tmp_path / "m.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = arrays["meta"].tobytes().replace(b'"version": 1', b'"version": 99')
    np.savez(tmp_path / "future.npz", **dict(arrays, meta=np.frombuffer(meta, np.uint8)))
    with pytest.raises(ValueError, match="format version 99"):
        lstm_fast.load(tmp_path / "future.npz")
    del arrays["lstm:weight_hh_l0"]
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(ValueError, match="damaged.*weight_hh_l0"):
        lstm_fast.load(tmp_path / "partial.npz")


def test_sklearn_tooling():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 6))
    y = (X[:, -2:].sum(1) > 0).astype(int)
    params = dict(hidden_size=8, max_iter=15, learning_rate_init=1e-2, random_state=0)
    clf = LSTMClassifier(**params)
    assert clone(clf).get_params() == clf.get_params()
    pipe = make_pipeline(StandardScaler(), LSTMClassifier(**params)).fit(X, y)
    assert pipe.score(X, y) > 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(LSTMClassifier(**params), X, y, cv=3)
        assert scores.shape == (3,) and np.all(scores >= 0)
        search = GridSearchCV(LSTMRegressor(max_iter=5, random_state=0),
                              {"hidden_size": [4, 8], "solver": ["adam", "sgd"]},
                              cv=2, n_jobs=2).fit(X, X[:, -1])
    assert set(search.best_params_) == {"hidden_size", "solver"}
    assert isinstance(search.best_estimator_, LSTMRegressor)


def test_n_threads_is_applied_and_restored():
    seen = []
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((20, 4, 2)), rng.standard_normal(20)
    before = [i["num_threads"] for i in threadpool_info()]

    class Spy(LSTMRegressor):
        def _step(self, batch, targets):
            seen.append({i["num_threads"] for i in threadpool_info()
                         if i["user_api"] == "blas"})
            return super()._step(batch, targets)

    Spy(hidden_size=4, max_iter=1, n_threads=1, random_state=0).fit(X, y)
    assert seen and all(s == {1} for s in seen)
    assert [i["num_threads"] for i in threadpool_info()] == before


def test_training_attributes_verbose_and_warnings():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 5, 2))
    y = (X[:, :, 0].sum(1) > 0).astype(int)
    out = io.StringIO()
    with redirect_stdout(out), pytest.warns(ConvergenceWarning):
        clf = LSTMClassifier(hidden_size=4, max_iter=3, tol=0, verbose=1, random_state=0).fit(X, y)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1: loss") and lines[0].endswith("s")
    assert clf.n_iter_ == 3 and clf.t_ == 120 and len(clf.loss_curve_) == 3
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.validation_scores_ is None

    es = LSTMClassifier(hidden_size=4, max_iter=50, early_stopping=True, n_iter_no_change=2,
                        validation_fraction=0.25, random_state=0).fit(X, y)
    assert es.best_loss_ is None and len(es.validation_scores_) == es.n_iter_
    assert es.best_validation_score_ == max(es.validation_scores_)
    assert es.n_iter_ < 50

    warm = LSTMClassifier(hidden_size=4, max_iter=2, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning):
        warm.fit(X, y)
        first = warm.coefs_[0].copy()
        warm.fit(X, y)
    assert warm.n_iter_ == 4 and not np.array_equal(first, warm.coefs_[0])

    part = LSTMClassifier(hidden_size=4, random_state=0)
    part.partial_fit(X[:20], y[:20], classes=[0, 1])
    part.partial_fit(X[20:], y[20:])
    assert part.n_iter_ == 2 and part.t_ == 40


def test_regressor_multi_output_and_sgd():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((80, 6, 2))
    y = np.stack([X[:, -1, 0], X[:, -1, 1] - X[:, -2, 0]], axis=1)
    reg = LSTMRegressor(hidden_size=16, solver="sgd", learning_rate_init=0.05, max_iter=60,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (80, 2) and reg.score(X, y) > 0.8


@pytest.mark.parametrize("bad,match", [
    (lambda X, y: (np.where(X > 1, np.nan, X), y), "NaN"),
    (lambda X, y: (np.where(X > 1, np.inf, X), y), "infinity"),
    (lambda X, y: (X[0, 0], y), "Expected 2D array"),
    (lambda X, y: (X[None], y), "dim 4"),
    (lambda X, y: (X[:0], y[:0]), "0 sample"),
    (lambda X, y: (X, y[:-1]), "inconsistent numbers of samples"),
    (lambda X, y: ([X[0], X[1][:, :1]], y[:2]), "same number of features"),
    (lambda X, y: ([X[0], X[1][:0]], y[:2]), "0 sample"),
])
def test_bad_fit_input(bad, match):
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((10, 4, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match=match):
        LSTMClassifier(max_iter=1).fit(*bad(X, y))


def test_bad_predict_and_partial_fit_input():
    rng = np.random.default_rng(10)
    X, y = rng.standard_normal((10, 4, 2)), np.arange(10) % 2
    clf = LSTMClassifier(hidden_size=4, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="2 features"):
        clf.predict(rng.standard_normal((3, 4, 3)))
    with pytest.raises(ValueError, match="fit saw 3-D|3-D"):
        clf.predict(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((2, 4, 2), np.nan))
    clf.predict(rng.standard_normal((3, 9, 2)))  # other sequence lengths are fine
    part = LSTMClassifier(hidden_size=4)
    with pytest.raises(ValueError, match="classes must be passed"):
        part.partial_fit(X, y)
    part.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes_"):
        part.partial_fit(X, np.full(10, 7))
    with pytest.raises(ValueError, match="at least 2 classes"):
        LSTMClassifier(max_iter=1).fit(X, np.zeros(10))
    with pytest.raises(ValueError, match="proj_size"):
        LSTMClassifier(hidden_size=4, proj_size=4, max_iter=1).fit(X, y)
