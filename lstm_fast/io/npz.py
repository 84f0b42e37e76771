"""Saving and loading fitted estimators without pickle: arrays in .npz, the rest as JSON.

The estimators say what their fitted state is (``_get_state``, ``_state_arrays``,
``_set_state``); this module owns the file: what it must hold, how it is read safely and how it
is written. Loading never executes code from the file and reads nothing it did not expect: the
JSON metadata first (size-capped), then exactly the arrays the estimator's state calls for, each
header checked for its shape and dtype before its data is read, so a pickled object, an
unexpected member or a wrong shape is an error before it costs anything. Members must be stored
uncompressed, as ``save`` writes them, so that nothing inflates beyond the file's own size, and
the memory the metadata's shapes call for is checked before it is allocated. A model file from
elsewhere is as safe to open as a data file.
"""

import json
import os
import zipfile

import numpy as np

from .._checks import check_memory

__all__ = ["save", "load"]

FORMAT = "lstm_fast.estimator"
FORMAT_VERSION = 2

# The metadata's size at most (it holds a loss curve: a few numbers an epoch).
_META_BYTES = 1 << 24


def save(estimator, file):
    """Write a fitted lstm_fast estimator to ``file``, a path or a binary file
    object; a path is written atomically (a new file, then renamed over the old one)."""
    from ..models import ESTIMATORS

    if type(estimator).__name__ not in ESTIMATORS:
        raise TypeError(f"save writes {', '.join(ESTIMATORS)}, not "
                        f"{type(estimator).__name__}: use pickle or joblib for it")
    values, arrays = estimator._get_state()
    meta = dict(format=FORMAT, version=FORMAT_VERSION, estimator=type(estimator).__name__,
                params=estimator._file_params(), state=values)
    arrays = dict(arrays, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    if hasattr(file, "write"):
        np.savez(file, **arrays)
    else:
        _write_atomically(os.fspath(file), lambda f: np.savez(f, **arrays))


def _write_atomically(path, write):
    """write(f) into a new file beside ``path``, flushed to disk, then renamed to ``path``: a
    crash or a full disk leaves the old file (or none) in place, never a part of the new one."""
    directory, name = os.path.split(os.path.abspath(path))
    while True:
        temporary = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.part")
        try:  # (mode 0o666 less the umask, as open() would create it)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def load(file):
    """Read a model written by ``save`` from a path or a binary file object.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``file``.
    ValueError
        If ``file`` is not an lstm_fast model file, is damaged or tampered with (anything
        missing, unexpected, misshapen, of the wrong type, or not finite), or has another
        format version.
    """
    from ..models import ESTIMATORS

    name = repr(file) if not hasattr(file, "read") else "the file"
    try:
        with zipfile.ZipFile(file) as archive:
            meta = _read_meta(archive)
            _check_meta(meta, name)
            cls = ESTIMATORS[meta["estimator"]]
            try:
                estimator = cls(**cls._params_from_file(meta["params"]))
                estimator._validate_params()
                spec = cls._state_arrays(meta["state"])
                arrays = _read_arrays(archive, spec)
                estimator._set_state(meta["state"], arrays)
            except (KeyError, TypeError, ValueError, MemoryError) as exc:
                raise ValueError(f"{name} is a damaged lstm_fast model file: "
                                 f"{type(exc).__name__}: {exc}") from None
    except FileNotFoundError:
        raise
    except (OSError, EOFError, RecursionError, NotImplementedError, RuntimeError,
            zipfile.BadZipFile, zipfile.LargeZipFile) as exc:  # (deep JSON; zip features)
        raise ValueError(f"{name} is not a readable lstm_fast model file: {exc}") from None
    return estimator


def _check_meta(meta, name):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{name} is not an lstm_fast model file")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{name} has model format version {meta.get('version')!r}; this "
                         f"lstm_fast reads version {FORMAT_VERSION}")
    from ..models import ESTIMATORS

    if meta.get("estimator") not in ESTIMATORS:
        raise ValueError(f"{name} holds an unknown estimator {meta.get('estimator')!r}")
    if not isinstance(meta.get("params"), dict) or not isinstance(meta.get("state"), dict):
        raise ValueError(f"{name} is a damaged lstm_fast model file: no params or state")


def _read_meta(archive):
    """The JSON metadata (member meta.npy, bytes), or a ValueError."""
    try:
        data = _read_member(archive, "meta", None, np.dtype(np.uint8), _META_BYTES)
        return json.loads(data.tobytes().decode("utf-8"))
    except (KeyError, ValueError, RecursionError) as exc:  # no member, bad header, bad JSON
        raise ValueError(f"not an lstm_fast model file (no readable metadata: {exc})") from None


def _read_arrays(archive, spec):
    """Exactly the arrays of ``spec`` ({name: (shape, dtype)}; a dtype "U" is any string
    dtype), each checked before its data is read."""
    members = {info.filename for info in archive.infolist()}
    want = {f"{name}.npy" for name in spec} | {"meta.npy"}
    if members != want:
        missing, extra = sorted(want - members), sorted(members - want)
        raise ValueError("; ".join([f"missing arrays {missing}"] * bool(missing)
                                   + [f"unexpected members {extra}"] * bool(extra)))
    numeric = sum(int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
                  for shape, dtype in spec.values() if dtype != "U")
    check_memory(numeric, "the model's arrays")
    return {name: _read_member(archive, name, shape, dtype)
            for name, (shape, dtype) in spec.items()}


def _read_member(archive, name, shape, dtype, max_bytes=None):
    """One .npy member, stored uncompressed: its header must give ``shape`` (any 1-D length if
    None, up to ``max_bytes``) and ``dtype``, and its size what they make; then its data is
    read into the array."""
    info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{name} is compressed; lstm_fast model files store their arrays "
                         "uncompressed")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{name}: unknown .npy version {version}")
        string = dtype == "U"
        if ((string and got_dtype.kind != "U") or (not string and got_dtype != dtype)
                or got_dtype.hasobject):
            raise ValueError(f"{name} has dtype {got_dtype}, expected "
                             f"{'a string dtype' if string else dtype}")
        if (got_shape != shape if shape is not None else len(got_shape) != 1) or fortran:
            raise ValueError(f"{name} has shape {got_shape}, expected {shape or '1-D'}")
        nbytes = int(np.prod(got_shape, dtype=np.int64)) * got_dtype.itemsize
        if (max_bytes is not None and nbytes > max_bytes) or not (
                nbytes <= info.file_size <= nbytes + 4096):
            raise ValueError(f"{name} holds {info.file_size} bytes, not what its shape says "
                             f"({nbytes} and a header)")
        array = np.empty(got_shape, dtype=got_dtype)
        got = f.readinto(memoryview(array.reshape(-1).view(np.uint8)))
        if got != nbytes or f.read(1):
            raise ValueError(f"{name} holds {got} bytes of data, expected {nbytes}")
    return array
