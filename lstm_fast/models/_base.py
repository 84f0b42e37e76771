"""The recurrent estimators' common base: parameters, the model (a recurrent layer read out by a
dense layer on its last hidden state), fit and prediction. Training (_training.py) and the saved
state (_state.py) are mixins of their own."""

import inspect
import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._checks import check_dtype
from .._threads import budget_limits, limited_threads
from ._data_parallel import Shards
from ._heads import EveryStep, LastState, valid_steps
from ._introspection import IntrospectionMixin
from ._sequences import SequenceData, check_sequences
from ._state import SHAPE_PARAMS, StateMixin, make_layer, param_value
from ._stream import Stream
from ._training import TrainingMixin

__all__ = ["BaseLSTMEstimator"]

# Sequences per forward call at prediction time (bounds memory, whatever the data size).
_PREDICT_BATCH = 512


class BaseLSTMEstimator(IntrospectionMixin, StateMixin, TrainingMixin, BaseEstimator):
    """Common training machinery of LSTMClassifier and LSTMRegressor."""

    # What the output layer reads: the last state of each sequence (see _heads).
    _head = LastState()

    _parameter_constraints = {
        "cell": [StrOptions({"lstm", "gru", "rnn"})],
        "forget_bias": [Interval(numbers.Real, None, None, closed="neither")],
        "recurrent_init": [StrOptions({"orthogonal", "glorot"})],
        "hidden_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "num_layers": [Interval(numbers.Integral, 1, None, closed="left")],
        "bidirectional": ["boolean"],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "proj_size": [Interval(numbers.Integral, 0, None, closed="left")],
        "solver": [StrOptions({"adam", "sgd"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "clip_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "shuffle": ["boolean"],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "dtype": [StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64}),
                  Options(np.dtype, {np.dtype(np.float32), np.dtype(np.float64)})],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "standardize": ["boolean"],
        "predict_precision": [StrOptions({"bfloat16", "int8"}), None],
        "fit_precision": [StrOptions({"bfloat16"}), None],
    }

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0,
                 proj_size=0, solver="adam", learning_rate_init=1e-3, batch_size=32, max_iter=200,
                 alpha=0.0, clip_grad_norm=5.0, shuffle=True, tol=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, momentum=0.9, random_state=None, verbose=0, warm_start=False,
                 dtype="float32", n_threads=None, standardize=True, cell="lstm",
                 forget_bias=1.0, recurrent_init="orthogonal", predict_precision=None,
                 fit_precision=None):
        self.cell = cell
        self.forget_bias = forget_bias
        self.recurrent_init = recurrent_init
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.proj_size = proj_size
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.alpha = alpha
        self.clip_grad_norm = clip_grad_norm
        self.shuffle = shuffle
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.momentum = momentum
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.dtype = dtype
        self.n_threads = n_threads
        self.standardize = standardize
        self.predict_precision = predict_precision
        self.fit_precision = fit_precision

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        return tags

    def fit(self, X, y, sample_weight=None):
        """Fit the model to sequences ``X`` and targets ``y``.

        Parameters
        ----------
        X : array of shape (n_samples, n_timesteps, n_features), array of shape
            (n_samples, n_timesteps) (univariate series), or list of arrays (T_i, n_features)
            or (T_i,) (univariate sequences of different lengths); or a Dask array of
            those shapes chunked along samples, or a Dask bag of sequences: the fit then runs
            data-parallel on the workers of the current ``distributed.Client``, which hold the
            data (y and sample_weight come to this process), and gives the model a fit here
            would give, up to the order of the sums and but for dropout's masks (README,
            "Scaling out").
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss (and in the validation score of early stopping);
            None weighs them equally.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For bad input or parameters, or if training diverges (the loss or the gradients
            become NaN or infinite).
        KeyboardInterrupt
            On Ctrl-C, within a mini-batch step.

        Notes
        -----
        Whatever stops a fit early (an exception, divergence, Ctrl-C), the estimator is left as
        it was after its last completed epoch, or as it was before the call if it completed
        none: never half-way through an epoch, never with non-finite parameters.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    def stream(self):
        """A :class:`~lstm_fast.models.Stream` on this fitted model: feed it sequences a chunk of
        steps at a time (``update``), the recurrent state carried between chunks.

        Returns
        -------
        Stream
        """
        return Stream(self)

    def save(self, path):
        """Write the fitted model to ``path`` (a file name or a binary file object): .npz
        arrays and JSON metadata; loading runs no code. A file name is written atomically.

        See :func:`lstm_fast.load`.
        """
        from ..io import save
        save(self, path)

    def _initialize(self, data, targets, weights):
        """A new model for ``data``, its targets (as _check_targets gives them) and the
        samples' ``weights``: the layer, the input scaler, the output layer, the counters."""
        self._rng = check_random_state(self.random_state)
        dtype = check_dtype(self.dtype)
        n_features, n_outputs = data.X.shape[2], self._n_outputs(targets)
        self.lstm_ = make_layer(self.cell, n_features, self.hidden_size,
                                proj_size=self.proj_size, forget_bias=self.forget_bias,
                                recurrent_init=self.recurrent_init, num_layers=self.num_layers,
                                bidirectional=self.bidirectional, dropout=self.dropout,
                                batch_first=True, dtype=dtype,
                                random_state=self._rng.randint(np.iinfo(np.int32).max))
        self._architecture = dict({name: param_value(name, getattr(self, name))
                                   for name in SHAPE_PARAMS},
                                  n_features=n_features, n_outputs=n_outputs)
        if self.standardize:
            mean, std = (data.input_mean_std(weights) if isinstance(data, Shards)
                         else _weighted_mean_std(*EveryStep().rows(data.X, weights, data)))
            std[std < 10 * np.finfo(dtype).eps] = 1.0
        else:
            mean, std = np.zeros(n_features), np.ones(n_features)
        self.scaler_mean_, self.scaler_scale_ = mean.astype(dtype), std.astype(dtype)
        n_in = self.lstm_.num_directions * self.lstm_.output_size
        limit = np.sqrt(6.0 / (n_in + n_outputs))
        self.coefs_ = [self._rng.uniform(-limit, limit, (n_in, n_outputs)).astype(dtype)]
        self.intercepts_ = [np.zeros(n_outputs, dtype=dtype)]
        self.n_iter_, self.t_ = 0, 0
        self.loss_curve_ = []
        self.loss_ = None
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_, self.best_validation_score_ = None, None
            self.best_loss_ = np.inf

    def _parameters(self):
        return [p for _, p in self.lstm_.named_parameters()] + self.coefs_ + self.intercepts_

    def _thread_limits(self):
        """The thread limits of a fit or predict: n_threads, or the caller's budget (see
        lstm_fast._threads)."""
        return limited_threads(self.n_threads) if self.n_threads else budget_limits()

    def _standardized(self, data):
        if isinstance(data, Shards):  # (each worker standardises its own: Replica.start)
            return data
        X = (data.X - self.scaler_mean_) / self.scaler_scale_
        mask = valid_steps(data)
        if mask is not None:
            X[~mask] = 0
        return SequenceData(X.astype(self.scaler_mean_.dtype, copy=False), data.lengths)

    def _predict_precision(self):
        """predict_precision, checked against the fitted dtype (bfloat16 runs float32 models)."""
        return self._precision("predict_precision")

    def _fit_precision(self):
        """fit_precision, checked against the model's dtype."""
        return self._precision("fit_precision")

    def _precision(self, name):
        value = getattr(self, name)
        if value is not None and self.lstm_.dtype != np.float32:
            raise ValueError(f"{name}={value!r} needs dtype='float32'; this model is "
                             f"{np.dtype(self.lstm_.dtype).name}")
        return value

    def _decision(self, X):
        """Output-layer values (logits or regression outputs) for ``X``, in float64."""
        check_is_fitted(self)
        data = self._standardized(check_sequences(self, X, reset=False, dtype=self.lstm_.dtype))
        return self._decision_standardized(data)

    def _decision_standardized(self, data):
        """Output-layer values (float64) of standardised ``data``: one row a sequence, or a
        valid step for per-step estimators (see _heads)."""
        if isinstance(data, Shards):
            return data.decision()
        rows = []
        with self._thread_limits():
            for start in range(0, len(data), _PREDICT_BATCH):
                part = data.take(np.arange(start, min(start + _PREDICT_BATCH, len(data))))
                output, state = self.lstm_.forward(part.X, lengths=part.lengths,
                                                   precision=self._predict_precision())
                features = self._head.features(self.lstm_, output, state, part)
                rows.append(features.astype(np.float64) @ self.coefs_[0] + self.intercepts_[0])
        return np.concatenate(rows)


def _weighted_mean_std(values, weights):
    """Mean and standard deviation (float64) of the rows of ``values`` with ``weights``."""
    mean = np.average(values, axis=0, weights=weights).astype(np.float64)
    var = np.average((values - mean) ** 2, axis=0, weights=weights)
    return mean, np.sqrt(var)


def _common_params(values):
    """The parameters of BaseLSTMEstimator's ``__init__`` among an estimator's ``__init__``
    arguments ``values`` (its ``locals()``): estimators with parameters of their own list every
    parameter in their signature, as scikit-learn requires, and pass these on."""
    names = inspect.signature(BaseLSTMEstimator.__init__).parameters
    return {k: v for k, v in values.items() if k in names and k != "self"}

