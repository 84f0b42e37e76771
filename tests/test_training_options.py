"""The estimators' training options: sample and class weights, target standardisation, the
stopping rule (and what it says), dtypes given as NumPy types."""

import io
import re
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, cross_val_score
from sklearn.utils.class_weight import compute_sample_weight

import lstm_fast
from lstm_fast import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=30, T=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 2))
    return X, X[:, -3:, 0].sum(axis=1), (X[:, :, 0].sum(axis=1) > 0).astype(int)


def _same_fit(**params):
    """Full-batch float64 training without shuffling: the loss is then exactly a weighted mean."""
    return dict(dict(hidden_size=5, max_iter=4, batch_size=1000, shuffle=False, dtype="float64",
                     random_state=0), **params)


@pytest.mark.parametrize("Estimator", [LSTMClassifier, LSTMRegressor])
def test_sample_weight_is_repetition(Estimator):
    """Weight 2 is the sample twice, weight 0 the sample left out (scalers included)."""
    X, y_reg, y_cls = _data()
    y = y_cls if Estimator is LSTMClassifier else y_reg
    w = np.tile([2.0, 0.0, 1.0], 10)
    repeat = np.repeat(np.arange(30), w.astype(int))
    weighted = Estimator(**_same_fit()).fit(X, y, sample_weight=w)
    repeated = Estimator(**_same_fit()).fit(X[repeat], y[repeat])
    np.testing.assert_allclose(weighted.scaler_mean_, repeated.scaler_mean_, rtol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(weighted._decision(X), repeated._decision(X), rtol=1e-8,
                               atol=1e-12)
    unweighted = Estimator(**_same_fit()).fit(X, y)
    assert not np.allclose(unweighted._decision(X), weighted._decision(X), rtol=1e-4)


def test_sample_weight_in_minibatches_and_partial_fit():
    X, y, _ = _data()
    ones = LSTMRegressor(hidden_size=5, max_iter=3, random_state=0).fit(X, y, sample_weight=None)
    same = LSTMRegressor(hidden_size=5, max_iter=3, random_state=0).fit(
        X, y, sample_weight=np.full(30, 3.0))
    np.testing.assert_allclose(same.predict(X), ones.predict(X), rtol=1e-5)
    part = LSTMRegressor(hidden_size=5, random_state=0)
    part.partial_fit(X, y, sample_weight=np.arange(30.0))
    assert part.n_iter_ == 1 and np.isfinite(part.loss_)


def test_cross_val_score_passes_sample_weight():
    X, _, y = _data(n=40)
    w = np.where(y == 1, 3.0, 1.0)
    est = LSTMClassifier(hidden_size=4, max_iter=2, random_state=0)
    scores = cross_val_score(est, X, y, cv=KFold(2), params={"sample_weight": w})
    plain = cross_val_score(est, X, y, cv=KFold(2))
    assert scores.shape == (2,) and not np.array_equal(scores, plain)


@pytest.mark.parametrize("bad, message", [
    (np.full(29, 1.0), r"sample_weight.*\(29,\).*\(30,\)"),
    (np.r_[-1.0, np.ones(29)], r"Negative values in data passed to `sample_weight`"),
    (np.r_[np.nan, np.ones(29)], r"sample_weight.*NaN"),
    (np.zeros(30), r"sample_weight.*non-zero"),
    (np.ones((30, 2)), r"sample_weight.*1D"),
])
def test_bad_sample_weight_is_refused_by_name(bad, message):
    X, y, _ = _data()
    with pytest.raises(ValueError, match=message):
        LSTMRegressor(hidden_size=4, max_iter=1).fit(X, y, sample_weight=bad)


def test_class_weight_is_sample_weight_per_class():
    """In the loss; the input scaler weighs samples by sample_weight alone (standardize=False
    here)."""
    X, _, y = _data()
    labels = np.array(["no", "yes"])[y]
    for class_weight in ("balanced", {"yes": 3.0}):
        by_class = LSTMClassifier(**_same_fit(class_weight=class_weight, standardize=False)).fit(
            X, labels)
        w = compute_sample_weight(class_weight, labels)
        by_sample = LSTMClassifier(**_same_fit(standardize=False)).fit(X, labels, sample_weight=w)
        np.testing.assert_allclose(by_class.predict_proba(X), by_sample.predict_proba(X),
                                   rtol=1e-10)
    both = LSTMClassifier(**_same_fit(class_weight={"yes": 3.0}, standardize=False)).fit(
        X, labels, sample_weight=np.arange(30.0))
    alone = LSTMClassifier(**_same_fit(standardize=False)).fit(
        X, labels, sample_weight=np.arange(30.0) * np.where(labels == "yes", 3.0, 1.0))
    np.testing.assert_allclose(both.predict_proba(X), alone.predict_proba(X), rtol=1e-10)


def test_class_weight_errors_name_it():
    X, _, y = _data()
    with pytest.raises(ValueError, match="class_weight.*not supported by partial_fit"):
        LSTMClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="class_weight"):
        LSTMClassifier(class_weight={7: 2.0}, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="class_weight"):
        LSTMClassifier(class_weight="uniform").fit(X, y)


def test_class_weight_and_dtype_survive_save_and_load():
    X, _, y = _data()
    labels = np.array(["no", "yes"])[y]
    est = LSTMClassifier(hidden_size=4, max_iter=2, class_weight={"yes": 2.5},
                         dtype=np.float64, random_state=0).fit(X, labels)
    assert est.lstm_.dtype == np.float64
    f = io.BytesIO()
    est.save(f)
    f.seek(0)
    back = lstm_fast.load(f)
    assert back.class_weight == {"yes": 2.5} and back.dtype == "float64"
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    back.partial_fit(X, labels)  # the weights still apply to labels
    for dtype in (np.float32, np.dtype("float64"), "float32"):
        LSTMRegressor(hidden_size=3, max_iter=1, dtype=dtype).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="dtype"):
        LSTMRegressor(dtype=np.int32).fit(X, y)


def test_normalize_y_learns_whatever_the_scale():
    """The same model, in its own units, for y and for 1000 y + 1e4; without normalize_y the
    shifted targets are not learned in the same epochs (R2 measured -20 and below)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 8, 2))
    y = X[:, -3:, 0].sum(axis=1)
    params = dict(hidden_size=16, max_iter=30, random_state=0)
    plain = LSTMRegressor(**params).fit(X, y)
    shifted = LSTMRegressor(**params).fit(X, 1000 * y + 1e4)
    assert plain.score(X, y) > 0.8  # measured 0.88
    assert shifted.score(X, 1000 * y + 1e4) == pytest.approx(plain.score(X, y), abs=1e-3)
    np.testing.assert_allclose(shifted.predict(X), 1000 * plain.predict(X) + 1e4, rtol=1e-4)
    np.testing.assert_allclose(shifted.target_mean_, [1000 * y.mean() + 1e4], rtol=1e-6)
    raw = LSTMRegressor(normalize_y=False, **params).fit(X, 1000 * y + 1e4)
    assert raw.score(X, 1000 * y + 1e4) < 0
    two = LSTMRegressor(**params).fit(X, np.c_[y, 1000 * y])
    assert two.target_scale_.shape == (2,) and two.predict(X).shape == (200, 2)


def test_normalize_y_is_fixed_by_the_first_fit(tmp_path):
    X, y, _ = _data()
    est = LSTMRegressor(hidden_size=4, random_state=0)
    est.partial_fit(X, 10 * y + 5)
    mean = est.target_mean_.copy()
    est.partial_fit(X, y)  # later batches do not move the standardisation
    np.testing.assert_array_equal(est.target_mean_, mean)
    est.set_params(normalize_y=False)
    with pytest.raises(ValueError, match="cannot change normalize_y"):
        est.partial_fit(X, y)
    est.set_params(normalize_y=True)
    est.save(tmp_path / "m.npz")
    back = lstm_fast.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.target_mean_, mean)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


def _flat_problem(seed=0):
    """Labels that no model can learn: the training loss is flat from the first epochs."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((32, 5, 2)), rng.integers(0, 2, 32)


def test_the_default_runs_every_epoch_and_does_not_warn():
    X, y = _flat_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = LSTMClassifier(hidden_size=4, max_iter=40, learning_rate_init=1e-5,
                             random_state=0).fit(X, y)
    assert est.tol is None and est.n_iter_ == 40


def test_a_plateau_stop_says_why():
    X, y = _flat_problem()
    out = io.StringIO()
    with redirect_stdout(out):
        est = LSTMClassifier(hidden_size=4, max_iter=40, learning_rate_init=1e-5, tol=1e-4,
                             verbose=1, random_state=0).fit(X, y)
    assert est.n_iter_ == 12  # the first epoch sets the best; 11 more without progress
    last = out.getvalue().splitlines()[-1]
    assert re.fullmatch(r"Training loss did not improve by more than tol=0\.0001 for 11 "
                        r"consecutive epochs \(best \d\.\d+\)\. Stopping after epoch 12\.", last)
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        LSTMClassifier(hidden_size=4, max_iter=3, tol=0.0, random_state=0).fit(X, y)


def test_early_stopping_says_why_and_counts_without_tol():
    X, y = _flat_problem()
    out = io.StringIO()
    with redirect_stdout(out):
        est = LSTMClassifier(hidden_size=4, max_iter=60, early_stopping=True,
                             validation_fraction=0.25, n_iter_no_change=3, verbose=1,
                             random_state=0).fit(X, y)
    assert est.n_iter_ < 60
    assert re.fullmatch(r"Validation score did not improve by more than tol=0\.0 for 4 "
                        r"consecutive epochs \(best [\d.]+\)\. Stopping after epoch \d+; the "
                        r"parameters of the best epoch are kept\.",
                        out.getvalue().splitlines()[-1])


def test_a_batch_of_zero_weight_takes_no_step():
    """Weights 0 for the first batch: the fit is the fit on the other samples alone."""
    X, y, _ = _data(n=8)
    params = dict(hidden_size=4, max_iter=3, batch_size=2, shuffle=False, random_state=0)
    weighted = LSTMRegressor(**params).fit(X, y, sample_weight=np.r_[0.0, 0.0, np.ones(6)])
    alone = LSTMRegressor(**params).fit(X[2:], y[2:])
    for a, b in zip(weighted._parameters(), alone._parameters()):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_needs_weight_in_both_parts():
    X, _, y = _data(n=20)
    one = (np.arange(20) == 0).astype(float)  # one sample weighs: one part weighs nothing
    with pytest.raises(ValueError, match="sample_weight is zero for every sample of the"):
        LSTMClassifier(early_stopping=True, validation_fraction=0.5, max_iter=2,
                       random_state=0).fit(X, y, sample_weight=one)
