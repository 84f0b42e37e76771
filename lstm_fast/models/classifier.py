"""LSTMClassifier: an LSTM whose last hidden state feeds a softmax layer."""

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, unique_labels

from ._base import BaseLSTMEstimator, _common_params
from ._dask import dask_aware
from ._docs import ATTRS_DOC, CLASSIFIER_PARAMS_DOC, NOTES_DOC, PARAMS_DOC
from ._sequences import naming
from ._training import loss_shares

__all__ = ["LSTMClassifier"]


def _plain(label):
    """A class label as a JSON value (NumPy scalars as Python ones)."""
    return label.item() if isinstance(label, np.generic) else label


class LSTMClassifier(ClassifierMixin, BaseLSTMEstimator):
    __doc__ = ("""Sequence classifier: an LSTM whose last hidden state feeds a softmax layer.

    Trained on the cross-entropy by mini-batch Adam or SGD with backpropagation through time in
    the Cython engine.
""" + PARAMS_DOC + CLASSIFIER_PARAMS_DOC + ATTRS_DOC + """    classes_ : ndarray of shape (n_classes,)
        The class labels.
""" + NOTES_DOC + """
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

    _parameter_constraints = dict(BaseLSTMEstimator._parameter_constraints,
                                  class_weight=[StrOptions({"balanced"}), dict, None])

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0,
                 proj_size=0, solver="adam", learning_rate_init=1e-3, batch_size=32, max_iter=200,
                 alpha=0.0, clip_grad_norm=5.0, shuffle=True, tol=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, momentum=0.9, random_state=None, verbose=0, warm_start=False,
                 dtype="float32", n_threads=None, standardize=True, cell="lstm",
                 forget_bias=1.0, recurrent_init="orthogonal", predict_precision=None,
                 fit_precision=None, class_weight=None):
        super().__init__(**_common_params(locals()))
        self.class_weight = class_weight

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``X``, ``y``; ``classes`` (every label) is required on the first call.

        ``sample_weight`` as in ``fit``; ``class_weight="balanced"`` is not supported here
        (it needs every label's count): pass a dict of weights instead.

        The parameters are validated at every call and the optimiser's settings
        (``learning_rate_init``, ``momentum``, ``beta_1``, ``beta_2``, ``epsilon``) follow them;
        another ``solver`` starts a new optimiser. If the call raises, the estimator is as
        before it.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

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

    def _n_outputs(self, targets):
        return len(self.classes_)

    def _encoded(self, targets):
        return targets

    def _prepare_class_weights(self, targets, incremental):
        """The weight of each class for this call (targets: indices into classes_)."""
        self._class_table = None
        if self.class_weight is None:
            return
        if self.class_weight == "balanced" and incremental:
            raise ValueError("class_weight='balanced' is not supported by partial_fit, which "
                             "sees the labels a batch at a time: compute the weights over all "
                             "the labels (sklearn.utils.class_weight.compute_class_weight) and "
                             "pass them as a dict")
        with naming("class_weight"):
            self._class_table = compute_class_weight(self.class_weight, classes=self.classes_,
                                                     y=self.classes_[targets])

    def _class_factor(self, targets):
        table = getattr(self, "_class_table", None)
        return 1.0 if table is None else table[targets]

    def _loss_and_gradient(self, logits, targets, weights=None):
        """Softmax cross-entropy averaged with the samples' ``weights`` (equal if None), and its
        gradient w.r.t. the logits."""
        log_p = logits - logits.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        n = len(targets)
        share = loss_shares(weights, n)
        loss = -float(share @ log_p[np.arange(n), targets])
        d_logits = np.exp(log_p)
        d_logits[np.arange(n), targets] -= 1
        return loss, (d_logits * share[:, None]).astype(logits.dtype)

    def _score_encoded(self, data, targets, weights):
        """Accuracy (weighted) over the rows: sequences, or valid steps."""
        row_targets, row_weights = self._head.rows(targets, weights, data)
        hits = self._decision_standardized(data).argmax(axis=1) == row_targets
        return float(np.average(hits, weights=row_weights * self._class_factor(row_targets)))

    def _file_params(self):
        params = super()._file_params()
        if isinstance(self.class_weight, dict):  # (JSON keys are strings: keep the labels)
            params["class_weight"] = {"pairs": [[_plain(k), float(w)]
                                                for k, w in self.class_weight.items()]}
        return params

    @classmethod
    def _params_from_file(cls, params):
        params = dict(params)
        weights = params.get("class_weight")
        if isinstance(weights, dict):
            pairs = weights.get("pairs")
            if not isinstance(pairs, list) or not all(
                    isinstance(p, list) and len(p) == 2 for p in pairs):
                raise ValueError("class_weight must be saved as [label, weight] pairs")
            params["class_weight"] = {label: weight for label, weight in pairs}
        return params

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

    @dask_aware
    def predict(self, X):
        """Most probable class of each sequence, shape (n_samples,)."""
        return self._predictions(self._decision(X))

    def _predictions(self, logits):
        """Labels of output-layer rows."""
        return self.classes_[logits.argmax(axis=1)]

    @dask_aware
    def predict_log_proba(self, X):
        """Log-probability of each class, shape (n_samples, n_classes)."""
        z = self._decision(X)
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    @dask_aware
    def predict_proba(self, X):
        """Probability of each class, shape (n_samples, n_classes)."""
        return np.exp(self.predict_log_proba(X))
