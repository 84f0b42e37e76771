"""n_threads=None is the caller's thread budget: never more than its limits or the process's
CPUs, so that parallel searches and thread pools do not oversubscribe the cores."""

import os

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold
from threadpoolctl import threadpool_info, threadpool_limits

from lstm_fast import LSTMRegressor
from lstm_fast._threads import affinity_cpus, thread_budget

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class ThreadSpy(LSTMRegressor):
    """Records the OpenMP and BLAS limits every training step runs under (fitted attribute
    ``seen_threads_``), in whatever process fits it."""

    def _step(self, batch, targets, weights):
        self.seen_threads_ = getattr(self, "seen_threads_", set()) | {
            (i["user_api"], i["num_threads"]) for i in threadpool_info()}
        return super()._step(batch, targets, weights)


def _data(n=40):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 6, 2))
    return X, X[:, -2:, 0].sum(axis=1)


def _threads_seen(est):
    return {n for _, n in est.seen_threads_}


def test_none_follows_the_callers_limits():
    X, y = _data()
    with threadpool_limits(limits=1):
        est = ThreadSpy(hidden_size=4, max_iter=1, random_state=0).fit(X, y)
    assert _threads_seen(est) == {1}
    free = ThreadSpy(hidden_size=4, max_iter=1, random_state=0).fit(X, y)
    assert _threads_seen(free) == {thread_budget()}
    assert thread_budget() <= affinity_cpus() <= (os.cpu_count() or 1)
    explicit = ThreadSpy(hidden_size=4, max_iter=1, n_threads=1, random_state=0).fit(X, y)
    assert _threads_seen(explicit) == {1}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_none_never_exceeds_the_cpu_affinity():
    X, y = _data()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        assert thread_budget() == 1
        est = ThreadSpy(hidden_size=4, max_iter=1, random_state=0).fit(X, y)
    finally:
        os.sched_setaffinity(0, before)
    assert _threads_seen(est) == {1}


def _threads_in_fit(estimator, X, y):
    return float(max(_threads_seen(estimator)))


def test_a_parallel_search_runs_each_fit_on_its_share_and_scores_as_a_serial_one():
    """GridSearchCV(n_jobs=2) on joblib's loky workers: each worker is limited to
    cpus // 2 threads, and the fits follow; the scores equal the serial search's (results do
    not depend on the thread count)."""
    X, y = _data(60)
    grid = dict(hidden_size=[3, 5], learning_rate_init=[1e-2, 3e-3])
    search = dict(param_grid=grid, cv=KFold(2), scoring={"r2": "r2", "threads": _threads_in_fit},
                  refit=False)
    est = ThreadSpy(max_iter=2, random_state=0)
    serial = GridSearchCV(est, n_jobs=1, **search).fit(X, y)
    parallel = GridSearchCV(est, n_jobs=2, **search).fit(X, y)
    share = max(1, affinity_cpus() // 2)
    assert set(parallel.cv_results_["mean_test_threads"]) == {share}
    assert set(serial.cv_results_["mean_test_threads"]) == {thread_budget()}
    np.testing.assert_array_equal(parallel.cv_results_["mean_test_r2"],
                                  serial.cv_results_["mean_test_r2"])
