"""Estimator input: 3-D arrays, 2-D univariate series or ragged lists, to padded arrays and
lengths."""

import contextlib
import re

import numpy as np
from sklearn.utils.validation import check_array, validate_data

__all__ = ["SequenceData", "check_sequences", "naming", "refuse_times"]


@contextlib.contextmanager
def naming(name):
    """Make every ValueError or TypeError raised inside name the argument ``name`` (some of
    scikit-learn's, such as "Complex data not supported", name none)."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", message):
            raise
        try:
            renamed = type(exc)(f"{name}: {message}")
        except Exception:  # an exception type that takes other arguments
            raise exc from None
        raise renamed from None


class SequenceData:
    """A batch of sequences, padded batch-first to ``(n, T_max, F)`` with each one's length.

    ``lengths`` is None when every sequence fills the padded length.
    """

    def __init__(self, X, lengths):
        self.X, self.lengths = X, lengths

    def __len__(self):
        return self.X.shape[0]

    def steps(self):
        """Each sequence's number of steps, shape (n,)."""
        return np.full(len(self), self.X.shape[1]) if self.lengths is None else self.lengths

    def take(self, index):
        """The sequences at ``index``, padding trimmed to their longest."""
        if self.lengths is None:
            return SequenceData(self.X[index], None)
        lengths = self.lengths[index]
        return SequenceData(self.X[index, :lengths.max()], lengths)


def refuse_times(a, name):
    """Dates and durations are not numbers to learn from as they are: say so, instead of
    letting them be cast to seconds since 1970."""
    if getattr(getattr(a, "dtype", None), "kind", None) in ("M", "m"):
        raise TypeError(f"{name} holds {a.dtype} values: convert them to numbers first (for "
                        f"example elapsed seconds or calendar features)")


def _is_list_of_arrays(X):
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(hasattr(x, "ndim") for x in X)


def check_sequences(estimator, X, reset, dtype):
    """Validate ``X`` for ``estimator`` and return a :class:`SequenceData` (see
    _check_sequences); every error names X."""
    with naming("X"):
        return _check_sequences(estimator, X, reset, dtype)


def _check_sequences(estimator, X, reset, dtype):
    """Validate ``X`` for ``estimator`` and return a :class:`SequenceData`.

    Accepts a 3-D array ``(n, T, F)`` (or nested lists that make one), a 2-D array ``(n, T)`` of
    univariate series (then ``n_features_in_`` is ``T``, as scikit-learn requires of 2-D input),
    or a list of arrays, one sequence each: ``(T_i, F)``, or ``(T_i,)`` for univariate ones (at
    predict time after a fit on 2-D series, a list of 1-D arrays is those series again, as
    ``np.asarray`` makes it). On ``reset`` the kind of input and ``n_features_in_`` are recorded;
    otherwise they are checked against what ``fit`` saw.
    """
    if _is_list_of_arrays(X) and (reset or estimator._input_kind == "sequences"):
        seqs = []
        for i, x in enumerate(X):
            if getattr(x, "ndim", None) not in (1, 2):
                raise ValueError(f"X[{i}] must be one sequence, a 2-D array (n_timesteps, "
                                 f"n_features) or a 1-D univariate one; got shape "
                                 f"{getattr(x, 'shape', None)}")
            refuse_times(x, f"X[{i}]")
            x = check_array(x, dtype=dtype, ensure_2d=False, ensure_all_finite=True,
                            input_name=f"X[{i}]")
            seqs.append(x[:, None] if x.ndim == 1 else x)
        n_features = {s.shape[1] for s in seqs}
        if len(n_features) != 1:
            raise ValueError(f"every sequence of X must have the same number of features, "
                             f"got {sorted(n_features)}")
        lengths = np.array([len(s) for s in seqs], dtype=np.intp)
        padded = np.zeros((len(seqs), lengths.max(), n_features.pop()), dtype=seqs[0].dtype)
        for i, s in enumerate(seqs):
            padded[i, :len(s)] = s
        return _record(estimator, SequenceData(padded, lengths), "sequences", reset)
    if isinstance(X, (list, tuple)):
        try:
            X = np.asarray(X)
        except ValueError:
            raise ValueError("X is a ragged nested list: give sequences of different lengths "
                             "as a list of arrays, one (n_timesteps, n_features) or "
                             "(n_timesteps,) array each") from None
    refuse_times(X, "X")
    ndim = getattr(X, "ndim", None)
    if ndim == 3:
        X = check_array(X, dtype=dtype, allow_nd=True, ensure_all_finite=True)
        if X.shape[1] == 0 or X.shape[2] == 0:
            raise ValueError(f"X must have at least one step and one feature, got shape {X.shape}")
        return _record(estimator, SequenceData(X, None), "sequences", reset)
    if ndim is not None and ndim > 3:
        raise ValueError(f"X must be a 3-D array (n_samples, n_timesteps, n_features), a 2-D "
                         f"array of univariate series or a list of sequences; got an array with "
                         f"dim {ndim} of shape {X.shape}")
    if not reset and getattr(estimator, "_input_kind", None) == "sequences":
        shape = getattr(X, "shape", None)
        raise ValueError(f"X must be 3-D (n_samples, n_timesteps, {estimator.n_features_in_}) or a "
                         f"list of sequences, like the data fit saw; got shape {shape}")
    X = validate_data(estimator, X, reset=reset, dtype=dtype, ensure_all_finite=True)
    if reset:
        estimator._input_kind = "series"
    return SequenceData(X[:, :, None], None)


def _record(estimator, data, kind, reset):
    n_features = data.X.shape[2]
    if reset:
        estimator._input_kind = kind
        estimator.n_features_in_ = n_features
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif getattr(estimator, "_input_kind", None) != kind:
        raise ValueError("X is a 3-D array or list of sequences, but fit saw 2-D univariate "
                         f"series of {estimator.n_features_in_} steps")
    elif n_features != estimator.n_features_in_:
        raise ValueError(f"X has {n_features} features per step, but {type(estimator).__name__} "
                         f"is expecting {estimator.n_features_in_} features as input")
    if len(data) == 0:
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
    return data
