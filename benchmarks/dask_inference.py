"""Batch inference larger than a worker's memory, streamed through a Dask LocalCluster.

Fits a small LSTMClassifier, then predicts a lazily generated float32 Dask array of
``--factor`` times one worker's memory limit: each chunk is made, predicted and reduced on a
worker, the fitted model sent to each worker once. Prints the sequences per second per worker.

    python benchmarks/dask_inference.py --workers 2 --memory-limit 400MiB --factor 10
"""

import argparse
import time

import dask.array as da
import numpy as np
from dask.utils import parse_bytes
from distributed import Client, LocalCluster

from lstm_fast import LSTMClassifier


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="400MiB")
    parser.add_argument("--factor", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=20_000, help="sequences per block")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, args.steps, args.features)).astype(np.float32)
    model = LSTMClassifier(hidden_size=32, max_iter=5, random_state=0).fit(
        X, (X[:, :, 0].sum(axis=1) > 0).astype(int))
    per_sequence = args.steps * args.features * 4
    n = int(args.factor * parse_bytes(args.memory_limit) / per_sequence)
    n -= n % args.chunk
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1",
                      memory_limit=args.memory_limit, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        big = da.random.default_rng(1).standard_normal(
            (n, args.steps, args.features), chunks=(args.chunk, args.steps, args.features),
            dtype=np.float32)
        start = time.perf_counter()
        share = client.compute(model.predict(big).mean()).result()
        seconds = time.perf_counter() - start
    print(f"{n:,} sequences ({n * per_sequence / 2**30:.1f} GiB, {args.factor:g}x a worker's "
          f"{args.memory_limit}) in {seconds:.1f} s on {args.workers} workers: "
          f"{n / seconds / args.workers:,.0f} sequences/s per worker; share of class 1: "
          f"{share:.3f}")


if __name__ == "__main__":
    main()
