"""LSTMClassifier: an LSTM whose last hidden state feeds a softmax layer."""

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils import column_or_1d
from sklearn.utils.multiclass import check_classification_targets, unique_labels

from ._base import BaseLSTMEstimator
from ._docs import ATTRS_DOC, PARAMS_DOC

__all__ = ["LSTMClassifier"]


class LSTMClassifier(ClassifierMixin, BaseLSTMEstimator):
    __doc__ = ("""Sequence classifier: an LSTM whose last hidden state feeds a softmax layer.

    Trained on the cross-entropy by mini-batch Adam or SGD with backpropagation through time in
    the Cython engine.
""" + PARAMS_DOC + ATTRS_DOC + """    classes_ : ndarray of shape (n_classes,)
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
