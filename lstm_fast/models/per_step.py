"""LSTMSequenceClassifier and LSTMSequenceRegressor: a label or a value at every step (Keras'
``return_sequences=True``), the output layer reading each valid step's hidden state."""

import numpy as np
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ._dask import dask_aware
from ._docs import (ATTRS_DOC, CLASSIFIER_PARAMS_DOC, NOTES_DOC, PARAMS_DOC,
                    REGRESSOR_PARAMS_DOC)
from ._heads import EveryStep, valid_steps
from ._sequences import check_sequences, naming
from .classifier import LSTMClassifier
from .regressor import LSTMRegressor

__all__ = ["LSTMSequenceClassifier", "LSTMSequenceRegressor"]

_PER_STEP_DOC = """
    ``y`` gives a target at every step: an array (n_samples, n_timesteps) (labels, or values;
    (n_samples, n_timesteps, n_outputs) for several values a step), or a list of arrays, one per
    sequence, of its length (for ragged ``X``). The loss is the mean over valid steps (padding
    never counts), each step weighted by its sequence's ``sample_weight``. ``predict`` returns
    the same structure: an array for array ``X``, a list of arrays for a list of sequences.
"""


def per_step_targets(data, y):
    """``y`` as one array per sequence of ``data``, each checked to have its sequence's steps;
    and the steps of every sequence, flattened (as rows: see _heads.EveryStep)."""
    if isinstance(y, (list, tuple)):
        seqs = [np.asarray(t) for t in y]
    else:
        y = np.asarray(y)
        if y.ndim < 2:
            raise ValueError(f"y must give a target at every step: an array (n_samples, "
                             f"n_timesteps) or a list of one array per sequence; got shape "
                             f"{y.shape}. For one target a sequence use LSTMClassifier or "
                             "LSTMRegressor.")
        seqs = list(y)
    if len(seqs) != len(data):
        raise ValueError(f"X and y have inconsistent numbers of samples: {len(data)} and "
                         f"{len(seqs)}")
    for i, (t, n) in enumerate(zip(seqs, data.steps())):
        if t.ndim == 0 or len(t) != n:
            steps = "a scalar" if t.ndim == 0 else f"{len(t)} steps"
            raise ValueError(f"y[{i}] has {steps}, but X[{i}] has {n}: give a target at every "
                             "step of every sequence")
    return np.concatenate(seqs)


def padded(rows, data, fill=0):
    """Rows of every valid step back to (n, T_max, ...) arrays, padding with ``fill``."""
    n, T = data.X.shape[:2]
    out = np.full((n, T) + rows.shape[1:], fill, dtype=rows.dtype)
    mask = valid_steps(data)
    if mask is None:
        out.reshape(rows.shape)[...] = rows  # (out is new and contiguous: a view)
    else:
        out[mask] = rows
    return out


def per_sequence(rows, data):
    """Rows of every valid step as ``predict`` returns them: an (n, T, ...) array for an array
    X (every sequence has T steps), a list of (T_i, ...) arrays for a list of sequences."""
    if data.lengths is None:
        n, T = data.X.shape[:2]
        return rows.reshape((n, T) + rows.shape[1:])
    return np.split(rows, np.cumsum(data.lengths)[:-1])


class _PerStep:
    """What the per-step estimators share: their head, targets and weights by the step."""

    _head = EveryStep()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, data, y, first, incremental, classes):
        """Per-step targets, checked (see _check_targets) and padded: (n, T_max[, k])."""
        rows = self._check_targets(per_step_targets(data, y), first, incremental, classes)
        return padded(rows, data)

    def _predicted(self, X, transform):
        """``transform`` of the output-layer rows of X's valid steps, per sequence."""
        check_is_fitted(self)
        data = self._standardized(check_sequences(self, X, reset=False, dtype=self.lstm_.dtype))
        return per_sequence(transform(self._decision_standardized(data)), data)

    def _scored_rows(self, X, y, sample_weight):
        """(targets, predictions, weights) of every valid step of X, for ``score``."""
        check_is_fitted(self)
        data = check_sequences(self, X, reset=False, dtype=self.lstm_.dtype)
        with naming("y"):
            targets = per_step_targets(data, y)
        predictions = self._predicted(X, self._predictions)
        predictions = (np.concatenate(predictions) if isinstance(predictions, list)
                       else predictions.reshape((-1,) + predictions.shape[2:]))
        weights = None
        if sample_weight is not None:
            with naming("sample_weight"):
                weights = np.repeat(_check_sample_weight(sample_weight, np.empty((len(data), 0))),
                                    data.steps())
        return targets, predictions, weights


class LSTMSequenceClassifier(_PerStep, LSTMClassifier):
    __doc__ = ("""Per-step classifier: a label at every step, from a softmax layer on the
    recurrent layer's hidden state at that step (both directions' when bidirectional).
""" + _PER_STEP_DOC + PARAMS_DOC + CLASSIFIER_PARAMS_DOC + ATTRS_DOC + """\
    classes_ : ndarray of shape (n_classes,)
        The labels seen at any step.
""" + NOTES_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from lstm_fast import LSTMSequenceClassifier
    >>> X = np.random.default_rng(0).standard_normal((40, 10, 2))
    >>> y = (np.cumsum(X[:, :, 0], axis=1) > 0).astype(int)     # sign of the running sum
    >>> clf = LSTMSequenceClassifier(hidden_size=16, max_iter=30, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).shape
    (3, 10)
""")

    @dask_aware
    def predict(self, X):
        """The most probable label at every step: (n_samples, n_timesteps) for an array X,
        a list of (T_i,) arrays for a list of sequences."""
        return self._predicted(X, self._predictions)

    @dask_aware
    def predict_log_proba(self, X):
        """Log-probabilities of the classes at every step: (n_samples, n_timesteps,
        n_classes), or a list of (T_i, n_classes) arrays."""
        return self._predicted(X, _log_softmax)

    @dask_aware
    def predict_proba(self, X):
        """Probabilities of the classes at every step (structured as predict_log_proba)."""
        return self._predicted(X, lambda z: np.exp(_log_softmax(z)))

    def score(self, X, y, sample_weight=None):
        """Accuracy over every valid step (each weighted by its sequence's sample_weight)."""
        targets, predictions, weights = self._scored_rows(X, y, sample_weight)
        return float(accuracy_score(targets, predictions, sample_weight=weights))


class LSTMSequenceRegressor(_PerStep, LSTMRegressor):
    __doc__ = ("""Per-step regressor: a value (or n_outputs values) at every step, from a
    linear layer on the recurrent layer's hidden state at that step.
""" + _PER_STEP_DOC + PARAMS_DOC + REGRESSOR_PARAMS_DOC + ATTRS_DOC + """\
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        The targets' standardisation over every valid step (zeros and ones when
        ``normalize_y=False``).
""" + NOTES_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from lstm_fast import LSTMSequenceRegressor
    >>> X = np.random.default_rng(0).standard_normal((40, 10, 1))
    >>> y = np.cumsum(X[:, :, 0], axis=1)                       # the running sum
    >>> reg = LSTMSequenceRegressor(hidden_size=16, max_iter=30, random_state=0).fit(X, y)
    >>> [p.shape for p in reg.predict([X[0, :4], X[1]])]
    [(4,), (10,)]
""")

    @dask_aware
    def predict(self, X):
        """The predicted value(s) at every step: (n_samples, n_timesteps[, n_outputs]) for an
        array X, a list of (T_i[, n_outputs]) arrays for a list of sequences."""
        return self._predicted(X, self._predictions)

    def score(self, X, y, sample_weight=None):
        """R2 over every valid step (outputs averaged uniformly; each step weighted by its
        sequence's sample_weight)."""
        targets, predictions, weights = self._scored_rows(X, y, sample_weight)
        return float(r2_score(targets, predictions, sample_weight=weights))


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
