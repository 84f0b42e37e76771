"""LSTMRegressor: an LSTM whose last hidden state feeds a linear layer."""

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_array

from .._checks import check_dtype
from ._base import BaseLSTMEstimator, _common_params, _weighted_mean_std
from ._dask import dask_aware
from ._docs import ATTRS_DOC, NOTES_DOC, PARAMS_DOC, REGRESSOR_PARAMS_DOC
from ._sequences import refuse_times
from ._training import loss_shares

__all__ = ["LSTMRegressor"]


class LSTMRegressor(RegressorMixin, BaseLSTMEstimator):
    __doc__ = ("""Sequence regressor: an LSTM whose last hidden state feeds a linear layer.

    Trained on the squared error by mini-batch Adam or SGD with backpropagation through time in
    the Cython engine.
""" + PARAMS_DOC + REGRESSOR_PARAMS_DOC + ATTRS_DOC + """    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        The targets' standardisation (zeros and ones when ``normalize_y=False``).
""" + NOTES_DOC + """
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

    _FITTED_VALUES = BaseLSTMEstimator._FITTED_VALUES + ("_y_1d",)
    _parameter_constraints = dict(BaseLSTMEstimator._parameter_constraints,
                                  normalize_y=["boolean"])

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0,
                 proj_size=0, solver="adam", learning_rate_init=1e-3, batch_size=32, max_iter=200,
                 alpha=0.0, clip_grad_norm=5.0, shuffle=True, tol=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, momentum=0.9, random_state=None, verbose=0, warm_start=False,
                 dtype="float32", n_threads=None, standardize=True, cell="lstm",
                 forget_bias=1.0, recurrent_init="orthogonal", predict_precision=None,
                 fit_precision=None, normalize_y=True):
        super().__init__(**_common_params(locals()))
        self.normalize_y = normalize_y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``X``, ``y`` (``sample_weight`` as in ``fit``).

        The parameters are validated at every call and the optimiser's settings follow them
        (see ``LSTMClassifier.partial_fit``). If the call raises, the estimator is as before it.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _check_targets(self, y, first, incremental, classes):
        refuse_times(np.asarray(y), "y")
        y = check_array(y, ensure_2d=False, dtype=check_dtype(self.dtype), input_name="y")
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        y2 = y.reshape(len(y), -1)
        if first:
            self._y_1d = y.ndim == 1
        elif y2.shape[1] != self.coefs_[0].shape[1]:
            raise ValueError(f"y has {y2.shape[1]} outputs, but the model was fit with "
                             f"{self.coefs_[0].shape[1]}")
        elif self.normalize_y != self._y_normalized:
            raise ValueError(f"a continued fit cannot change normalize_y from "
                             f"{self._y_normalized} to {self.normalize_y}: fit with "
                             "warm_start=False (or a new estimator) instead")
        return y2

    def _n_outputs(self, targets):
        return targets.shape[-1]

    def _initialize(self, data, targets, weights):
        super()._initialize(data, targets, weights)
        self._y_normalized = self.normalize_y
        k = targets.shape[-1]
        if self.normalize_y:
            mean, std = _weighted_mean_std(*self._head.rows(targets, weights, data))
            std[std < 10 * np.finfo(targets.dtype).eps * np.maximum(1.0, np.abs(mean))] = 1.0
        else:
            mean, std = np.zeros(k), np.ones(k)
        self.target_mean_, self.target_scale_ = mean, std

    def _encoded(self, targets):
        """The targets as the model learns them: standardised (see normalize_y)."""
        return ((targets - self.target_mean_) / self.target_scale_).astype(targets.dtype)

    def _loss_and_gradient(self, predictions, targets, weights=None):
        """Half the squared error, averaged over outputs and (with the samples' ``weights``,
        equal if None) over samples, and its gradient w.r.t. the predictions."""
        diff = predictions - targets
        n, k = diff.shape
        share = loss_shares(weights, n)
        loss = 0.5 * float(share @ (diff * diff).mean(axis=1))
        return loss, (diff * (share[:, None] / k)).astype(predictions.dtype)

    def _score_encoded(self, data, targets, weights):
        """R2 (weighted) over the rows: sequences, or valid steps."""
        row_targets, row_weights = self._head.rows(targets, weights, data)
        return float(r2_score(row_targets, self._decision_standardized(data),
                              sample_weight=row_weights))

    def _get_state(self):
        values, arrays = super()._get_state()
        values["normalized_y"] = self._y_normalized
        arrays.update(target_mean=self.target_mean_, target_scale=self.target_scale_)
        return values, arrays

    @classmethod
    def _state_arrays(cls, values):
        spec = super()._state_arrays(values)
        if "normalized_y" in values:  # (files from before normalize_y have no target scaler)
            if not isinstance(values["normalized_y"], bool):
                raise ValueError("normalized_y must be true or false")
            n_outputs = values["architecture"]["n_outputs"]
            spec.update(target_mean=((n_outputs,), np.dtype(np.float64)),
                        target_scale=((n_outputs,), np.dtype(np.float64)))
        return spec

    def _set_state(self, values, arrays):
        super()._set_state(values, arrays)
        n_outputs = self.coefs_[0].shape[1]
        self.target_mean_ = arrays.get("target_mean", np.zeros(n_outputs))
        self.target_scale_ = arrays.get("target_scale", np.ones(n_outputs))
        if np.any(self.target_scale_ <= 0):
            raise ValueError("target_scale must be positive")
        self._y_normalized = values.get("normalized_y", False)
        if self._y_normalized != self.normalize_y:
            raise ValueError(f"normalize_y={self.normalize_y} but the model was trained with "
                             f"normalize_y={self._y_normalized}")

    @classmethod
    def _params_from_file(cls, params):
        # (files from before normalize_y trained on raw targets)
        return dict(super()._params_from_file(params), normalize_y=params.get("normalize_y",
                                                                               False))

    @dask_aware
    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_outputs) like ``y`` in fit."""
        return self._predictions(self._decision(X))

    def _predictions(self, outputs):
        """Targets of output-layer rows, in the units of y."""
        values = outputs * self.target_scale_ + self.target_mean_
        return values[:, 0] if self._y_1d else values

