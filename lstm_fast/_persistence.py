"""Saving and loading fitted estimators without pickle: arrays in .npz, the rest as JSON.

Loading never executes code from the file (``np.load(..., allow_pickle=False)`` and ``json``), so a
model file from elsewhere is as safe to open as a data file.
"""

import json
import zipfile

import numpy as np

__all__ = ["save", "load"]

FORMAT = "lstm_fast.estimator"
FORMAT_VERSION = 1

_FITTED_SCALARS = ["n_features_in_", "n_iter_", "t_", "loss_", "best_loss_", "loss_curve_",
                   "validation_scores_", "best_validation_score_", "_input_kind", "_y_1d"]


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _from_json(value):
    if value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def save(estimator, path):
    """Write a fitted LSTMClassifier or LSTMRegressor to ``path`` (an .npz file)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    params = estimator.get_params()
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None
    meta = dict(format=FORMAT, version=FORMAT_VERSION, estimator=type(estimator).__name__,
                params={k: _jsonable(v) for k, v in params.items()},
                fitted={k: _jsonable(getattr(estimator, k)) for k in _FITTED_SCALARS
                        if hasattr(estimator, k)})
    arrays = {"lstm:" + k: v for k, v in estimator.lstm_.state_dict().items()}
    arrays.update(coef=estimator.coefs_[0], intercept=estimator.intercepts_[0],
                  scaler_mean=estimator.scaler_mean_, scaler_scale=estimator.scaler_scale_)
    if hasattr(estimator, "classes_"):
        classes = estimator.classes_
        if classes.dtype.kind not in "biufU":
            raise ValueError(f"save supports class labels that are numbers or strings, got "
                             f"dtype {classes.dtype}; use pickle or joblib for other labels")
        arrays["classes"] = classes
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load(path):
    """Read a model written by ``save``.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If ``path`` is not an lstm_fast model file, is damaged, or has an unknown format version.
    """
    from ._estimators import LSTMClassifier, LSTMRegressor

    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path!r} is not a readable lstm_fast model file: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not an lstm_fast model file")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has model format version {meta.get('version')!r}; this "
                         f"lstm_fast reads version {FORMAT_VERSION}")
    classes = {"LSTMClassifier": LSTMClassifier, "LSTMRegressor": LSTMRegressor}
    if meta.get("estimator") not in classes:
        raise ValueError(f"{path!r} holds an unknown estimator {meta.get('estimator')!r}")
    try:
        estimator = classes[meta["estimator"]](**meta["params"])
        for k, v in meta["fitted"].items():
            setattr(estimator, k, _from_json(v))
        estimator.coefs_ = [arrays.pop("coef")]
        estimator.intercepts_ = [arrays.pop("intercept")]
        estimator.scaler_mean_ = arrays.pop("scaler_mean")
        estimator.scaler_scale_ = arrays.pop("scaler_scale")
        if "classes" in arrays:
            estimator.classes_ = arrays.pop("classes")
        state = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("lstm:")}
        from ._layer import LSTM
        p = estimator.get_params()
        estimator.lstm_ = LSTM(estimator.scaler_mean_.shape[0], p["hidden_size"],
                               num_layers=p["num_layers"], bidirectional=p["bidirectional"],
                               dropout=p["dropout"], proj_size=p["proj_size"], batch_first=True,
                               dtype=np.dtype(p["dtype"]).type)
        estimator.lstm_.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path!r} is a damaged lstm_fast model file: {exc}") from exc
    return estimator
