"""Data-parallel training on Dask: where it pays, measured.

For each shape (sequences of T steps, global batch B), times the same fit (same
random_state, the same global batches) in one process on 1 and on 2 threads, and across a
LocalCluster of 1 and of 2 workers (one thread each); prints the milliseconds a step (the
epochs' time over their steps), the speed-up of 2 workers over 1 and over one process, the
set-up of a fit on the workers (placing the data, starting the replicas: the time outside the
epochs) and the largest parameter difference of the 2-worker model from the one-process one.
Then the communication cost of a step: a step of a one-row, one-step batch on each worker
(the gradient of every parameter to the client and the mean back, compute negligible), for
the same model.

    python benchmarks/dask_training.py                    # about 8 minutes on 2 cores
    python benchmarks/dask_training.py --shapes 50x32 200x512 --epochs 1
"""

import argparse
import time
import warnings

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

from lstm_fast import LSTMClassifier
from lstm_fast.models._data_parallel import shard


def _data(n, T, F, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F)).astype(np.float32)
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


_EPOCHS = []  # seconds of each epoch of the fits (their steps, without the set-up)


def _timed_epoch(epoch):
    def timed(self, *args):
        start = time.perf_counter()
        epoch(self, *args)
        _EPOCHS.append(time.perf_counter() - start)
    return timed


LSTMClassifier._epoch = _timed_epoch(LSTMClassifier._epoch)


def _timed_fit(est, X, y):
    """(seconds of the fit, seconds of its epochs, the fitted estimator)."""
    _EPOCHS.clear()
    start = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - start, sum(_EPOCHS), est


def _cluster(workers):
    return LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1",
                        dashboard_address=None)


def _on_cluster(workers, params, X, y, chunks):
    with _cluster(workers) as cluster, Client(cluster):
        _timed_fit(LSTMClassifier(**dict(params, max_iter=1)), da.from_array(X[:256],
                   chunks=(128,) + X.shape[1:]), y[:256])  # (warm the workers up)
        return _timed_fit(LSTMClassifier(**params), da.from_array(X, chunks=chunks), y)


def _communication(workers, params, F, repeats=200):
    """Median seconds of one step of a one-row batch on each of ``workers`` replicas (and its
    update), the model of ``params``."""
    X, y = _data(64 * workers, 1, F)
    est = LSTMClassifier(**dict(params, max_iter=1)).fit(X, y)
    with _cluster(workers) as cluster, Client(cluster):
        data = shard(est, da.from_array(X, chunks=(64,) + X.shape[1:]), False, np.float32)
        data.start(est, y, np.ones(len(y)))
        batch = data.take(64 * np.arange(workers))  # (row 0 of each worker's share)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            batch.gradients()
            times.append(time.perf_counter() - start)
        data.close()
    n_params = sum(p.size for p in est._parameters())
    return float(np.median(times)), n_params


def _row(args, T, B):
    """Seconds a step and seconds of set-up a fit (its time outside the epochs) of each way,
    medians over ``args.rounds`` alternated rounds, and the largest parameter difference of
    the 2-worker model from the one-process one."""
    X, y = _data(args.sequences, T, args.features)
    params = dict(hidden_size=args.hidden, batch_size=B, max_iter=args.epochs, random_state=0)
    chunks = (args.sequences // 8,) + X.shape[1:]
    ways = {"1 thread": lambda: _timed_fit(LSTMClassifier(**params, n_threads=1), X, y),
            "2 threads": lambda: _timed_fit(LSTMClassifier(**params, n_threads=2), X, y),
            "1 worker": lambda: _on_cluster(1, params, X, y, chunks),
            "2 workers": lambda: _on_cluster(2, params, X, y, chunks)}
    steps, setup, models = {way: [] for way in ways}, {way: [] for way in ways}, {}
    for _ in range(args.rounds):
        for way, fit in ways.items():
            seconds, epochs, models[way] = fit()
            steps[way].append(epochs / (args.epochs * -(-args.sequences // B)))
            setup[way].append(seconds - epochs)
    diff = max(float(np.abs(p - q).max()) for p, q in
               zip(models["1 thread"]._parameters(), models["2 workers"]._parameters()))
    return ({way: float(np.median(t)) for way, t in steps.items()},
            {way: float(np.median(t)) for way, t in setup.items()}, diff)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["50x32", "50x256", "200x256",
                                                        "50x1024"],
                        help="TxB: steps a sequence and global batch size")
    parser.add_argument("--sequences", type=int, default=4096)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    print(f"{args.sequences} sequences of {args.features} features, hidden {args.hidden}, "
          f"float32, Adam, {args.epochs} epoch(s); ms a step (the epochs' time over their "
          f"steps) and s of set-up a fit (the rest), medians of {args.rounds} alternated rounds")
    print("| T | B | 1 process, 1 thread | 1 process, 2 threads | 1 worker | 2 workers | "
          "2 workers / 1 worker | 2 workers / 1 process, 2 threads | set-up, 2 workers | "
          "max parameter diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        T, B = map(int, shape.split("x"))
        t, setup, diff = _row(args, T, B)
        print(f"| {T} | {B} | {1e3 * t['1 thread']:.2f} | {1e3 * t['2 threads']:.2f} | "
              f"{1e3 * t['1 worker']:.2f} | {1e3 * t['2 workers']:.2f} | "
              f"{t['1 worker'] / t['2 workers']:.2f}x | {t['2 threads'] / t['2 workers']:.2f}x "
              f"| {setup['2 workers']:.2f} s | {diff:.1e} |", flush=True)
    params = dict(hidden_size=args.hidden, random_state=0)
    for workers in (1, 2):
        seconds, n_params = _communication(workers, params, args.features)
        print(f"communication of a step, {workers} worker(s): {1e3 * seconds:.2f} ms "
              f"({n_params:,} parameters, {4 * n_params / 1024:.0f} KiB each way a worker)")


if __name__ == "__main__":
    main()
