"""LSTMRegressor: an LSTM whose last hidden state feeds a linear layer."""

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_array

from .._checks import check_dtype
from ._base import BaseLSTMEstimator
from ._docs import ATTRS_DOC, PARAMS_DOC
from ._sequences import refuse_times

__all__ = ["LSTMRegressor"]


class LSTMRegressor(RegressorMixin, BaseLSTMEstimator):
    __doc__ = ("""Sequence regressor: an LSTM whose last hidden state feeds a linear layer.

    Trained on the squared error by mini-batch Adam or SGD with backpropagation through time in
    the Cython engine.
""" + PARAMS_DOC + ATTRS_DOC + """
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
        refuse_times(np.asarray(y), "y")
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
