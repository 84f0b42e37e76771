"""LSTMForecaster: the next values of one or many series, from windows of their past.

The series become training windows inside: ``window`` steps of each series (and its
covariates) as input, the ``horizon`` steps after them as targets, every window of every series
in one global model (an :class:`LSTMRegressor` with a direct multi-output head). Inputs and
targets are taken relative to the window's last value and scaled by the series' spread (the
standard deviation of its steps), so the model learns the shape of what comes next rather than
the level: a trending series forecasts beyond the levels it was trained on. ``scaling="series"``
also shows the model the level (standardised over the series), for stationary series whose
level tells where they go next. Forecasts longer than ``horizon`` (or ``recursive=True``, one
step at a time) feed predicted values back into the window.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ._sequences import naming
from .regressor import LSTMRegressor

__all__ = ["LSTMForecaster"]

# The inner regressor's parameters that the forecaster exposes (same meaning, same defaults).
_REGRESSOR_PARAMS = ("hidden_size", "num_layers", "cell", "dropout", "solver",
                     "learning_rate_init", "batch_size", "max_iter", "alpha", "clip_grad_norm",
                     "tol", "early_stopping", "validation_fraction", "n_iter_no_change",
                     "random_state", "verbose", "dtype", "n_threads", "predict_precision",
                     "fit_precision")


class LSTMForecaster(BaseEstimator):
    """Forecast one or many series with a recurrent network on windows of their past.

    Parameters
    ----------
    window : int, default=24
        Steps of history the model reads (the lookback); cover at least one season.
    horizon : int, default=12
        Steps the output layer predicts at once (direct multi-output forecasting). Longer
        forecasts repeat it, the predicted values fed back into the window.
    recursive : bool, default=False
        Predict one step at a time instead (a one-step model, its forecasts fed back).
    scaling : {"window", "series"}, default="window"
        What the model reads of each window: its values relative to the last one ("window":
        trends and levels beyond the training data forecast alike), or those and the values
        standardised over the series ("series": for stationary series whose level matters,
        such as the sunspot cycle).
    hidden_size, num_layers, cell, dropout, solver, learning_rate_init, batch_size, max_iter,
    alpha, clip_grad_norm, tol, early_stopping, validation_fraction, n_iter_no_change,
    random_state, verbose, dtype, n_threads, predict_precision, fit_precision
        As for :class:`LSTMRegressor` (``batch_size`` and ``max_iter`` count windows and
        epochs over them); defaults differ only in ``max_iter`` (100) and
        ``learning_rate_init`` (3e-3), the recipe measured on the series of the README.

    Attributes
    ----------
    regressor_ : LSTMRegressor
        The fitted model of windows to the following values.
    n_series_ : int
        Series seen by fit.
    n_covariates_ : int
        Covariates per step (columns of X), 0 without X.

    Notes
    -----
    A fitted forecaster is kept with pickle or joblib (``lstm_fast.save`` writes the
    classifiers and regressors).

    Examples
    --------
    >>> import numpy as np
    >>> from lstm_fast import LSTMForecaster
    >>> t = np.arange(200)
    >>> y = np.sin(2 * np.pi * t / 12) + 0.01 * t
    >>> f = LSTMForecaster(window=24, horizon=12, max_iter=30, random_state=0).fit(y)
    >>> f.predict(12).shape
    (12,)
    """

    _parameter_constraints = dict(
        {k: v for k, v in LSTMRegressor._parameter_constraints.items() if k in _REGRESSOR_PARAMS},
        window=[Interval(numbers.Integral, 1, None, closed="left")],
        horizon=[Interval(numbers.Integral, 1, None, closed="left")],
        recursive=["boolean"], scaling=[StrOptions({"window", "series"})],
        cell=[StrOptions({"lstm", "gru", "rnn"})])

    def __init__(self, window=24, horizon=12, recursive=False, scaling="window", hidden_size=64,
                 num_layers=1, cell="lstm", dropout=0.0, solver="adam", learning_rate_init=3e-3,
                 batch_size=32, max_iter=100, alpha=0.0, clip_grad_norm=5.0, tol=None,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 random_state=None, verbose=0, dtype="float32", n_threads=None,
                 predict_precision=None, fit_precision=None):
        self.window = window
        self.horizon = horizon
        self.recursive = recursive
        self.scaling = scaling
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.dropout = dropout
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.alpha = alpha
        self.clip_grad_norm = clip_grad_norm
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype
        self.n_threads = n_threads
        self.predict_precision = predict_precision
        self.fit_precision = fit_precision

    def fit(self, y, X=None):
        """Fit the model to the windows of the series ``y``.

        Parameters
        ----------
        y : array of shape (T,) (one series), (T, n_series), or list of 1-D arrays (series of
            different lengths)
        X : array of shape (T, n_covariates) (for 1-D y, or shared by every series of 2-D y),
            (T, n_series, n_covariates), or a list of (T_i, n_covariates) arrays; optional
            Covariates aligned with y: the window reads them beside the series.

        Returns
        -------
        self
        """
        self._validate_params()
        with naming("y"):
            series, kind = _check_series(y)
        covariates = _check_covariates(X, series)
        steps = 1 if self.recursive else self.horizon
        short = [i for i, s in enumerate(series) if len(s) < self.window + steps]
        if short:
            raise ValueError(f"series {short[0]} has {len(series[short[0]])} values, fewer than "
                             f"window + horizon = {self.window + steps}: shorten the window or "
                             "give longer series")
        windowing = _Windowing(self.window, steps, self.scaling, series, covariates)
        inputs, targets = zip(*(windowing.windows(s, c, k) for k, (s, c) in enumerate(
            zip(series, covariates or [None] * len(series)))))
        params = {k: getattr(self, k) for k in _REGRESSOR_PARAMS}
        regressor = LSTMRegressor(**params).fit(np.concatenate(inputs), np.concatenate(targets))
        # (the fitted state only once the fit succeeded)
        self.regressor_, self._windowing, self._kind = regressor, windowing, kind
        self.n_series_ = len(series)
        self.n_covariates_ = 0 if covariates is None else covariates[0].shape[1]
        self._last_values = [s[-self.window:].copy() for s in series]
        self._last_covariates = None if covariates is None else [
            c[-self.window:].copy() for c in covariates]
        return self

    def predict(self, horizon, X=None):
        """The next ``horizon`` values of every series after those fit saw.

        Parameters
        ----------
        horizon : int
        X : covariates of those steps, structured as in fit, with ``horizon`` steps
            Needed when the model has covariates and the forecast feeds predictions back
            (``horizon`` beyond the ``horizon`` parameter, or ``recursive=True``).

        Returns
        -------
        ndarray of shape (horizon,) for 1-D y, (horizon, n_series) for 2-D y, or a list of
        (horizon,) arrays for a list of series.
        """
        check_is_fitted(self)
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
            raise ValueError(f"horizon must be a positive int, got {horizon!r}")
        future = self._future_covariates(X, horizon)
        w = self._windowing
        values = [v.copy() for v in self._last_values]
        covs = None if self._last_covariates is None else [c.copy() for c in self._last_covariates]
        out = [[] for _ in values]
        done = 0
        self.regressor_.predict_precision = self.predict_precision  # (it may be set after fit)
        while done < horizon:
            windows = np.stack([w.inputs(v[-w.window:], None if covs is None else
                                         covs[k][-w.window:], k)
                                for k, v in enumerate(values)])
            block = self.regressor_.predict(windows).reshape(len(values), -1)
            take = min(w.steps, horizon - done)
            for k, v in enumerate(values):
                new = v[-1] + w.scale[k] * block[k, :take]
                out[k].append(new)
                values[k] = np.concatenate([v, new])
                if future is not None:
                    covs[k] = np.concatenate([covs[k], future[k][done:done + take]])
            done += take
        forecasts = [np.concatenate(o) for o in out]
        if self._kind == "1d":
            return forecasts[0]
        return np.stack(forecasts, axis=1) if self._kind == "2d" else forecasts

    def _future_covariates(self, X, horizon):
        """The covariates of the forecast steps, per series, or None; an error if the model
        needs them and X is None."""
        if self.n_covariates_ == 0:
            if X is not None:
                raise ValueError("X: the model was fit without covariates")
            return None
        if X is None:
            if horizon > self._windowing.steps:
                raise ValueError(f"X: a forecast of {horizon} steps feeds predictions back "
                                 f"into the window, which needs the covariates of the steps "
                                 f"forecast: give X with {horizon} steps")
            return None
        fake = [np.zeros(horizon)] * self.n_series_
        covs = _check_covariates(X, fake, self._kind)
        if covs[0].shape[1] != self.n_covariates_:
            raise ValueError(f"X has {covs[0].shape[1]} covariates, but fit saw "
                             f"{self.n_covariates_}")
        return covs


class _Windowing:
    """How a fitted forecaster cuts series into model inputs and targets: the window, the steps
    predicted at once, the scaling, and each series' (and the covariates') scales."""

    def __init__(self, window, steps, scaling, series, covariates):
        self.window, self.steps, self.scaling = window, steps, scaling
        self.scale = np.array([_spread(s) for s in series])
        self.means = np.array([s.mean() for s in series])
        if covariates is not None:
            stacked = np.concatenate(covariates)
            self.cov_mean, self.cov_scale = stacked.mean(axis=0), _nonzero(stacked.std(axis=0))

    def inputs(self, values, covariates, k):
        """One window's model input (window, 1 or 2 + n_covariates): the values relative to
        the window's last one, over the series' spread; with scaling="series" the values
        centred on the series' mean too; and the covariates, standardised."""
        columns = [(values - values[-1]) / self.scale[k]]
        if self.scaling == "series":
            columns.append((values - self.means[k]) / self.scale[k])
        x = np.column_stack(columns)
        if covariates is not None:
            x = np.column_stack([x, (covariates - self.cov_mean) / self.cov_scale])
        return x

    def windows(self, s, c, k):
        """Every (input, target) window of series k: targets are the next steps' values
        relative to the window's last one, over the series' spread."""
        w, h = self.window, self.steps
        starts = range(len(s) - w - h + 1)
        inputs = np.stack([self.inputs(s[i:i + w], None if c is None else c[i:i + w], k)
                           for i in starts])
        targets = np.stack([(s[i + w:i + w + h] - s[i + w - 1]) / self.scale[k]
                            for i in starts])
        return inputs, targets


def _check_series(y):
    """The series of y as a list of float64 1-D arrays, and how y was given ("1d", "2d",
    "list")."""
    if isinstance(y, (list, tuple)) and len(y) and all(np.ndim(s) == 1 for s in y) and not all(
            np.ndim(s) == 0 for s in y):
        series = [check_array(s, ensure_2d=False, dtype=np.float64, input_name=f"y[{i}]")
                  for i, s in enumerate(y)]
        return series, "list"
    y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
    if y.ndim == 1:
        return [y], "1d"
    return [y[:, j].copy() for j in range(y.shape[1])], "2d"


def _check_covariates(X, series, kind=None):
    """X as one (T_i, n_covariates) float64 array per series (None if X is None)."""
    if X is None:
        return None
    with naming("X"):
        if isinstance(X, (list, tuple)) and len(X) == len(series) and all(
                np.ndim(x) in (1, 2) and len(x) == len(s) for x, s in zip(X, series)):
            covs = [check_array(np.asarray(x).reshape(len(x), -1), dtype=np.float64,
                                input_name=f"X[{i}]") for i, x in enumerate(X)]
        else:
            X = check_array(X, ensure_2d=False, allow_nd=True, dtype=np.float64, input_name="X")
            X = X[:, None] if X.ndim == 1 else X
            if X.ndim == 2:
                covs = [X] * len(series)
            elif X.ndim == 3 and X.shape[1] == len(series):
                covs = [X[:, j] for j in range(len(series))]
            else:
                raise ValueError(f"X must be (T, n_covariates), (T, n_series, n_covariates) or "
                                 f"a list of (T_i, n_covariates), got shape {X.shape}")
        for i, (c, s) in enumerate(zip(covs, series)):
            if len(c) != len(s):
                raise ValueError(f"X has {len(c)} steps for series {i}, which has {len(s)}")
        if len({c.shape[1] for c in covs}) != 1:
            raise ValueError("every series needs the same covariates")
    return covs


def _spread(s):
    """A series' scale: the standard deviation of its steps (its values' if flat), never 0."""
    diffs = np.diff(s)
    spread = diffs.std() if len(diffs) > 1 else 0.0
    return spread if spread > 0 else _nonzero(np.array([s.std()]))[0]


def _nonzero(scale):
    scale = np.asarray(scale, dtype=np.float64).copy()
    scale[scale <= 0] = 1.0
    return scale
