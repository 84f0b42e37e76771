"""Streams: a fitted estimator fed a sequence (or a batch of them) a chunk of steps at a time,
the recurrent state carried from one chunk to the next (Keras' ``stateful=True``)."""

import threading

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

from .._threads import limited_threads
from ._heads import EveryStep
from ._sequences import naming

__all__ = ["Stream"]


class Stream:
    """A fitted estimator's predictions for a stream of steps; see ``estimator.stream()``.

    ``update(X_chunk)`` feeds the next steps of one sequence (``(t, n_features)``, or ``(t,)``
    for a model fit on 2-D univariate series) or of a batch of sequences (``(B, t,
    n_features)``, or ``(B, t)``), and returns the predictions for those steps (per-step
    estimators: ``(t, ...)`` or ``(B, t, ...)``) or the prediction after them (one label or
    value a sequence: a scalar, or ``(B,)``; ``(..., n_outputs)`` for several outputs).
    Feeding a sequence in chunks of any sizes gives the predictions of the whole sequence
    (up to the rounding of the dtype). ``reset()`` starts again from the initial state.

    A stream holds its state and a lock: one stream may be updated from several threads (one
    update at a time), and many streams may share one fitted estimator. It reads the
    estimator's parameters as they are at each update (refitting it changes later updates).
    """

    def __init__(self, estimator):
        check_is_fitted(estimator)
        if estimator.lstm_.bidirectional:
            raise ValueError(f"stream() needs a unidirectional model: this "
                             f"{type(estimator).__name__} is bidirectional, and its backward "
                             "direction reads every sequence from its end")
        self._estimator = estimator
        self._per_step = isinstance(estimator._head, EveryStep)
        self._lock = threading.Lock()
        self._state = self._batch = None

    def reset(self):
        """Forget the steps fed so far: the next update starts new sequences."""
        with self._lock:
            self._state = self._batch = None

    def update(self, X_chunk):
        """Feed the next steps; returns their predictions (see the class)."""
        with self._lock:
            est = self._estimator
            x, batch = self._checked(X_chunk)
            if est.n_threads is None:
                output, state = est.lstm_.forward(x, hx=self._state,
                                                  precision=est._predict_precision())
            else:
                with limited_threads(est.n_threads):
                    output, state = est.lstm_.forward(x, hx=self._state,
                                                      precision=est._predict_precision())
            self._state, self._batch = state, batch
            if self._per_step:
                rows = output.reshape(-1, output.shape[2])
            else:
                rows = est._head.features(est.lstm_, output, state, None)
            values = est._predictions(rows.astype(np.float64) @ est.coefs_[0]
                                      + est.intercepts_[0])
            if self._per_step:
                values = values.reshape(x.shape[:2] + values.shape[1:])
            return values if batch else values[0]

    def _checked(self, X_chunk):
        """X_chunk as a standardised (B, t, n_features) array, and B (None for one sequence)."""
        est = self._estimator
        series = est._input_kind == "series"
        with naming("X_chunk"):
            x = check_array(X_chunk, dtype=est.lstm_.dtype, ensure_2d=False, allow_nd=True,
                            ensure_all_finite=True, input_name="X_chunk")
            one = x.ndim == (1 if series else 2)
            if x.ndim != (1 if series else 2) + (not one):
                shapes = ("(t,) or (B, t)" if series
                          else f"(t, {est.n_features_in_}) or (B, t, {est.n_features_in_})")
                raise ValueError(f"X_chunk must be {shapes} (the next steps of one sequence or "
                                 f"of a batch), got shape {x.shape}")
            x = x[None] if one else x
            x = x[:, :, None] if series else x
            if not series and x.shape[2] != est.n_features_in_:
                raise ValueError(f"X_chunk has {x.shape[2]} features per step, but the model "
                                 f"was fit with {est.n_features_in_}")
            if x.shape[1] == 0:
                raise ValueError("X_chunk has no steps")
        batch = None if one else x.shape[0]
        if self._state is not None and batch != self._batch:
            was = "one sequence" if self._batch is None else f"a batch of {self._batch}"
            now = "one sequence" if one else f"a batch of {x.shape[0]}"
            raise ValueError(f"this stream carries {was}, but X_chunk gives {now}: call "
                             "reset() to start others")
        return (x - est.scaler_mean_) / est.scaler_scale_, batch
