"""A hyper-parameter search on Dask against the same search in one process.

Times ``GridSearchCV`` over ``--grid`` candidates x ``--cv`` folds serially (each fit on every
core this process may use) and under ``joblib.parallel_backend("dask")`` on a LocalCluster of
``--workers`` workers of one thread each; checks that both find the same scores.

    python benchmarks/dask_search.py --workers 2
"""

import argparse
import time
import warnings

import joblib
import numpy as np
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV, KFold

from lstm_fast import LSTMClassifier


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--cv", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.sequences, args.steps, 8)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    grid = dict(hidden_size=[32, 64], learning_rate_init=[1e-3, 3e-3])
    est = LSTMClassifier(max_iter=5, random_state=0)
    start = time.perf_counter()
    serial = GridSearchCV(est, grid, cv=KFold(args.cv)).fit(X, y)
    serial_s = time.perf_counter() - start
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        with joblib.parallel_backend("dask"):
            start = time.perf_counter()
            on_dask = GridSearchCV(est, grid, cv=KFold(args.cv)).fit(X, y)
            dask_s = time.perf_counter() - start
    same = np.array_equal(serial.cv_results_["mean_test_score"],
                          on_dask.cv_results_["mean_test_score"])
    fits = len(serial.cv_results_["params"]) * args.cv
    print(f"{fits} fits ({args.sequences} sequences of {args.steps} steps, 5 epochs): serial "
          f"{serial_s:.1f} s, on {args.workers} Dask workers {dask_s:.1f} s "
          f"({serial_s / dask_s:.2f}x); same scores: {same}")


if __name__ == "__main__":
    main()
