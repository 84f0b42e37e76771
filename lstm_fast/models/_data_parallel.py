"""Data-parallel training on Dask, synchronous as torch's DistributedDataParallel.

``fit(X)`` with X a Dask array (chunked along samples) or a Dask bag of sequences, under a
``distributed.Client``: each worker of the client loads a contiguous share of X's blocks into
a :class:`Replica` (a Dask actor) and keeps it there. The client runs the epochs as a fit in one
process does (the same shuffles from the same ``random_state``, the same global mini-batches);
at each step every replica computes the gradients of the batch's rows it holds, the client
averages them (weighted by the rows' weights: the batch's mean loss, as in one process) and
sends the mean back with the next batch, and every replica applies the same optimiser step the
client applies to its own copy of the model. So the model is the one-process fit's up to the
order of the sums. Dropout masks are drawn on each worker from streams of their own. A replica
trains on its worker's threads (``nthreads``) unless ``n_threads`` is set.

Per step the client exchanges one gradient (every parameter once) with each worker, both ways:
it pays when a step's compute dwarfs that (large batches, long sequences), not otherwise.
"""

import copy

import numpy as np

from .._threads import affinity_cpus, thread_budget
from ._dask import sample_blocks
from ._heads import EveryStep
from ._sequences import SequenceData, check_sequences

__all__ = ["Shards", "Replica", "shard"]


def _concatenated(parts):
    """One SequenceData of several, padded to the longest."""
    if all(p.lengths is None for p in parts) and len({p.X.shape[1] for p in parts}) == 1:
        return SequenceData(np.concatenate([p.X for p in parts]), None)
    lengths = np.concatenate([p.steps() for p in parts])
    X = np.zeros((len(lengths), lengths.max(), parts[0].X.shape[2]), parts[0].X.dtype)
    start = 0
    for p in parts:
        X[start:start + len(p), :p.X.shape[1]] = p.X
        start += len(p)
    return SequenceData(X, lengths)


class Replica:
    """A worker's share of the sequences and its copy of the model: the Dask actor of
    data-parallel training.

    Parameters
    ----------
    estimator : the estimator being fit (what it knows of X's kind and features checks the
        blocks)
    dtype : the model's dtype
    *blocks : the share's blocks (arrays, or lists of sequences for a bag), in order
    """

    estimator = None  # its copy of the model, from ``start`` (a class attribute too, so that
    #                   the client may read it through the actor)

    def __init__(self, estimator, dtype, *blocks):
        parts = [check_sequences(estimator, list(b) if isinstance(b, tuple) else b,
                                 reset=False, dtype=dtype) for b in blocks if len(b)]
        self.data = _concatenated(parts) if parts else None  # (None: the client drops it)

    def lengths(self):
        """Each sequence's number of steps."""
        return np.zeros(0, int) if self.data is None else self.data.steps()

    def input_sums(self, weights, mean=None):
        """Sums over the valid steps, each weighted by its sequence's ``weights``, of 1 and x
        (``mean`` None) or of (x - mean)^2: the input scaler's statistics, in float64."""
        values, w = EveryStep().rows(self.data.X, weights, self.data)
        values = values.astype(np.float64)
        if mean is None:
            return w.sum(), w @ values
        return w @ (values - mean) ** 2

    def start(self, estimator, targets, weights, seed):
        """Take a copy of the model (``estimator``, its optimiser with it: a copy, since an
        in-process cluster passes objects as they are) and this share's targets and weights;
        standardise the inputs as the model does. ``seed`` (the client's, and this replica's
        rank) gives its dropout masks a stream of their own. Without ``n_threads`` the replica
        uses its worker's threads."""
        estimator = copy.deepcopy(estimator)
        self.estimator, self.targets, self.weights = estimator, targets, weights
        self.data = estimator._standardized(self.data)
        estimator.lstm_._rng = np.random.RandomState(
            np.random.MT19937(np.random.SeedSequence(seed)))
        estimator.n_threads = estimator.n_threads or _worker_threads()

    def _apply(self, update):
        """The last step's update (see ``step``), on a copy of its gradients (``_update``
        changes them in place, and an in-process cluster passes the client's arrays)."""
        if update is not None:
            grads, n, weight = update
            self.estimator._update([g.copy() for g in grads], n, weight)

    def step(self, local, update):
        """Apply the last step's ``update`` (the arguments of the estimator's ``_update``; None
        before the first), then return this share's part of the next batch (the rows
        ``local``): (loss x weight, weight, gradients x weight), or (0, 0, None) for none
        (gradients None too if the loss is not finite: the client stops)."""
        self._apply(update)
        if len(local) == 0:
            return 0.0, 0.0, None
        with self.estimator._thread_limits():
            loss, weight, grads = self.estimator._batch_gradients(
                self.data.take(local), self.targets[local], self.weights[local])
        return loss * weight, weight, None if grads is None else [g * weight for g in grads]

    def decision(self, local, update):
        """Apply the last step's ``update`` (see ``step``), then return the output-layer rows
        (float64) of the sequences ``local``, in their order (None for none)."""
        self._apply(update)
        if len(local) == 0:
            return None
        return self.estimator._decision_standardized(self.data.take(local))


def _release(futures):
    """Remove the actors of ``futures`` from their workers now. (Releasing the futures would
    not do: the actors' handles hold futures of their own, freed only by the garbage
    collector.)"""
    if futures:
        futures[0].client.cancel(futures)


class _Replicas:
    """The client's side of the replicas: their actors, the rows each holds and the update to
    send with the next batch."""

    def __init__(self, futures):
        self.futures, self.starts, self.pending = futures, None, None
        self.actors = [f.result() for f in futures]

    def keep(self, which):
        """Keep the replicas ``which`` (indices) and release the others."""
        _release([f for i, f in enumerate(self.futures) if i not in which])
        self.futures = [self.futures[i] for i in which]
        self.actors = [self.actors[i] for i in which]

    def shares(self, rows):
        """Each replica's part of ``rows`` (one entry a sequence, in order)."""
        bounds = list(self.starts) + [len(rows)]
        return [rows[a:b] for a, b in zip(bounds, bounds[1:])]

    def split(self, index):
        """``index`` (global rows) as each replica's positions in it and local rows."""
        owner = np.searchsorted(self.starts, index, side="right") - 1
        where = [np.flatnonzero(owner == r) for r in range(len(self.actors))]
        return [(w, index[w] - self.starts[r]) for r, w in enumerate(where)]

    def close(self):
        _release(self.futures)
        self.futures, self.actors = [], []


class Shards:
    """Sequences held by Dask workers, seen as a :class:`SequenceData` by the training loop:
    ``X`` holds only their shape (a zero-strided array: the values stay on the workers),
    ``lengths`` their lengths (None if all are full); ``take`` gives a view of some of them.
    """

    def __init__(self, replicas, index, lengths, n_features, dtype, full):
        self._replicas, self.index = replicas, index
        self._all_lengths, self._full = lengths, full
        self.lengths = None if full else lengths[index]
        T = lengths[index].max() if len(index) else 0
        self.X = np.broadcast_to(np.zeros((), dtype), (len(index), T, n_features))

    def __len__(self):
        return len(self.index)

    def steps(self):
        return self._all_lengths[self.index]

    def take(self, index):
        return Shards(self._replicas, self.index[index], self._all_lengths, self.X.shape[2],
                      self.X.dtype, self._full)

    def input_mean_std(self, weights):
        """Weighted mean and standard deviation (float64) of the inputs at the valid steps."""
        actors, shares = self._replicas.actors, self._replicas.shares(weights)
        sums = [c.result() for c in [r.input_sums(w) for r, w in zip(actors, shares)]]
        mean = sum(s for _, s in sums) / sum(w for w, _ in sums)
        squares = [c.result() for c in [r.input_sums(w, mean) for r, w in zip(actors, shares)]]
        return mean, np.sqrt(sum(squares) / sum(w for w, _ in sums))

    def start(self, estimator, targets, weights):
        """Send each replica the model and its rows' targets and weights (before the
        epochs)."""
        r = self._replicas
        seed = estimator.lstm_._rng.randint(2 ** 31)  # (new masks at every fit call)
        calls = [actor.start(estimator, t, w, [seed, rank]) for rank, (actor, t, w)
                 in enumerate(zip(r.actors, r.shares(targets), r.shares(weights)))]
        for c in calls:
            c.result()
        r.pending = None

    def close(self):
        """Release the replicas (and the data they hold)."""
        self._replicas.close()

    def gradients(self):
        """(loss, weight, grads) of these sequences as one mini-batch, as the estimator's
        ``_batch_gradients`` gives them in one process: the replicas' weighted sums over the
        rows each holds, over the total weight. The replicas first apply the last step's
        update; this step's (copied before the client's own update changes the arrays in place)
        goes with the next."""
        r = self._replicas
        calls = [actor.step(local, r.pending)
                 for actor, (_, local) in zip(r.actors, r.split(self.index))]
        parts = [c.result() for c in calls]
        weight = sum(w for _, w, _ in parts)
        sums = [g for _, _, g in parts if g is not None]
        scale = 1.0 / weight if weight > 0 else 0.0
        grads = [sum(gs) * scale for gs in zip(*sums)]
        loss = sum(lw for lw, _, _ in parts) * scale
        r.pending = ([g.copy() for g in grads], len(self), weight)
        return loss, weight, grads

    def decision(self):
        """Output-layer rows (float64) of these sequences, in order: one a sequence, or one a
        valid step (per-step estimators), sequence by sequence."""
        r = self._replicas
        split = r.split(self.index)
        calls = [actor.decision(local, r.pending) for actor, (_, local) in zip(r.actors, split)]
        r.pending = None  # (applied: the replicas hold the client's model)
        rows = [None] * len(self)
        for (where, _), call in zip(split, calls):
            got = call.result()  # (per-step rows if more rows than sequences came back)
            if got is None:
                continue
            counts = (self.steps()[where] if len(got) != len(where)
                      else np.ones(len(where), int))
            for i, block in zip(where, np.split(got, np.cumsum(counts)[:-1])):
                rows[i] = block
        return np.concatenate(rows)


def shard(estimator, X, reset, dtype):
    """Place the Dask collection X on the workers of the current ``distributed.Client``, one
    :class:`Replica` a worker, and return it as :class:`Shards`. X's kind and features are
    recorded (``reset``) or checked as ``check_sequences`` does; each worker checks its
    blocks."""
    try:
        from distributed import get_client
        client = get_client()
    except (ImportError, ValueError):
        raise ValueError("X: fitting on a Dask collection trains on the workers of a "
                         "dask.distributed Client: start one first (distributed.Client(...)), "
                         "or fit on X.compute()") from None
    blocks, sizes, example = _blocks(estimator, X, reset)
    n_features = check_sequences(estimator, example, reset=reset, dtype=dtype).X.shape[2]
    workers = sorted(client.scheduler_info()["workers"])[:len(blocks)]
    if not workers:
        raise ValueError("X: the Dask client has no workers to train on")
    futures = []
    try:  # (on any failure, release the replicas made so far: they hold the data)
        for w, group in zip(workers, _contiguous(sizes, len(workers), len(blocks))):
            futures.append(client.submit(
                Replica, estimator, dtype, *client.compute([blocks[i] for i in group],
                                                           workers=[w]),
                actor=True, workers=[w], pure=False))
        replicas = _Replicas(futures)
        lengths = [c.result() for c in [actor.lengths() for actor in replicas.actors]]
    except BaseException:
        _release(futures)
        raise
    held = [i for i, n in enumerate(lengths) if len(n)]  # (a share of empty partitions: none)
    replicas.keep(held)
    if not held:
        raise ValueError("X: the Dask collection holds no sequences")
    lengths = [lengths[i] for i in held]
    replicas.starts = np.cumsum([0] + [len(n) for n in lengths[:-1]])
    return Shards(replicas, np.arange(sum(map(len, lengths))), np.concatenate(lengths),
                  n_features, dtype, full=sizes is not None)


def _blocks(estimator, X, reset):
    """X's delayed blocks, their sizes (None if unknown) and a one-sequence NumPy example."""
    import dask.array as da
    import dask.bag as db

    if isinstance(X, db.Bag):
        blocks = list(X.to_delayed())  # (partitions: their sizes are unknown)
        for block in blocks:  # (the first sequence: one partition computed, usually)
            first = list(block.compute())[:1]
            if first:
                return blocks, None, [np.asarray(first[0])]
        raise ValueError("X: the Dask bag holds no sequences")
    if not isinstance(X, da.Array):
        raise TypeError(f"X: a Dask {type(X).__name__} is not supported: give a dask.array "
                        "Array (chunked along samples) or a dask.bag Bag of sequences")
    if reset and X.ndim not in (2, 3):
        raise ValueError(f"X: a Dask array must be 3-D (n_samples, n_timesteps, n_features) "
                         f"or 2-D (univariate series), chunked along samples only; got shape "
                         f"{X.shape}")
    ndim = X.ndim if reset else 2 if estimator._input_kind == "series" else 3
    blocks, sizes = sample_blocks(X, ndim)
    return blocks, sizes, np.zeros((1,) + X.shape[1:], X.dtype)


def _contiguous(sizes, k, n_blocks):
    """k contiguous groups of the block indices, of about equal samples (of equal blocks if
    the sizes are None): each block goes to the group its middle sample falls in."""
    weights = np.ones(n_blocks) if sizes is None else np.asarray(sizes, float)
    middles = np.cumsum(weights) - weights / 2
    owner = np.minimum((k * middles / weights.sum()).astype(int), k - 1)
    return [g for g in (np.flatnonzero(owner == i) for i in range(k)) if len(g)]


def _worker_threads():
    """The threads of the Dask worker this runs on (within the CPU affinity), or the
    caller's budget elsewhere."""
    try:
        from distributed import get_worker
        return max(1, min(get_worker().state.nthreads, affinity_cpus()))
    except (ImportError, ValueError):
        return thread_budget()
