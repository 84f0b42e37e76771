"""Input checks shared by the layer and the estimators: clear exceptions instead of crashes."""

import numbers

import numpy as np

from ._lstm import all_finite

__all__ = ["as_float_array", "check_dtype", "check_int", "check_finite"]


def check_dtype(dtype):
    """Return ``np.float32`` or ``np.float64`` for ``dtype``, or raise a ValueError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    return dt.type


def check_int(value, name, low, high=None):
    """Return ``value`` as an int in ``[low, high]``, or raise a TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def as_float_array(a, name, dtype):
    """Convert ``a`` (any float array-like, or an object with ``__array__``) to ``dtype``.

    Integer, boolean, complex and object arrays are refused with a TypeError.
    """
    if type(a) is np.ndarray and a.dtype == dtype:
        return a
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must hold floating-point values, got dtype {arr.dtype}")
    return arr.astype(dtype, copy=False)


def check_finite(arr, name):
    """Raise a ValueError if ``arr`` (a float32 or float64 array) holds NaN or infinity."""
    # One vectorised C pass over a contiguous array (no temporary); NumPy's test, a block at a
    # time so that its temporary stays small, for any other layout.
    if arr.flags.c_contiguous:
        finite = all_finite(arr)
    else:
        flat = arr.reshape(-1)
        finite = all(np.isfinite(flat[i:i + 65536]).all() for i in range(0, flat.size, 65536))
    if not finite:
        raise ValueError(f"{name} contains NaN or infinity")
