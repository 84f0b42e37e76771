"""LSTMSequenceClassifier and LSTMSequenceRegressor: a target at every step.

scikit-learn's check_estimator gives one target a sample, so the per-step estimators run it
through an adapter (`LastOf`) that gives every step of a sequence the sample's target and
reads the prediction at the last step: the data handling, parameter, pickling, sample-weight,
learning and determinism checks then exercise the per-step code itself (59 of 63 and 56 of 60
pass). Not applicable: the regressors' learning check (check_regressors_train wants R2 > 0.5
at the last step, but the adapter's loss also asks the first steps for the sample's target,
which they cannot know); and, as for LSTMClassifier, the exact equivalence of sample weights and
repeated samples, which mini-batches break (tests/test_training_options.py checks it with one
full batch).
"""

import io
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

import lstm_fast
from lstm_fast import LSTMSequenceClassifier, LSTMSequenceRegressor
from lstm_fast.models._sequences import check_sequences

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _every_step(X, y):
    """A target a sample, given to every step of its sequence (for scikit-learn's checks)."""
    try:
        a = np.asarray(X)
    except ValueError:
        return y
    if y is None or a.ndim < 2:
        return y
    y = np.asarray(y)
    return np.repeat(y[:, None], a.shape[1], axis=1) if y.ndim >= 1 else y


class LastOf:
    """The adapter of the module docstring."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = isinstance(self, LSTMSequenceRegressor)
        return tags

    def fit(self, X, y, sample_weight=None):
        return super().fit(X, _every_step(X, y), sample_weight=sample_weight)

    def partial_fit(self, X, y, *args, **kwargs):
        return super().partial_fit(X, _every_step(X, y), *args, **kwargs)

    def predict(self, X):
        return super().predict(X)[:, -1]

    def score(self, X, y, sample_weight=None):
        return super().score(X, _every_step(X, y), sample_weight)


class LastOfClassifier(LastOf, LSTMSequenceClassifier):
    def predict_proba(self, X):
        return super().predict_proba(X)[:, -1]

    def predict_log_proba(self, X):
        return super().predict_log_proba(X)[:, -1]


class LastOfRegressor(LastOf, LSTMSequenceRegressor):
    pass


_MINI_BATCHES = {"check_sample_weight_equivalence_on_dense_data":
                 "mini-batches differ (as for LSTMClassifier)"}
_NOT_APPLICABLE = dict(_MINI_BATCHES,
                       check_regressors_train="the adapter's first steps cannot know the target")


@parametrize_with_checks([LastOfClassifier(), LastOfRegressor()],
                         expected_failed_checks=lambda est: (
                             _NOT_APPLICABLE if isinstance(est, LastOfRegressor)
                             else _MINI_BATCHES))
def test_sklearn_checks_through_the_adapter(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def _running_sign(n, T, seed=0, ragged=False):
    """Label at step t: is the running sum of feature 0 positive? (needs the whole prefix)"""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 2))
    y = (np.cumsum(X[:, :, 0], axis=1) > 0).astype(int)
    if not ragged:
        return X, y
    lengths = rng.integers(3, T + 1, n)
    return [X[i, :k] for i, k in enumerate(lengths)], [y[i, :k] for i, k in enumerate(lengths)]


def _delayed_sum(n, T, seed=0):
    """Value at step t: x_{t-1} + x_{t-2} of feature 0 (0 before the start)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 1))
    padded = np.pad(X[:, :, 0], ((0, 0), (2, 0)))
    return X, padded[:, 1:-1] + padded[:, :-2]


def test_the_classifier_learns_a_label_that_needs_the_prefix():
    X, y = _running_sign(400, 15)
    X_test, y_test = _running_sign(200, 15, seed=1)
    clf = LSTMSequenceClassifier(hidden_size=16, max_iter=20, random_state=0).fit(X, y)
    assert clf.score(X_test, y_test) > 0.93  # measured 0.962; a constant guess: about 0.5


def test_the_regressor_learns_a_delayed_sum():
    X, y = _delayed_sum(300, 20)
    X_test, y_test = _delayed_sum(100, 20, seed=1)
    reg = LSTMSequenceRegressor(hidden_size=16, max_iter=40, random_state=0).fit(X, y)
    assert reg.score(X_test, y_test) > 0.9  # measured 0.951 (0.82 after 20 epochs)


@pytest.mark.parametrize("ragged", [True, False])
@pytest.mark.parametrize("Estimator", [LSTMSequenceClassifier, LSTMSequenceRegressor])
def test_the_gradient_is_that_of_the_weighted_mean_over_valid_steps(Estimator, ragged):
    """The engine's gradient of one training step against central differences of the loss:
    the mean over valid steps (padding must not count: ragged), in float64."""
    X, y = _running_sign(5, 6, ragged=ragged)
    if Estimator is LSTMSequenceRegressor:
        y = [np.c_[t, 2.0 * t - 1] for t in y]  # two outputs a step
    w = np.array([1.0, 2.0, 0.5, 0.0, 3.0])
    est = Estimator(hidden_size=3, max_iter=1, dtype="float64", bidirectional=True,
                    clip_grad_norm=None, random_state=0).fit(X, y)
    data = est._standardized(check_sequences(est, X, reset=False, dtype=np.float64))
    targets = est._encoded(est._targets(data, y, False, False, None))

    class Recorder:
        def step(self, grads):
            self.grads = [g.copy() for g in grads]

    est._optimizer = Recorder()
    est._step(data, targets, w)

    def loss():
        est.lstm_.mark_updated()  # (the parameters are written in place below)
        output, state = est.lstm_.forward(data.X, lengths=data.lengths)
        logits = est._head.features(est.lstm_, output, state, data) @ est.coefs_[0]
        return est._loss_and_gradient(logits + est.intercepts_[0],
                                      *est._head.rows(targets, w, data))[0]

    rng = np.random.default_rng(0)
    for p, g in zip(est._parameters(), est._optimizer.grads):
        for i in rng.choice(p.size, min(p.size, 4), replace=False):
            old = p.flat[i]
            p.flat[i] = old + 1e-6
            up = loss()
            p.flat[i] = old - 1e-6
            down = loss()
            p.flat[i] = old
            assert g.flat[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9)


def test_predictions_mirror_the_structure_of_the_input():
    X, y = _running_sign(30, 8)
    labels = np.array(["down", "up"])[y]
    clf = LSTMSequenceClassifier(hidden_size=4, max_iter=2, random_state=0).fit(X, labels)
    assert clf.predict(X).shape == (30, 8) and set(clf.predict(X).ravel()) <= {"down", "up"}
    assert clf.predict_proba(X).shape == (30, 8, 2)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=2), 1.0)
    ragged = [X[0, :3], X[1]]
    got = clf.predict(ragged)
    assert isinstance(got, list) and [g.shape for g in got] == [(3,), (8,)]
    np.testing.assert_array_equal(got[1], clf.predict(X[1:2])[0])
    np.testing.assert_allclose(clf.predict_proba(ragged)[0], clf.predict_proba(X[:1, :3])[0],
                               rtol=1e-6)
    assert clf.score(X, labels) == np.mean(clf.predict(X) == labels)
    Xr, yr = _delayed_sum(20, 7)
    reg = LSTMSequenceRegressor(hidden_size=4, max_iter=2, random_state=0).fit(
        Xr, np.stack([yr, -yr], axis=2))
    assert reg.predict(Xr).shape == (20, 7, 2)
    assert [p.shape for p in reg.predict([Xr[0, :2], Xr[1]])] == [(2, 2), (7, 2)]


def test_ragged_targets_and_univariate_series():
    X, y = _running_sign(40, 9, ragged=True)
    clf = LSTMSequenceClassifier(hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    assert [p.shape for p in clf.predict(X[:3])] == [t.shape for t in y[:3]]
    series, targets = _delayed_sum(20, 6)
    reg = LSTMSequenceRegressor(hidden_size=4, max_iter=2, random_state=0).fit(
        series[:, :, 0], targets)  # 2-D X: univariate series of 6 steps
    assert reg.n_features_in_ == 6 and reg.predict(series[:, :, 0]).shape == (20, 6)


def test_targets_that_do_not_match_the_steps_are_refused_by_sequence():
    X, y = _running_sign(10, 5, ragged=True)
    y[3] = y[3][:-1]
    with pytest.raises(ValueError, match=r"y\[3\] has \d+ steps, but X\[3\] has \d+"):
        LSTMSequenceClassifier(max_iter=1).fit(X, y)
    X, y = _running_sign(10, 5)
    with pytest.raises(ValueError, match="target at every step.*LSTMClassifier"):
        LSTMSequenceClassifier(max_iter=1).fit(X, y[:, 0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LSTMSequenceClassifier(max_iter=1).fit(X, y[:9])
    with pytest.raises(ValueError, match=r"y\[0\] has 4 steps, but X\[0\] has 5"):
        LSTMSequenceRegressor(max_iter=1).fit(X, y[:, :4].astype(float))
    clf = LSTMSequenceClassifier(hidden_size=3, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"y\[0\] has 2 steps"):
        clf.score(X, y[:, :2])


def test_weights_stopping_partial_fit_and_threads():
    X, y = _running_sign(60, 6, ragged=True)
    w = np.linspace(0.5, 2, 60)
    est = LSTMSequenceClassifier(hidden_size=4, max_iter=30, early_stopping=True,
                                 validation_fraction=0.2, n_iter_no_change=2,
                                 class_weight="balanced", random_state=0)
    est.fit(X, y, sample_weight=w)
    assert len(est.validation_scores_) == est.n_iter_ <= 30
    one = LSTMSequenceClassifier(hidden_size=4, max_iter=3, n_threads=1, random_state=0).fit(X, y)
    two = LSTMSequenceClassifier(hidden_size=4, max_iter=3, n_threads=2, random_state=0).fit(X, y)
    for a, b in zip(one._parameters(), two._parameters()):
        np.testing.assert_array_equal(a, b)
    part = LSTMSequenceRegressor(hidden_size=4, random_state=0)
    Xr, yr = _delayed_sum(20, 5)
    part.partial_fit(Xr, yr).partial_fit(Xr[:5], yr[:5], sample_weight=np.ones(5))
    assert part.n_iter_ == 2 and part.t_ == 25


@pytest.mark.parametrize("Estimator", [LSTMSequenceClassifier, LSTMSequenceRegressor])
def test_save_load_clone_and_pipelines(Estimator, tmp_path):
    X, y = _running_sign(20, 6, ragged=True)
    if Estimator is LSTMSequenceRegressor:
        y = [t.astype(float) * 100 for t in y]
    est = Estimator(hidden_size=4, max_iter=2, cell="gru", random_state=0).fit(X, y)
    f = io.BytesIO()
    est.save(f)
    f.seek(0)
    back = lstm_fast.load(f)
    assert type(back) is Estimator
    for a, b in zip(back.predict(X), est.predict(X)):
        np.testing.assert_array_equal(a, b)
    assert clone(est).get_params() == est.get_params()
    pipe = make_pipeline(FunctionTransformer(lambda s: [2 * x for x in s]), clone(est)).fit(X, y)
    assert len(pipe.predict(X)) == 20
    flow = est.gradient_flow(X, y)
    assert len(flow) == 1 and flow[0]["h"].shape == (6,)
