"""Dask collections in predict: a Dask array chunked along samples, or a Dask bag of
sequences, predicted block by block where Dask runs them. The fitted model is one key of the
graph, so it travels once to each worker that needs it, not once per block. Dask is imported
only when a Dask collection arrives (``pip install "lstm_fast[dask]"``)."""

import functools

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["dask_aware", "is_dask", "sample_blocks"]


def is_dask(X):
    """True for a Dask collection (checked without importing Dask)."""
    return type(X).__module__.split(".")[0] == "dask"


def sample_blocks(X, ndim):
    """The delayed blocks of a Dask array X chunked along samples only (a ValueError naming X
    otherwise) and the samples in each."""
    if X.ndim != ndim or any(len(c) != 1 for c in X.chunks[1:]) or np.isnan(X.shape[0]):
        raise ValueError(f"X: a Dask array must be {ndim}-D like the data fit saw, with known "
                         f"chunks along samples only (X.rechunk({{1: -1{', 2: -1' * (ndim > 2)}}}"
                         f")); got shape {X.shape} and chunks {X.chunks}")
    return list(X.to_delayed().ravel()), list(X.chunks[0])


def dask_aware(method):
    """Let ``method(self, X)`` (a predict method) take Dask collections: their result is the
    same kind of collection, computed lazily (see the module docstring)."""
    @functools.wraps(method)
    def wrapper(self, X):
        return _lazily(self, method.__name__, X) if is_dask(X) else method(self, X)
    return wrapper


def _block(estimator, name, block):
    return getattr(estimator, name)(block)


def _partition(sequences, estimator, name):
    return list(getattr(estimator, name)(list(sequences)))


def _lazily(estimator, name, X):
    """``estimator.name`` of every block of the Dask collection X, as a Dask collection."""
    import dask.array as da
    import dask.bag as db
    from dask import delayed

    check_is_fitted(estimator)
    model = delayed(estimator, pure=True, traverse=False)
    if isinstance(X, db.Bag):  # ragged sequences: one (T_i, n_features) array per item
        return X.map_partitions(_partition, model, name)
    if not isinstance(X, da.Array):
        raise TypeError(f"X: a Dask {type(X).__name__} is not supported: give a dask.array "
                        "Array (chunked along samples) or a dask.bag Bag of sequences")
    ndim = 2 if estimator._input_kind == "series" else 3
    blocks, sizes = sample_blocks(X, ndim)
    one = getattr(estimator, name)(np.zeros((1,) + X.shape[1:], X.dtype))  # (shape, dtype)
    parts = [da.from_delayed(delayed(_block, pure=True)(model, name, block),
                             shape=(n,) + one.shape[1:], dtype=one.dtype)
             for block, n in zip(blocks, sizes)]
    return da.concatenate(parts)
