"""Threads, extreme values and determinism: predictions from many threads at once are the
serial ones, extreme inputs stay finite, and a fit is the same bits in any process and (where
the engine promises it) on any thread count."""

import json
import textwrap
import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import lstm_fast
from lstm_fast import LSTMClassifier, LSTMRegressor

from conftest import HERE, needs_packed_kernel


def _fitted_pair():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((rng.integers(5, 40), 3)) for _ in range(120)]
    y = np.array([x[:, 0].sum() > 0 for x in X]).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LSTMClassifier(hidden_size=32, num_layers=2, bidirectional=True, max_iter=3,
                             random_state=0).fit(X, y)
    return clf, X, y


def _in_threads(n, work):
    """Run work(i) in n threads at once (released together); returns their results."""
    results, errors = [None] * n, []
    start = threading.Barrier(n)

    def run(i):
        start.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    return results


def test_eight_threads_predicting_with_one_model_get_the_serial_results():
    clf, X, _ = _fitted_pair()
    expected = clf.predict_proba(X)
    lstm_out = clf.lstm_.forward(np.zeros((30, 4, 3)))[0]
    results = _in_threads(8, lambda i: [clf.predict_proba(X) for _ in range(3)] + [
        clf.lstm_.forward(np.zeros((30, 4, 3)), training=False)[0]])
    for got in results:
        for proba in got[:3]:
            np.testing.assert_array_equal(proba, expected)
        np.testing.assert_array_equal(got[3], lstm_out)


def test_fitting_in_one_thread_while_others_predict_with_another_model():
    clf, X, y = _fitted_pair()
    expected = clf.predict_proba(X)
    rng = np.random.default_rng(1)
    Xr, yr = rng.standard_normal((80, 10, 3)), rng.standard_normal(80)
    params = dict(hidden_size=16, max_iter=4, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        alone = LSTMRegressor(**params).fit(Xr, yr)

        def work(i):
            if i == 0:
                return LSTMRegressor(**params).fit(Xr, yr)
            return [clf.predict_proba(X) for _ in range(4)]

        results = _in_threads(4, work)
    for got in results[1:]:
        for proba in got:
            np.testing.assert_array_equal(proba, expected)
    for (name, a), (_, b) in zip(results[0].lstm_.named_parameters(),
                                 alone.lstm_.named_parameters()):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_sequences_and_huge_preactivations_stay_finite(dtype):
    """T = 10,000 steps with inputs that drive every gate's pre-activation to +-1e4: sigmoid
    and tanh saturate (no overflow), the cell grows at most by one a step, all stays finite;
    and backward through it too."""
    rng = np.random.default_rng(2)
    lstm = lstm_fast.LSTM(4, 16, dtype=dtype, random_state=0)
    x = np.sign(rng.standard_normal((10_000, 2, 4))) * 1e4
    out, (h, c) = lstm.forward(x)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(c)) and np.abs(out).max() <= 1
    assert np.abs(c).max() <= 10_000
    for name, w in lstm.named_parameters():
        w[...] = np.sign(w) * 1e4 if name.startswith("weight") else w
    lstm.mark_updated()
    out, (h, c) = lstm.forward(x, training=True)
    grad_x = lstm.backward(np.ones_like(out))
    assert all(np.all(np.isfinite(a)) for a in (out, h, c, grad_x))
    assert all(np.all(np.isfinite(g)) for g in lstm.grads.values())


def test_training_with_clipping_on_long_sequences_stays_finite():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((24, 1000, 2)) * 3
    y = X[:, :, 0].mean(1) * 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = LSTMRegressor(hidden_size=16, learning_rate_init=0.05, max_iter=3, batch_size=8,
                            clip_grad_norm=1.0, random_state=0).fit(X, y)
    assert np.all(np.isfinite(reg.loss_curve_))
    assert all(np.all(np.isfinite(p)) for p in reg._parameters())
    assert np.all(np.isfinite(reg.predict(X)))


FIT_DIGEST = textwrap.dedent("""
    import hashlib, json, sys, warnings, numpy as np, lstm_fast
    from sklearn.exceptions import ConvergenceWarning
    warnings.simplefilter("ignore", ConvergenceWarning)
    rng = np.random.default_rng(4)
    X = [rng.standard_normal((rng.integers(3, 30), 3)) for _ in range(96)]
    y = np.array([x[:, 0].sum() for x in X])
    threads = int(sys.argv[1])
    reg = lstm_fast.LSTMRegressor(hidden_size=64, num_layers=2, bidirectional=True,
                                  dropout=0.2, max_iter=3, batch_size=32, random_state=7,
                                  n_threads=threads).fit(X, y)
    digest = hashlib.sha256()
    for p in reg._parameters():
        digest.update(np.ascontiguousarray(p).tobytes())
    print(json.dumps([digest.hexdigest(), reg.loss_curve_]))
""")


def _fit_digest(threads):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", FIT_DIGEST, str(threads)], cwd=HERE,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_fit_is_the_same_bits_in_another_process():
    """The same random_state and n_threads give the same fitted weights in two processes (whose
    heaps and addresses differ)."""
    first, second = _fit_digest(1), _fit_digest(1)
    assert first == second


@needs_packed_kernel
@pytest.mark.slow
def test_a_fit_is_the_same_bits_on_one_and_two_threads():
    """Batches of 32 sequences with H = 64: large enough that the engine runs two threads (each
    time loop split between them), and it promises the same bits as on one."""
    from lstm_fast._lstm import threads_for

    if lstm_fast._lstm.build_info()["max_threads"] < 2:
        pytest.skip("one core: nothing to compare")
    assert threads_for(32, 64, 64) >= 2  # (the fit's layer calls do run on both)
    assert _fit_digest(1) == _fit_digest(2)
