"""save/load: a loaded model is the fitted one (it predicts and trains on exactly as in memory),
the file describes the fitted model whatever set_params did since, and a damaged, tampered or
hostile file is refused with a clear error before anything in it is used."""

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import lstm_fast
from lstm_fast import LSTMClassifier, LSTMRegressor

from conftest import HERE

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(Estimator, n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5, 2))
    if Estimator is LSTMClassifier:
        return X, np.array(["a", "b", "c"])[np.arange(n) % 3]
    return X, X[:, :, 0].sum(1)


def _fitted(Estimator, **params):
    X, y = _data(Estimator)
    config = dict(hidden_size=6, num_layers=2, bidirectional=True, proj_size=3, dropout=0.25,
                  max_iter=2, batch_size=7, random_state=0)
    return Estimator(**dict(config, **params)).fit(X, y), X, y


def _weights(est):
    return [p.copy() for _, p in est.lstm_.named_parameters()] + [est.coefs_[0].copy(),
                                                                  est.intercepts_[0].copy()]


def _assert_same_weights(a, b):
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("Estimator", [LSTMClassifier, LSTMRegressor])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_a_loaded_model_trains_on_exactly_as_in_memory(Estimator, solver, tmp_path):
    """partial_fit and a warm_start fit of a loaded model give the in-memory model's next
    weights bit for bit: the optimiser's moments, both random generators (shuffling, dropout)
    and the stopping counters are in the file."""
    est, X, y = _fitted(Estimator, solver=solver)
    est.save(tmp_path / "m.npz")
    for continue_ in (lambda e: e.partial_fit(X, y),
                      lambda e: e.set_params(warm_start=True, max_iter=3).fit(X, y)):
        copies = [lstm_fast.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(est))]
        mine = pickle.loads(pickle.dumps(est))
        continue_(mine)
        for other in copies:
            continue_(other)
            _assert_same_weights(other, mine)
            assert other.loss_curve_ == mine.loss_curve_ and other.n_iter_ == mine.n_iter_
            assert other._no_improvement_count == mine._no_improvement_count
        assert not np.array_equal(_weights(mine)[0], est.lstm_.weight_ih_l0)


@pytest.mark.parametrize("Estimator", [LSTMClassifier, LSTMRegressor])
def test_the_file_describes_the_fitted_model_not_the_new_params(Estimator, tmp_path):
    """After set_params of a shape parameter, save writes the fitted model (it used to write the
    new params, and the file could not be loaded); loading gives the same estimator, params
    included, and a continued fit refuses the shape change on both."""
    est, X, y = _fitted(Estimator, dtype="float64")
    expected = est.predict(X)
    est.set_params(hidden_size=16, num_layers=1, bidirectional=False, proj_size=0,
                   dtype="float32")
    est.save(tmp_path / "m.npz")
    loaded = lstm_fast.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(X), expected)
    assert loaded.get_params() == est.get_params()
    assert loaded.lstm_.hidden_size == 6 and loaded.lstm_.dtype == np.float64
    for model in (est, loaded):
        with pytest.raises(ValueError, match="partial_fit cannot change hidden_size from 6 to 16"):
            model.partial_fit(X, y)
        with pytest.raises(ValueError, match="warm_start fit cannot change hidden_size"):
            model.set_params(warm_start=True).fit(X, y)
        np.testing.assert_array_equal(model.predict(X), expected)  # untouched by the refusals
    est.set_params(warm_start=False).fit(X, y)  # a new fit takes the new shape
    assert est.lstm_.hidden_size == 16 and est.lstm_.dtype == np.float32


@pytest.mark.parametrize("change", [dict(num_layers=1), dict(bidirectional=False),
                                    dict(proj_size=0), dict(dtype="float64"),
                                    dict(standardize=False), dict(cell="gru")])
def test_warm_start_refuses_every_shape_change(change):
    est, X, y = _fitted(LSTMRegressor)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"cannot change {name}"):
        est.set_params(warm_start=True, **change).fit(X, y)
    est.set_params(**{name: est._architecture[name]}, dropout=0.5, learning_rate_init=1e-2)
    est.fit(X, y)  # dropout and the optimiser's settings may change
    assert est.lstm_.dropout == 0.5


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_every_cell_saves_loads_and_trains_on(cell, tmp_path):
    """A GRU or RNN model's file holds its cell: loaded, it predicts and trains on exactly as the
    one in memory; a file whose cell is switched is refused (its weights have other shapes)."""
    est, X, y = _fitted(LSTMRegressor, cell=cell, proj_size=0)
    assert type(est.lstm_).__name__ == cell.upper()
    est.save(tmp_path / "m.npz")
    loaded = lstm_fast.load(tmp_path / "m.npz")
    assert loaded.get_params()["cell"] == cell and type(loaded.lstm_) is type(est.lstm_)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    est.partial_fit(X, y)
    loaded.partial_fit(X, y)
    _assert_same_weights(loaded, est)
    with np.load(tmp_path / "m.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    other = "gru" if cell == "rnn" else "rnn"
    with pytest.raises(ValueError, match="damaged.*has shape"):
        lstm_fast.load(_write(tmp_path / "bad.npz", arrays,
                              _changed(meta, ["state", "architecture", "cell"], other)))


def test_files_from_before_the_cells_load_as_lstms(saved, tmp_path):
    """A model file written before estimators had ``cell`` (no cell in it) is an LSTM's."""
    path, arrays, meta = saved
    old = json.loads(json.dumps(meta))
    del old["state"]["architecture"]["cell"], old["params"]["cell"]
    loaded = lstm_fast.load(_write(tmp_path / "old.npz", arrays, old))
    assert loaded.cell == "lstm"
    X, _ = _data(LSTMClassifier)
    np.testing.assert_array_equal(loaded.predict_proba(X), lstm_fast.load(path).predict_proba(X))


def test_save_and_load_file_objects_and_feature_names():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.standard_normal((30, 4)), columns=["a", "b", "c", "d"])
    y = (X["d"] > 0).astype(int)
    est = LSTMClassifier(hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    buffer = io.BytesIO()
    est.save(buffer)
    buffer.seek(0)
    loaded = lstm_fast.load(buffer)
    np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


# ----------------------------------------------------------------------------- hostile files


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved classifier: (path, its arrays, its metadata)."""
    path = tmp_path_factory.mktemp("models") / "m.npz"
    est, _, _ = _fitted(LSTMClassifier, max_iter=1)
    est.save(path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return path, arrays, json.loads(arrays["meta"].tobytes())


def _write(path, arrays, meta=None):
    if meta is not None:
        arrays = dict(arrays, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    np.savez(path, **arrays)
    return path


def _changed(meta, path, value):
    """meta with the entry at ``path`` (keys) set to ``value``."""
    meta = json.loads(json.dumps(meta))
    node = meta
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return meta


def _tampered_metas(meta):
    yield "switched estimator", _changed(meta, ["estimator"], "LSTMRegressor"), "damaged"
    yield "unknown estimator", _changed(meta, ["estimator"], "os.system"), "unknown estimator"
    yield "newer version", _changed(meta, ["version"], 3), "format version 3"
    yield "version 1", _changed(meta, ["version"], 1), "format version 1"
    yield "no format", _changed(meta, ["format"], "other"), "not an lstm_fast model file"
    yield "unknown param", _changed(meta, ["params", "exec"], "x"), "damaged.*exec"
    yield "bad param", _changed(meta, ["params", "hidden_size"], -1), "damaged.*hidden_size"
    yield "shape mismatch", _changed(meta, ["state", "architecture", "hidden_size"], 7), \
        "damaged.*has shape"
    yield "huge model", _changed(meta, ["state", "architecture", "hidden_size"], 10**9), \
        "damaged"
    yield "bad dtype", _changed(meta, ["state", "architecture", "dtype"], "object"), "dtype"
    yield "bad cell", _changed(meta, ["state", "architecture", "cell"], "exec"), "cell must be"
    yield "switched cell", _changed(meta, ["state", "architecture", "cell"], "gru"), \
        "damaged.*proj_size must be 0"
    yield "bad count", _changed(meta, ["state", "fitted", "n_iter_"], -3), "n_iter_"
    yield "bad curve", _changed(meta, ["state", "fitted", "loss_curve_"], "x"), "loss_curve_"
    yield "bad kind", _changed(meta, ["state", "fitted", "_input_kind"], "pickle"), "input kind"
    yield "missing value", _changed(meta, ["state", "fitted"], {}), "fitted values"
    yield "bad rng", _changed(meta, ["state", "rng"], [9999, 0, 0.0]), "random generator"
    yield "bad solver", _changed(meta, ["state", "optimizer", "solver"], "lbfgs"), "optimiser"
    yield "bad step count", _changed(meta, ["state", "optimizer", "t"], -1), "count"
    yield "bad classes", _changed(meta, ["state", "classes_dtype"], "|O"), "class labels"
    yield "not a dict", [1, 2], "not an lstm_fast model file"


def test_tampered_metadata_is_refused_at_load(saved, tmp_path):
    path, arrays, meta = saved
    for label, bad, match in _tampered_metas(meta):
        with pytest.raises(ValueError, match=match):
            lstm_fast.load(_write(tmp_path / "bad.npz", arrays, bad))
        print(f"refused: {label}")


class _Payload:
    """Unpickling this would create a file: the proof that something in a file was run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_tampered_arrays_are_refused_before_use(saved, tmp_path):
    path, arrays, meta = saved
    touched = tmp_path / "executed"
    hostile = np.empty(1, dtype=object)
    hostile[0] = _Payload(str(touched))
    w = arrays["lstm:weight_hh_l0"]
    cases = [
        ("pickled object", dict(arrays, coef=hostile), "dtype object"),
        ("pickled extra", dict(arrays, extra=hostile), "unexpected members.*extra"),
        ("missing array", {k: v for k, v in arrays.items() if k != "lstm:weight_hh_l0"},
         r"missing arrays \['lstm:weight_hh_l0.npy'\]"),
        ("wrong shape", dict(arrays, **{"lstm:weight_hh_l0": w[:-1]}), "has shape"),
        ("wrong dtype", dict(arrays, **{"lstm:weight_hh_l0": w.astype(np.float64)}),
         "has dtype float64"),
        ("NaN weight", dict(arrays, **{"lstm:weight_hh_l0": np.where(w > 0, np.nan, w)}),
         "NaN"),
        ("inf intercept", dict(arrays, intercept=np.full_like(arrays["intercept"], np.inf)),
         "NaN or infinity"),
        ("NaN in optimiser", dict(arrays, **{"optimizer:m:0": arrays["optimizer:m:0"] * np.nan}),
         "NaN"),
        ("zero scale", dict(arrays, scaler_scale=np.zeros_like(arrays["scaler_scale"])),
         "scaler_scale"),
        ("unsorted classes", dict(arrays, classes=arrays["classes"][::-1].copy()), "classes"),
        ("fortran order", dict(arrays, coef=np.asfortranarray(arrays["coef"])), "has shape"),
    ]
    for label, bad, match in cases:
        with pytest.raises(ValueError, match=match):
            lstm_fast.load(_write(tmp_path / "bad.npz", bad))
        print(f"refused: {label}")
    assert not touched.exists()


def test_damaged_and_foreign_files_are_refused(saved, tmp_path):
    path, arrays, meta = saved
    data = path.read_bytes()
    rng = np.random.default_rng(4)
    (tmp_path / "truncated.npz").write_bytes(data[:len(data) // 2])
    (tmp_path / "noise.npz").write_bytes(bytes(rng.integers(0, 256, 500, dtype=np.uint8)))
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps(_Payload(str(tmp_path / "executed"))))
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside an array's data: the CRC check finds it
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    meta_bytes = {"bad utf-8": b"\xff\xfe{", "not json": b"{version", "huge": None}
    for name in ("truncated", "noise", "empty", "foreign", "pickle", "flipped"):
        with pytest.raises(ValueError, match="lstm_fast model file"):
            lstm_fast.load(tmp_path / f"{name}.npz")
    for label, raw in meta_bytes.items():
        if raw is None:
            raw = b" " * ((1 << 24) + 1)
        _write(tmp_path / "bad.npz", dict(arrays, meta=np.frombuffer(raw, np.uint8)))
        with pytest.raises(ValueError, match="lstm_fast model file"):
            lstm_fast.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        lstm_fast.load(tmp_path / "missing.npz")
    assert not (tmp_path / "executed").exists()


def test_a_zip_bomb_is_refused_without_inflating_it(saved, tmp_path):
    """Members are read only stored uncompressed (as save writes them), so nothing inflates: a
    deflated member that would inflate to gigabytes is refused at once, and so is a file whose
    consistent metadata and headers call for more memory than there is."""
    path, arrays, meta = saved

    def write(target, members, compressed=()):
        with zipfile.ZipFile(target, "w") as z:
            for name, data in members.items():
                z.writestr(f"{name}.npy", data, compress_type=zipfile.ZIP_DEFLATED
                           if name in compressed else zipfile.ZIP_STORED)
        return target

    def npy(array):
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()

    def header(shape, dtype):
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, dict(descr=np.dtype(dtype).str,
                                                          fortran_order=False, shape=shape))
        return buffer.getvalue()

    members = {name: npy(a) for name, a in arrays.items()}
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w") as z:
        for name, data in members.items():
            if name != "coef":
                z.writestr(f"{name}.npy", data)
        info = zipfile.ZipInfo("coef.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as member:
            member.write(header(arrays["coef"].shape, arrays["coef"].dtype))
            zeros = bytes(1 << 24)
            for _ in range(256):  # 4 GiB of zeros, a few MiB deflated
                member.write(zeros)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="coef is compressed"):
        lstm_fast.load(bomb)
    assert time.perf_counter() - start < 5
    with pytest.raises(ValueError, match="meta is compressed"):
        lstm_fast.load(write(tmp_path / "deflated.npz", members, compressed={"meta"}))
    # metadata and headers that agree on a model of 1.6e11 parameters, and no data
    huge = _changed(_changed(meta, ["state", "architecture", "hidden_size"], 100_000),
                    ["state", "architecture", "n_features"], 100_000)
    spec = LSTMClassifier._state_arrays(huge["state"])
    fake = {name: header(shape, np.dtype("<U1") if dtype == "U" else dtype)
            for name, (shape, dtype) in spec.items()}
    fake["meta"] = npy(np.frombuffer(json.dumps(huge).encode(), np.uint8))
    with pytest.raises(ValueError, match="damaged.*MemoryError: the model's arrays would need"):
        lstm_fast.load(write(tmp_path / "huge.npz", fake))
    big = dict(arrays)
    big["meta"] = np.zeros(1 << 25, np.uint8)  # over the metadata's cap
    with pytest.raises(ValueError, match="lstm_fast model file"):
        lstm_fast.load(_write(tmp_path / "bigmeta.npz", big))
    nested = dict(arrays, meta=np.frombuffer(b"[" * 100_000 + b"]" * 100_000, np.uint8))
    with pytest.raises(ValueError, match="lstm_fast model file"):
        lstm_fast.load(_write(tmp_path / "nested.npz", nested))


# ----------------------------------------------------------------------------- atomic writes


def test_a_failed_save_leaves_the_old_file(saved, tmp_path, monkeypatch):
    """A full disk (ENOSPC half-way through the write) leaves the previous model file as it
    was and no partial file beside it."""
    est, X, _ = _fitted(LSTMClassifier, max_iter=1)
    target = tmp_path / "model.npz"
    est.save(target)
    before = target.read_bytes()
    real_savez = np.savez

    def full_disk(f, **arrays):
        real_savez(io.BytesIO(), **arrays)
        f.write(b"PK\x03\x04 half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        est.save(target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]
    np.testing.assert_array_equal(lstm_fast.load(target).predict(X), est.predict(X))


@pytest.mark.slow
def test_a_crash_during_save_leaves_a_whole_model():
    """A process killed in the middle of save (its file half written) leaves the previous
    model in place, whole and loadable."""
    code = textwrap.dedent("""
        import sys, tempfile, time, os, numpy as np, lstm_fast
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((20, 4, 2)), rng.standard_normal(20)
        path = os.path.join(sys.argv[1], "model.npz")
        lstm_fast.LSTMRegressor(hidden_size=8, max_iter=1, random_state=0).fit(X, y).save(path)
        real = np.savez
        def slow(f, **arrays):
            f.write(b"PK\\x03\\x04 the start of a new model")
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        np.savez = slow
        lstm_fast.LSTMRegressor(hidden_size=16, max_iter=1, random_state=1).fit(X, y).save(path)
    """)
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        child = subprocess.Popen([sys.executable, "-c", code, folder], cwd=HERE, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert child.stdout.readline().strip() == "writing", child.stderr.read()
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            child.kill()
        model = lstm_fast.load(os.path.join(folder, "model.npz"))
        assert model.lstm_.hidden_size == 8


# ----------------------------------------------------------------------------- misc


def test_saving_an_unfitted_estimator_is_refused(tmp_path):
    with pytest.raises(NotFittedError):
        LSTMRegressor().save(tmp_path / "m.npz")
    assert not os.listdir(tmp_path)


def test_labels_that_are_not_numbers_or_strings_are_refused(tmp_path):
    """fit makes numbers or strings of every label it accepts; labels set otherwise (objects)
    cannot be written without pickle, and save says so instead of writing them."""
    est, _, _ = _fitted(LSTMClassifier, max_iter=1)
    labels = np.empty(3, dtype=object)
    labels[:] = [(1, 2), (3, 4), (5, 6)]
    est.classes_ = labels
    with pytest.raises(ValueError, match="numbers or strings"):
        est.save(tmp_path / "m.npz")
    assert not os.listdir(tmp_path)
