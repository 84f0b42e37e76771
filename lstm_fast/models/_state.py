"""The estimators' fitted state: what save() writes and load() checks and restores
(``_get_state``, ``_state_arrays``, ``_set_state``), and the checkpoint a fit puts back when it
stops early."""

import copy

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..nn import GRU, LSTM, RNN, param_shapes
from ..optim import make_optimizer

__all__ = ["StateMixin", "Checkpoint", "SHAPE_PARAMS", "make_layer", "param_value"]


# Parameters that fix the fitted model's shape: a continued fit (warm_start, partial_fit)
# cannot change them.
SHAPE_PARAMS = ("cell", "hidden_size", "num_layers", "bidirectional", "proj_size", "dtype",
                "standardize")

# The estimators' cells: their layer and gate blocks.
_CELLS = {"lstm": (LSTM, 4), "gru": (GRU, 3), "rnn": (RNN, 1)}


def make_layer(cell, input_size, hidden_size, proj_size=0, forget_bias=1.0, **kwargs):
    """The recurrent layer of an estimator's ``cell`` ("lstm", "gru" or "rnn": tanh)."""
    layer, _ = _CELLS[cell]
    if cell == "lstm":
        kwargs.update(proj_size=proj_size, forget_bias=forget_bias)
    elif proj_size or forget_bias != 1.0:
        name, value = ("proj_size", proj_size) if proj_size else ("forget_bias", forget_bias)
        raise ValueError(f"{name}={value} needs cell='lstm' (only the LSTM has a projection "
                         f"and a forget gate), got cell={cell!r}")
    return layer(input_size, hidden_size, **kwargs)


def param_value(name, value):
    """A shape parameter as the architecture records it (dtype by its name)."""
    return np.dtype(value).name if name == "dtype" else value


class Checkpoint:
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


class StateMixin:
    """The fitted state of the recurrent estimators, for save and load (see BaseLSTMEstimator)."""

    # Fitted values (not arrays) that save() keeps: the training progress and input kind.
    _FITTED_VALUES = ("n_features_in_", "n_iter_", "t_", "loss_", "best_loss_", "loss_curve_",
                      "validation_scores_", "best_validation_score_", "_no_improvement_count",
                      "_input_kind")

    def _file_params(self):
        """The parameters as a model file keeps them (JSON values): a RandomState instance as
        None, dtype by its name."""
        params = {k: v.item() if isinstance(v, np.generic) else v
                  for k, v in self.get_params().items()}
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None
        params["dtype"] = np.dtype(params["dtype"]).name
        return params

    @classmethod
    def _params_from_file(cls, params):
        """The parameters of a model file, for the constructor (see _file_params)."""
        return params

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
            arch["proj_size"], _CELLS[arch["cell"]][1]).items()}
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
        self.lstm_ = make_layer(arch["cell"], arch["n_features"], arch["hidden_size"],
                                proj_size=arch["proj_size"], num_layers=arch["num_layers"],
                                bidirectional=arch["bidirectional"], dropout=self.dropout,
                                batch_first=True, dtype=np.dtype(arch["dtype"]).type,
                                random_state=0)
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
    want = set(SHAPE_PARAMS) | {"n_features", "n_outputs"}
    if isinstance(arch, dict):
        arch = dict({"cell": "lstm"}, **arch)  # files from before the cells had LSTMs
    if not isinstance(arch, dict) or set(arch) != want:
        raise ValueError(f"the architecture must give {sorted(want)}")
    if arch["cell"] not in _CELLS:
        raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {arch['cell']!r}")
    if arch["cell"] != "lstm" and arch["proj_size"] != 0:
        raise ValueError(f"proj_size must be 0 for cell {arch['cell']!r}")
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
