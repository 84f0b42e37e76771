"""scikit-learn estimators: an LSTM read out by a dense layer on its last hidden state."""

import copy
import numbers
import os
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_array, check_is_fitted
from threadpoolctl import threadpool_limits

from ._checks import check_dtype
from ._layer import LSTM, param_shapes
from ._lstm import all_finite
from ._optimizers import clip_global_norm, configure, make_optimizer
from ._sequences import SequenceData, _refuse_times, check_sequences, naming

__all__ = ["LSTMClassifier", "LSTMRegressor"]

# Sequences per forward call at prediction time (bounds memory, whatever the data size).
_PREDICT_BATCH = 512

_PARAMS_DOC = """
    Parameters
    ----------
    hidden_size : int, default=64
        Size of the LSTM's cell state.
    num_layers : int, default=1
        Stacked LSTM layers.
    bidirectional : bool, default=False
        Also read the sequences backwards; the output layer sees both directions' last states.
    dropout : float, default=0.0
        Dropout between LSTM layers during training.
    proj_size : int, default=0
        If > 0, the LSTM's hidden state is projected to this size.
    solver : {"adam", "sgd"}, default="adam"
        Optimiser: Adam, or SGD with momentum.
    learning_rate_init : float, default=1e-3
        Step size.
    batch_size : int, default=32
        Sequences per mini-batch (clipped to the number of samples).
    max_iter : int, default=200
        Maximum number of epochs (passes over the data).
    alpha : float, default=0.0
        L2 penalty (weight decay) on every weight matrix, not on biases.
    clip_grad_norm : float or None, default=5.0
        Rescale the gradient when its global L2 norm exceeds this; None turns clipping off.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    tol : float, default=1e-4
        Improvement of the loss (or validation score) below which an epoch counts as no progress.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for the classifier), stop when its
        score stops improving and keep the best parameters.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    n_iter_no_change : int, default=10
        Epochs without progress (see ``tol``) before stopping.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and numerical constant.
    momentum : float, default=0.9
        SGD momentum.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, validation split and dropout. The same ``random_state``
        and ``n_threads`` give bitwise identical fitted models.
    verbose : int, default=0
        If > 0, print one line per epoch (epoch, loss, validation score, seconds).
    warm_start : bool, default=False
        Continue from the previous fit's parameters instead of re-initialising.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the parameters and computations.
    n_threads : int or None, default=None
        Threads for BLAS and the engine during fit and predict (restored afterwards); None uses
        every core.
    standardize : bool, default=True
        Standardise every input feature with the mean and standard deviation seen by the first
        ``fit`` (over valid steps only), applied again at predict time.
"""

_ATTRS_DOC = """
    Attributes
    ----------
    lstm_ : LSTM
        The fitted recurrent layer.
    coefs_ : list of one ndarray of shape (D * H_out, n_outputs)
        Weights of the output layer.
    intercepts_ : list of one ndarray of shape (n_outputs,)
        Biases of the output layer.
    loss_ : float
        Training loss of the last epoch (with the L2 term).
    loss_curve_ : list of float
        Training loss of every epoch.
    best_loss_ : float or None
        Lowest training loss seen (None with early stopping).
    validation_scores_ : list of float or None
        Validation score of every epoch (early stopping only).
    best_validation_score_ : float or None
        Best validation score (early stopping only).
    n_iter_ : int
        Epochs run.
    t_ : int
        Training samples seen.
    n_features_in_ : int
        Features per step (3-D or list input), or steps of the univariate series (2-D input).
    scaler_mean_, scaler_scale_ : ndarray of shape (n_features,)
        The standardisation (zeros and ones when ``standardize=False``).
"""


class _BaseLSTMEstimator(BaseEstimator):
    """Common training machinery of LSTMClassifier and LSTMRegressor."""

    _parameter_constraints = {
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
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
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
        "dtype": [StrOptions({"float32", "float64"})],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "standardize": ["boolean"],
    }

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0,
                 proj_size=0, solver="adam", learning_rate_init=1e-3, batch_size=32, max_iter=200,
                 alpha=0.0, clip_grad_norm=5.0, shuffle=True, tol=1e-4, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, momentum=0.9, random_state=None, verbose=0, warm_start=False,
                 dtype="float32", n_threads=None, standardize=True):
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        return tags

    # ----------------------------------------------------------------------------- public API

    def fit(self, X, y):
        """Fit the model to sequences ``X`` and targets ``y``.

        Parameters
        ----------
        X : array of shape (n_samples, n_timesteps, n_features), array of shape
            (n_samples, n_timesteps) (univariate series), or list of arrays (T_i, n_features)
            or (T_i,) (univariate sequences of different lengths)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

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
        return self._fit(X, y, incremental=False)

    def save(self, path):
        """Write the fitted model to ``path`` (a file name or a binary file object): .npz
        arrays and JSON metadata; loading runs no code. A file name is written atomically.

        See :func:`lstm_fast.load`.
        """
        from ._persistence import save
        save(self, path)

    # ----------------------------------------------------------------------------- training

    def _fit(self, X, y, incremental, classes=None):
        """fit and partial_fit, undone back to the last completed epoch if anything raises."""
        self._validate_params()
        checkpoint = _Checkpoint(self)
        try:
            self._fit_checked(X, y, incremental, classes, checkpoint)
        except BaseException:
            checkpoint.restore(self)
            raise
        return self

    def _fit_checked(self, X, y, incremental, classes, checkpoint):
        dtype = check_dtype(self.dtype)
        first = not hasattr(self, "lstm_") or not (incremental or self.warm_start)
        if not first:
            self._check_same_shape("partial_fit" if incremental else "a warm_start fit")
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None.")
        data = check_sequences(self, X, reset=first, dtype=dtype)
        with naming("y"):
            targets = self._check_targets(y, first, incremental, classes)
        if len(targets) != len(data):
            raise ValueError(f"X and y have inconsistent numbers of samples: {len(data)} and "
                             f"{len(targets)}")
        if first:
            self._initialize(data, targets.shape[1] if targets.ndim == 2 else len(self.classes_))
        self.lstm_.dropout = self.dropout
        self._optimizer = self._optimizer_for(keep_state=incremental)
        data = self._standardized(data)
        with threadpool_limits(limits=self._threads()):
            if incremental:
                self._epoch(data, targets)
            else:
                self._fit_epochs(data, targets, checkpoint)

    def _check_same_shape(self, how):
        """Refuse a continued fit whose parameters ask for another model shape."""
        for name, fitted in self._architecture.items():
            if name in _SHAPE_PARAMS and _param_value(name, getattr(self, name)) != fitted:
                raise ValueError(
                    f"{how} cannot change {name} from {fitted!r} to {getattr(self, name)!r}: "
                    f"the fitted model keeps its shape. Fit with warm_start=False (or a new "
                    f"estimator) to train a model of the new shape.")

    def _initialize(self, data, n_outputs):
        self._rng = check_random_state(self.random_state)
        dtype = check_dtype(self.dtype)
        n_features = data.X.shape[2]
        self.lstm_ = LSTM(n_features, self.hidden_size, num_layers=self.num_layers,
                          bidirectional=self.bidirectional, dropout=self.dropout,
                          proj_size=self.proj_size, batch_first=True, dtype=dtype,
                          random_state=self._rng.randint(np.iinfo(np.int32).max))
        self._architecture = dict({name: _param_value(name, getattr(self, name))
                                   for name in _SHAPE_PARAMS},
                                  n_features=n_features, n_outputs=n_outputs)
        if self.standardize:
            valid = data.X.reshape(-1, n_features) if data.lengths is None else np.concatenate(
                [x[:n] for x, n in zip(data.X, data.lengths)])
            mean, std = valid.mean(axis=0, dtype=np.float64), valid.std(axis=0, dtype=np.float64)
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

    def _optimizer_settings(self):
        return dict(learning_rate=self.learning_rate_init, momentum=self.momentum,
                    beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)

    def _optimizer_for(self, keep_state):
        """The optimiser for this call: the current one with the current settings (partial_fit
        with the same solver), else a new one."""
        optimizer = getattr(self, "_optimizer", None)
        if keep_state and optimizer is not None and optimizer.solver == self.solver:
            configure(optimizer, self._optimizer_settings())
            return optimizer
        return make_optimizer(self.solver, self._parameters(), self._optimizer_settings())

    def _parameters(self):
        return [p for _, p in self.lstm_.named_parameters()] + self.coefs_ + self.intercepts_

    def _gradients(self):
        return list(self.lstm_.grads.values())

    def _threads(self):
        return self.n_threads or os.cpu_count() or 1

    def _standardized(self, data):
        X = (data.X - self.scaler_mean_) / self.scaler_scale_
        if data.lengths is not None:
            X[np.arange(X.shape[1])[None, :] >= data.lengths[:, None]] = 0
        return SequenceData(X.astype(self.scaler_mean_.dtype, copy=False), data.lengths)

    def _fit_epochs(self, data, targets, checkpoint):
        train, train_y, val, val_y = data, targets, None, None
        if self.early_stopping:
            train_idx, val_idx = self._validation_split(targets)
            train, train_y = data.take(train_idx), targets[train_idx]
            val, val_y = data.take(val_idx), targets[val_idx]
            self._best_parameters = None
        for _ in range(self.max_iter):
            start = time.perf_counter()
            self._epoch(train, train_y)
            score = self._score_encoded(val, val_y) if val is not None else None
            if self.verbose:
                shown = "-" if score is None else f"{score:.6f}"
                print(f"Epoch {self.n_iter_}: loss {self.loss_:.6f}, validation score {shown}, "
                      f"{time.perf_counter() - start:.2f}s")
            stop = self._no_progress(score)
            checkpoint.save(self)
            if stop:
                if self.verbose:
                    print(f"No progress for more than {self.n_iter_no_change} epochs. Stopping.")
                break
        else:
            warnings.warn(f"Stochastic optimiser: maximum iterations ({self.max_iter}) reached "
                          "and the optimisation hasn't converged yet.", ConvergenceWarning)
        if self.early_stopping and self._best_parameters is not None:
            for p, best in zip(self._parameters(), self._best_parameters):
                p[...] = best

    def _validation_split(self, targets):
        """Training and validation indices for early stopping (stratified for classifiers), or
        a ValueError if the data are too few to split so."""
        n = len(targets)
        n_val = int(np.ceil(self.validation_fraction * n))  # as train_test_split counts
        classifier = isinstance(self, ClassifierMixin)
        counts = np.bincount(targets) if classifier else None
        need = max(2, len(self.classes_)) if classifier else 2
        if n_val < need or n - n_val < need or (classifier and counts.min() < 2):
            what = (f"at least {need} samples in each part and 2 of every class"
                    if classifier else "at least 2 samples in each part (R2 needs 2)")
            raise ValueError(
                f"early_stopping holds out validation_fraction={self.validation_fraction} of "
                f"the {n} samples ({n_val}) to score each epoch, and needs {what}: raise "
                "validation_fraction, give more samples, or set early_stopping=False")
        return train_test_split(np.arange(n), test_size=self.validation_fraction,
                                stratify=targets if classifier else None,
                                random_state=self._rng.randint(np.iinfo(np.int32).max))

    def _no_progress(self, score):
        """Update the progress counters after an epoch; True when training should stop."""
        if self.early_stopping:
            self.validation_scores_.append(score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_parameters = [p.copy() for p in self._parameters()]
        else:
            if self.loss_ > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_)
        return self._no_improvement_count > self.n_iter_no_change

    def _epoch(self, data, targets):
        n = len(data)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        batch = min(self.batch_size, n)
        total = 0.0
        for start in range(0, n, batch):
            index = order[start:start + batch]
            total += self._step(data.take(index), targets[index]) * len(index)
        if not all(all_finite(p) for p in self._parameters()):
            self._diverged("the parameters")
        loss = total / n
        if self.alpha:
            weights = [p for name, p in self.lstm_.named_parameters() if name.startswith("weight")]
            loss += 0.5 * self.alpha * sum(float(np.vdot(w, w)) for w in weights + self.coefs_) / n
        if not np.isfinite(loss):
            self._diverged("the loss")
        self.loss_ = loss
        self.loss_curve_.append(self.loss_)
        self.n_iter_ += 1
        self.t_ += n

    def _step(self, batch, targets):
        """Forward, backward and one optimiser update on a mini-batch; returns the mean loss."""
        lstm = self.lstm_
        output, (h_n, _) = lstm.forward(batch.X, lengths=batch.lengths, training=True)
        features = self._last_hidden(h_n)
        logits = features @ self.coefs_[0] + self.intercepts_[0]
        loss, d_logits = self._loss_and_gradient(logits, targets)
        if not np.isfinite(loss):
            self._diverged("the loss")
        d_coef, d_intercept = features.T @ d_logits, d_logits.sum(axis=0)
        d_h_n = np.zeros_like(h_n)
        D, L = lstm.num_directions, lstm.num_layers
        d_h_n[(L - 1) * D:] = (d_logits @ self.coefs_[0].T).reshape(
            len(features), D, -1).transpose(1, 0, 2)
        lstm.zero_grad()
        lstm.backward(np.zeros_like(output), grad_h_n=d_h_n)
        grads = self._gradients() + [d_coef, d_intercept]
        if self.alpha:
            for (name, p), g in zip(lstm.named_parameters(), grads):
                if name.startswith("weight"):
                    g += (self.alpha / len(features)) * p
            d_coef += (self.alpha / len(features)) * self.coefs_[0]
        if not np.isfinite(clip_global_norm(grads, self.clip_grad_norm)):
            self._diverged("the gradients")
        self._optimizer.step(grads)
        return loss

    def _diverged(self, what):
        raise ValueError(
            f"{type(self).__name__}: training diverged at epoch {self.n_iter_ + 1} ({what} "
            "became NaN or infinite). The estimator is left as after its last completed epoch "
            "(or as before this call). Lower learning_rate_init, keep clip_grad_norm on, or "
            "scale the data.")

    def _last_hidden(self, h_n):
        """(D*L, B, P) final states -> (B, D*P): the last layer's, directions side by side."""
        D = self.lstm_.num_directions
        return np.concatenate(list(h_n[-D:]), axis=1)

    # ----------------------------------------------------------------------------- prediction

    def _decision(self, X):
        """Output-layer values (logits or regression outputs) for ``X``, in float64."""
        check_is_fitted(self)
        data = self._standardized(check_sequences(self, X, reset=False, dtype=self.lstm_.dtype))
        return self._decision_standardized(data)

    def _decision_standardized(self, data):
        out = np.empty((len(data), self.coefs_[0].shape[1]))
        with threadpool_limits(limits=self._threads()):
            for start in range(0, len(data), _PREDICT_BATCH):
                index = np.arange(start, min(start + _PREDICT_BATCH, len(data)))
                part = data.take(index)
                _, (h_n, _) = self.lstm_.forward(part.X, lengths=part.lengths)
                features = self._last_hidden(h_n).astype(np.float64)
                out[index] = features @ self.coefs_[0] + self.intercepts_[0]
        return out

    # ----------------------------------------------------------------------------- state

    # Fitted values (not arrays) that save() keeps: the training progress and input kind.
    _FITTED_VALUES = ("n_features_in_", "n_iter_", "t_", "loss_", "best_loss_", "loss_curve_",
                      "validation_scores_", "best_validation_score_", "_no_improvement_count",
                      "_input_kind")

    def _get_state(self):
        """The fitted model, for :func:`lstm_fast.save`: ``(values, arrays)``, JSON-able values
        and named arrays, from which ``_set_state`` restores it exactly (training continues as
        it would have in memory)."""
        check_is_fitted(self)
        values = dict(architecture=self._architecture,
                      fitted={k: _jsonable(getattr(self, k)) for k in self._FITTED_VALUES},
                      rng=_rng_values(self._rng), layer_rng=_rng_values(self.lstm_._rng))
        arrays = {"lstm:" + k: v for k, v in self.lstm_.named_parameters()}
        arrays.update(coef=self.coefs_[0], intercept=self.intercepts_[0],
                      scaler_mean=self.scaler_mean_, scaler_scale=self.scaler_scale_,
                      rng=self._rng.get_state()[1], layer_rng=self.lstm_._rng.get_state()[1])
        optimizer = getattr(self, "_optimizer", None)
        if optimizer is not None:
            scalars, state = optimizer.get_state()
            values["optimizer"] = dict(solver=optimizer.solver, **scalars)
            for name, parts in state.items():
                arrays.update({f"optimizer:{name}:{i}": a for i, a in enumerate(parts)})
        if hasattr(self, "feature_names_in_"):
            values["feature_names"] = len(self.feature_names_in_)
            arrays["feature_names"] = np.asarray(self.feature_names_in_, dtype=str)
        return values, arrays

    @classmethod
    def _state_arrays(cls, values):
        """The arrays a saved model with these ``values`` holds: ``{name: (shape, dtype)}``.
        Raises a ValueError if ``values`` are not those of such a model."""
        arch = _checked_architecture(values)
        dtype, n_features = np.dtype(arch["dtype"]), arch["n_features"]
        D = 2 if arch["bidirectional"] else 1
        n_in = D * (arch["proj_size"] or arch["hidden_size"])
        params = {"lstm:" + k: (shape, dtype) for k, shape in param_shapes(
            n_features, arch["hidden_size"], arch["num_layers"], True, arch["bidirectional"],
            arch["proj_size"]).items()}
        spec = dict(params, coef=((n_in, arch["n_outputs"]), dtype),
                    intercept=((arch["n_outputs"],), dtype), scaler_mean=((n_features,), dtype),
                    scaler_scale=((n_features,), dtype), rng=((624,), np.dtype(np.uint32)),
                    layer_rng=((624,), np.dtype(np.uint32)))
        optimizer = values.get("optimizer")
        if optimizer is not None:
            if not isinstance(optimizer, dict) or optimizer.get("solver") not in ("adam", "sgd"):
                raise ValueError(f"unknown optimiser {optimizer!r}")
            shapes = [shape for shape, _ in params.values()] + [
                spec["coef"][0], spec["intercept"][0]]
            for name in ("m", "v") if optimizer["solver"] == "adam" else ("velocity",):
                spec.update({f"optimizer:{name}:{i}": (shape, dtype)
                             for i, shape in enumerate(shapes)})
        if "feature_names" in values:
            spec["feature_names"] = ((_count(values["feature_names"], "feature_names"),), "U")
        return spec

    def _set_state(self, values, arrays):
        """Restore what ``_get_state`` returned (checked by ``_state_arrays`` for shapes and
        dtypes); a ValueError if a value is out of its range."""
        arch = _checked_architecture(values)
        for name, array in arrays.items():
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise ValueError(f"{name} contains NaN or infinity")
        fitted = values.get("fitted")
        if not isinstance(fitted, dict) or set(fitted) != set(self._FITTED_VALUES):
            raise ValueError(f"the fitted values must be {sorted(self._FITTED_VALUES)}")
        _check_fitted_values(fitted)
        self._architecture = arch
        self.lstm_ = LSTM(arch["n_features"], arch["hidden_size"], num_layers=arch["num_layers"],
                          bidirectional=arch["bidirectional"], dropout=self.dropout,
                          proj_size=arch["proj_size"], batch_first=True,
                          dtype=np.dtype(arch["dtype"]).type, random_state=0)
        self.lstm_.load_state_dict({k.split(":", 1)[1]: v for k, v in arrays.items()
                                    if k.startswith("lstm:")})
        self.coefs_, self.intercepts_ = [arrays["coef"]], [arrays["intercept"]]
        self.scaler_mean_, self.scaler_scale_ = arrays["scaler_mean"], arrays["scaler_scale"]
        if np.any(self.scaler_scale_ <= 0):
            raise ValueError("scaler_scale must be positive")
        for name, value in fitted.items():
            setattr(self, name, value)
        self._rng = _rng_from(values.get("rng"), arrays["rng"])
        self.lstm_._rng = _rng_from(values.get("layer_rng"), arrays["layer_rng"])
        if "optimizer" in values:
            scalars = {k: v for k, v in values["optimizer"].items() if k != "solver"}
            names = ("m", "v") if values["optimizer"]["solver"] == "adam" else ("velocity",)
            n = len(self._parameters())
            state = {name: [arrays[f"optimizer:{name}:{i}"] for i in range(n)] for name in names}
            self._optimizer = make_optimizer(values["optimizer"]["solver"], self._parameters(),
                                             self._optimizer_settings(), (scalars, state))
        if "feature_names" in arrays:
            self.feature_names_in_ = arrays["feature_names"].astype(object)


# Parameters that fix the fitted model's shape: a continued fit (warm_start, partial_fit)
# cannot change them.
_SHAPE_PARAMS = ("hidden_size", "num_layers", "bidirectional", "proj_size", "dtype",
                 "standardize")


def _param_value(name, value):
    """A shape parameter as the architecture records it (dtype by its name)."""
    return np.dtype(value).name if name == "dtype" else value


class _Checkpoint:
    """A copy of an estimator's fitted state (every attribute but its parameters), to put back
    when a fit stops early."""

    def __init__(self, estimator):
        self.save(estimator)

    def save(self, estimator):
        params = estimator.get_params(deep=False)
        self._state = copy.deepcopy({k: v for k, v in vars(estimator).items()
                                     if k not in params})

    def restore(self, estimator):
        params = estimator.get_params(deep=False)
        for name in [k for k in vars(estimator) if k not in params]:
            delattr(estimator, name)
        for name, value in self._state.items():
            setattr(estimator, name, value)


def _jsonable(value):
    """NumPy scalars and lists of them as Python values (non-finite floats stay: Python's json
    writes and reads them as NaN and Infinity)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _rng_values(rng):
    """A RandomState's state besides its key array: position and the cached Gaussian."""
    _, _, pos, has_gauss, cached = rng.get_state()
    return [int(pos), int(has_gauss), float(cached)]


def _rng_from(values, key):
    if (not isinstance(values, list) or len(values) != 3 or not isinstance(values[0], int)
            or not 0 <= values[0] <= 624 or values[1] not in (0, 1)
            or not isinstance(values[2], (int, float))):
        raise ValueError(f"a random generator's state must be [pos, has_gauss, cached], got "
                         f"{values!r}")
    rng = np.random.RandomState()
    rng.set_state(("MT19937", key, values[0], values[1], float(values[2])))
    return rng


def _count(value, name, low=0):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _checked_architecture(values):
    """The model shape of saved ``values``, checked."""
    arch = values.get("architecture") if isinstance(values, dict) else None
    want = set(_SHAPE_PARAMS) | {"n_features", "n_outputs"}
    if not isinstance(arch, dict) or set(arch) != want:
        raise ValueError(f"the architecture must give {sorted(want)}")
    for name in ("hidden_size", "num_layers", "n_features", "n_outputs"):
        _count(arch[name], name, 1)
    _count(arch["proj_size"], "proj_size")
    if arch["proj_size"] >= arch["hidden_size"]:
        raise ValueError("proj_size must be smaller than hidden_size")
    if not isinstance(arch["bidirectional"], bool) or not isinstance(arch["standardize"], bool):
        raise ValueError("bidirectional and standardize must be true or false")
    if arch["dtype"] not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {arch['dtype']!r}")
    return arch


def _check_fitted_values(fitted):
    for name in ("n_features_in_", "n_iter_", "t_", "_no_improvement_count"):
        _count(fitted[name], name)
    numbers_ = [fitted["loss_"], fitted["best_loss_"], fitted["best_validation_score_"]]
    for name in ("loss_curve_", "validation_scores_"):
        value = fitted[name]
        if value is not None and not isinstance(value, list):
            raise ValueError(f"{name} must be a list")
        numbers_ += value or []
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
               for v in numbers_):
        raise ValueError("losses and scores must be numbers")
    if fitted["_input_kind"] not in ("sequences", "series"):
        raise ValueError(f"unknown input kind {fitted['_input_kind']!r}")


class LSTMClassifier(ClassifierMixin, _BaseLSTMEstimator):
    __doc__ = ("""Sequence classifier: an LSTM whose last hidden state feeds a softmax layer.

    Trained on the cross-entropy by mini-batch Adam or SGD with backpropagation through time in
    the Cython engine.
""" + _PARAMS_DOC + _ATTRS_DOC + """    classes_ : ndarray of shape (n_classes,)
        The class labels.

    Examples
    --------
    >>> import numpy as np
    >>> from lstm_fast import LSTMClassifier
    >>> X = np.random.default_rng(0).standard_normal((40, 10, 2))   # 40 sequences of 10 steps
    >>> y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    >>> clf = LSTMClassifier(hidden_size=16, max_iter=50, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).shape
    (3,)
""")

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X``, ``y``; ``classes`` (every label) is required on the first call.

        The parameters are validated at every call and the optimiser's settings
        (``learning_rate_init``, ``momentum``, ``beta_1``, ``beta_2``, ``epsilon``) follow them;
        another ``solver`` starts a new optimiser. If the call raises, the estimator is as
        before it.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, classes=classes)

    def _check_targets(self, y, first, incremental, classes):
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if incremental and not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self.classes_ = unique_labels(classes)
        elif first and not incremental:
            self.classes_ = unique_labels(y)
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as on the first call to "
                             f"partial_fit, {self.classes_!r}")
        unknown = np.setdiff1d(unique_labels(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels {unknown.tolist()} that are not in classes_ "
                             f"{self.classes_.tolist()}")
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the "
                             f"data, but the data contains only one class: {self.classes_[0]!r}")
        return np.searchsorted(self.classes_, y)

    def _loss_and_gradient(self, logits, targets):
        """Mean softmax cross-entropy and its gradient w.r.t. the logits."""
        log_p = logits - logits.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        n = len(targets)
        loss = -float(log_p[np.arange(n), targets].mean())
        d_logits = np.exp(log_p)
        d_logits[np.arange(n), targets] -= 1
        return loss, (d_logits / n).astype(logits.dtype)

    def _score_encoded(self, data, targets):
        return float(np.mean(self._decision_standardized(data).argmax(axis=1) == targets))

    def _get_state(self):
        values, arrays = super()._get_state()
        if self.classes_.dtype.kind not in "biufU":
            raise ValueError(f"save supports class labels that are numbers or strings, got "
                             f"dtype {self.classes_.dtype}; use pickle or joblib for other labels")
        values["classes_dtype"] = self.classes_.dtype.str
        arrays["classes"] = self.classes_
        return values, arrays

    @classmethod
    def _state_arrays(cls, values):
        spec = super()._state_arrays(values)
        dtype = values.get("classes_dtype")
        if not isinstance(dtype, str) or np.dtype(dtype).kind not in "biufU":
            raise ValueError(f"class labels must be numbers or strings, got {dtype!r}")
        spec["classes"] = ((values["architecture"]["n_outputs"],), np.dtype(dtype))
        return spec

    def _set_state(self, values, arrays):
        super()._set_state(values, arrays)
        classes = arrays["classes"]
        if len(classes) < 2 or not np.all(classes[1:] > classes[:-1]):
            raise ValueError("classes must be at least 2 labels in increasing order")
        self.classes_ = classes

    def predict(self, X):
        """Most probable class of each sequence, shape (n_samples,)."""
        best = self._decision(X).argmax(axis=1)
        return self.classes_[best]

    def predict_log_proba(self, X):
        """Log-probability of each class, shape (n_samples, n_classes)."""
        z = self._decision(X)
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict_proba(self, X):
        """Probability of each class, shape (n_samples, n_classes)."""
        return np.exp(self.predict_log_proba(X))


class LSTMRegressor(RegressorMixin, _BaseLSTMEstimator):
    __doc__ = ("""Sequence regressor: an LSTM whose last hidden state feeds a linear layer.

    Trained on the squared error by mini-batch Adam or SGD with backpropagation through time in
    the Cython engine.
""" + _PARAMS_DOC + _ATTRS_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from lstm_fast import LSTMRegressor
    >>> X = np.random.default_rng(0).standard_normal((40, 10, 2))
    >>> y = X[:, -3:, 0].sum(axis=1)
    >>> reg = LSTMRegressor(hidden_size=16, max_iter=50, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
""")

    _FITTED_VALUES = _BaseLSTMEstimator._FITTED_VALUES + ("_y_1d",)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def partial_fit(self, X, y):
        """One epoch over ``X``, ``y``.

        The parameters are validated at every call and the optimiser's settings follow them
        (see ``LSTMClassifier.partial_fit``). If the call raises, the estimator is as before it.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True)

    def _check_targets(self, y, first, incremental, classes):
        _refuse_times(np.asarray(y), "y")
        y = check_array(y, ensure_2d=False, dtype=check_dtype(self.dtype), input_name="y")
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if first:
            self._y_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        if not first and y2.shape[1] != self.coefs_[0].shape[1]:
            raise ValueError(f"y has {y2.shape[1]} outputs, but the model was fit with "
                             f"{self.coefs_[0].shape[1]}")
        return y2

    def _loss_and_gradient(self, predictions, targets):
        """Half the mean squared error and its gradient w.r.t. the predictions."""
        diff = predictions - targets
        return 0.5 * float(np.mean(diff * diff)), diff / diff.size

    def _score_encoded(self, data, targets):
        return float(r2_score(targets, self._decision_standardized(data)))

    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_outputs) like ``y`` in fit."""
        out = self._decision(X)
        return out[:, 0] if self._y_1d else out
