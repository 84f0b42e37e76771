"""Input checks shared by the layer and the estimators: clear exceptions instead of crashes."""

import numbers
import os

import numpy as np

from ._lstm import all_finite

__all__ = ["as_float_array", "check_dtype", "check_int", "check_finite", "check_memory",
           "LARGE_BYTES"]

# Allocations from this size up are weighed against the free memory first (check_memory);
# below it, reading how much is free would cost more than a small call.
LARGE_BYTES = 1 << 28


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
    """Convert ``a`` (any float array-like, or an object with ``__array__``) to ``dtype``, or
    only to an ndarray of its own float dtype if ``dtype`` is None.

    Integer, boolean, complex and object arrays are refused with a TypeError, and so are ragged
    nested sequences (with a ValueError).
    """
    if type(a) is np.ndarray and (a.dtype == dtype or (dtype is None and a.dtype.kind == "f")):
        return a
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} must be an array of floating-point values: {exc}") from None
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must hold floating-point values, got dtype {arr.dtype}")
    return arr if dtype is None else arr.astype(dtype, copy=False)


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


def available_memory():
    """Bytes this process may still allocate (Linux: MemAvailable, capped by the cgroup's
    limit), or None where that is not known."""
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f
                        if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                used = int(f.read())
            with open("/sys/fs/cgroup/memory.stat") as f:  # page cache it may drop is free
                reclaimable = next((int(line.split()[1]) for line in f
                                    if line.startswith("inactive_file ")), 0)
            free = min(free, int(limit) - used + reclaimable)
    except (OSError, ValueError):
        pass
    return free


def check_memory(nbytes, what):
    """Raise a MemoryError, before anything is allocated, if ``nbytes`` exceed the memory this
    process may still allocate; ``what`` says what needs them."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise MemoryError(f"{what} would need {nbytes / 2**30:.3g} GiB, more than the "
                          f"{max(free, 0) / 2**30:.3g} GiB of memory available")
