"""Fuzzing (Hypothesis) of everything that takes user input: LSTM.forward, backward and
load_state_dict, the estimators' fit, partial_fit and predict, and the engine's own entry points.

Each case is built with the set of arguments it got wrong. It runs in a worker process
(fuzz_worker.py), so a crash in compiled code fails that case, shown, instead of the test run; a
hang fails it too. A case with nothing wrong must work and give the NumPy reference's results;
a case with something wrong must raise a Python exception whose message names a wrong argument.
LSTM_FAST_FUZZ_EXAMPLES sets the cases per test (default 400; the Hypothesis database is off and
the cases derandomized, so a run is repeatable).
"""

import os
import pickle
import re
import select
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lstm_fast._lstm import CELL_KINDS  # noqa: E402
from lstm_fast.nn import param_shapes  # noqa: E402
from lstm_fast.testing import reference_backward, reference_forward  # noqa: E402

from conftest import HERE, assert_close  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("LSTM_FAST_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

# Exceptions a wrong argument may raise (scikit-learn's InvalidParameterError is both).
CLEAR = {"ValueError", "TypeError", "MemoryError", "InvalidParameterError"}


class Worker:
    """The fuzz_worker.py process: call() runs a case in it, restarting it after a crash."""

    def __init__(self):
        self.process, self.cases, self.log = None, 0, None

    def _start(self):
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen([sys.executable, os.path.join(HERE, "fuzz_worker.py")],
                                        cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log)

    def _lost(self, why):
        self.process.kill()
        code = self.process.wait()
        self.log.seek(0)
        tail = self.log.read()[-3000:].decode(errors="replace")
        self.process = None
        pytest.fail(f"the case {why} (worker exit status {code}); its stderr ends:\n{tail}")

    def __call__(self, case, timeout=120):
        if self.process is None:
            self._start()
        data = pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.process.stdin.write(struct.pack("<Q", len(data)) + data)
            self.process.stdin.flush()
        except BrokenPipeError:
            self._lost("found the worker dead")
        if not select.select([self.process.stdout], [], [], timeout)[0]:
            self._lost(f"hung for {timeout} s")
        header = self.process.stdout.read(8)
        if len(header) < 8:
            self._lost("crashed the worker")
        self.cases += 1
        return pickle.loads(self.process.stdout.read(struct.unpack("<Q", header)[0]))

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    print(f"\nfuzz cases run: {w.cases}")
    w.close()


def _names(message, names):
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message) for n in names)


def expect(result, bad, check=None):
    """A case with nothing ``bad`` works (and passes ``check``); one with ``bad`` arguments
    raises a clear exception whose message names one of them."""
    if not bad:
        assert result[0] == "ok", f"a valid case raised {result[1]}: {result[2]}"
        if check is not None:
            check(result[1])
        return
    assert result[0] == "raised", f"accepted although {sorted(bad)} are wrong"
    kind, message = result[1], result[2]
    note(f"{kind}: {message}")
    assert kind in CLEAR, f"{kind}: {message}"
    assert _names(message, bad), f"the message names none of {sorted(bad)}: {message}"


# ----------------------------------------------------------------------------- arrays


BAD_DTYPES = ["int32", "int64", "bool", "complex128", "object", "U3", "datetime64[s]"]


@st.composite
def arrays(draw, shape, allow_list=True):
    """(value, wrong): an array-like of ``shape`` with values of a standard normal, in a drawn
    dtype, memory layout and container; ``wrong`` says what makes it invalid (None: nothing)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.standard_normal(shape)
    wrong = None
    dtype = draw(st.sampled_from(["float64", "float32", "float16"] * 4 + BAD_DTYPES))
    if dtype in BAD_DTYPES:
        wrong = "dtype"
        a = {"bool": lambda: a > 0, "object": lambda: a.astype(object),
             "complex128": lambda: a + 1j, "datetime64[s]": lambda: np.zeros(shape, dtype),
             "U3": lambda: a.astype("U3")}.get(dtype, lambda: (a * 3).astype(dtype))()
    else:
        a = a.astype(dtype)
        if a.size and draw(st.integers(0, 5)) == 0:
            a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(
                [np.nan, np.inf, -np.inf]))
            wrong = "non-finite"
    layout = draw(st.sampled_from(["C", "C", "F", "reversed", "strided"]))
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "reversed" and a.ndim:
        a = a[::-1]
    elif layout == "strided" and a.ndim:
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    if allow_list and wrong is None and a.ndim and draw(st.integers(0, 6)) == 0:
        a = a.tolist()
    return a, wrong


# Rows per engine call: None as the layer chooses (one call here), else runs of so many rows.
RUN_ROWS = st.sampled_from([None, None, 1, 2, 3])


@st.composite
def configs(draw):
    hidden = draw(st.integers(1, 5))
    return dict(input_size=draw(st.integers(1, 3)), hidden_size=hidden,
                num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                proj_size=draw(st.sampled_from([0, 0] + list(range(1, hidden)))),
                batch_first=draw(st.booleans()), bias=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])))


def _output_size(config):
    return config["proj_size"] or config["hidden_size"]


# ----------------------------------------------------------------------------- forward


@st.composite
def lengths_for(draw, T, B, batched):
    """(lengths, wrong)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["none"] * 6 + ["valid", "list", "zero", "negative", "over",
                                                 "huge", "float", "bool", "count", "2-d",
                                                 "scalar"]))
    n = B if batched else 1
    good = rng.integers(1, max(T, 1) + 1, size=n)
    if kind == "none" or n == 0:  # (no sequences: x is wrong)
        return None, None
    if kind in ("valid", "list"):
        value = good if batched or draw(st.booleans()) else int(good[0])
        return (value.tolist() if kind == "list" and batched else value), (None if T else "x")
    if kind == "scalar":
        return int(good[0]), None if not batched else "shape"
    bad = good.copy()
    at = draw(st.integers(0, n - 1))
    if kind in ("zero", "negative", "over", "huge"):
        bad[at] = {"zero": 0, "negative": -3, "over": T + 1, "huge": 2**62}[kind]
        return bad, "value"
    return {"float": (good.astype(float), "dtype"), "bool": (good > 0, "dtype"),
            "count": (np.append(good, 1), "shape"), "2-d": (good[:, None], "shape")}[kind]


@st.composite
def hx_for(draw, config, B, batched):
    """(hx, wrong)."""
    kind = draw(st.sampled_from(["none"] * 6 + ["valid", "list", "shape h", "shape c", "array",
                                                 "three", "bad values"]))
    if kind == "none":
        return None, None
    k = (2 if config["bidirectional"] else 1) * config["num_layers"]
    batch = (B,) if batched else ()
    shape_h = (k,) + batch + (_output_size(config),)
    shape_c = (k,) + batch + (config["hidden_size"],)
    h, wrong_h = draw(arrays(shape_h, allow_list=False)) if kind == "bad values" else (
        np.random.default_rng(1).standard_normal(shape_h), None)
    c = np.random.default_rng(2).standard_normal(shape_c)
    if kind == "shape h":
        h = h[..., :-1] if draw(st.booleans()) else h[None]
    if kind == "shape c":
        c = np.concatenate([c, c], axis=-1)
    if kind == "array":
        return h, "type"
    if kind == "three":
        return (h, c, c), "type"
    wrong = wrong_h or ("shape" if kind.startswith("shape") else None)
    return ([h, c] if kind == "list" else (h, c)), wrong


@st.composite
def hidden_hx_for(draw, config, B, batched):
    """(hx, wrong) for a GRU or RNN, whose hx is h_0 alone."""
    kind = draw(st.sampled_from(["none"] * 4 + ["valid", "shape", "pair", "bad values"]))
    if kind == "none":
        return None, None
    k = (2 if config["bidirectional"] else 1) * config["num_layers"]
    shape = (k,) + ((B,) if batched else ()) + (config["hidden_size"],)
    if kind == "bad values":
        return draw(arrays(shape, allow_list=False))
    h = np.random.default_rng(1).standard_normal(shape)
    if kind == "shape":
        return h[..., :-1], "shape"
    return ((h, h), "type") if kind == "pair" else (h, None)


@st.composite
def forward_cases(draw):
    config = draw(configs())
    cell = draw(st.sampled_from(["lstm", "lstm", "gru", "rnn_tanh", "rnn_relu"]))
    if cell != "lstm":
        config["proj_size"] = 0
    ndim = draw(st.sampled_from([3, 3, 3, 2, 2, 1, 4]))
    T, B = draw(st.sampled_from([1, 2, 5, 0])), draw(st.sampled_from([1, 3, 4, 0]))
    F = draw(st.sampled_from([config["input_size"]] * 6 + [config["input_size"] + 1, 0]))
    shape = {1: (T,), 2: (T, F), 3: (B, T, F) if config["batch_first"] else (T, B, F),
             4: (1, T, B, F)}[ndim]
    x, wrong_x = draw(arrays(shape))
    batched = ndim != 2
    bad = set()
    if wrong_x or ndim not in (2, 3) or F != config["input_size"] or T == 0 or (
            batched and B == 0):
        bad.add("x")
    lengths, wrong_lengths = draw(lengths_for(T, B if batched else 1, batched))
    hx, wrong_hx = draw((hx_for if cell == "lstm" else hidden_hx_for)(config, B, batched))
    if wrong_lengths and wrong_lengths != "x":
        bad.add("lengths")
    if wrong_hx:
        bad.add("hx")
    case = dict(target="forward", config=config, x=x, lengths=lengths, hx=hx, cell=cell,
                training=draw(st.booleans()), run_rows=draw(RUN_ROWS))
    return case, bad


def _time_major(a, batched, batch_first):
    a = np.asarray(a, dtype=np.float64)
    if not batched:
        return a[:, None]
    return np.swapaxes(a, 0, 1) if batch_first else a


def _reference(case, state):
    """The reference's (out, h_n, c_n, cache) for a valid forward case, time-major batched."""
    config = case["config"]
    batched = np.ndim(case["x"]) == 3
    x = _time_major(case["x"], batched, config["batch_first"])
    T, B = x.shape[:2]
    k = (2 if config["bidirectional"] else 1) * config["num_layers"]
    cell = case.get("cell", "lstm")
    c_width = config["hidden_size"] if cell == "lstm" else 0
    if case.get("hx") is None:
        h0 = np.zeros((k, B, _output_size(config)))
        c0 = np.zeros((k, B, c_width))
    elif cell != "lstm":
        h0, c0 = np.asarray(case["hx"], np.float64).reshape(k, B, -1), np.zeros((k, B, 0))
    else:
        h0, c0 = (np.asarray(a, np.float64).reshape(k, B, -1) for a in case["hx"])
    lengths = np.full(B, T) if case["lengths"] is None else np.reshape(case["lengths"], B)
    params = {name: v.astype(np.float64) for name, v in state.items()}
    return reference_forward(params, x, h0, c0, lengths, config["num_layers"],
                             config["bidirectional"], cell=cell)


def test_forward(worker):
    @FUZZ
    @given(forward_cases())
    def check(case_bad):
        case, bad = case_bad
        note(f"bad: {sorted(bad)}")

        def matches(result):
            out, h, c, _ = _reference(case, result["state"])
            batched = np.ndim(case["x"]) == 3
            dtype = case["config"]["dtype"]
            got = _time_major(result["out"], batched, case["config"]["batch_first"])
            assert_close(got, out, dtype, "out")
            assert_close(np.reshape(result["h"], h.shape), h, dtype, "h_n")
            if case["cell"] == "lstm":
                assert_close(np.reshape(result["c"], c.shape), c, dtype, "c_n")
            assert result["out"].dtype == dtype

        expect(worker(case), bad, matches)

    check()


# ----------------------------------------------------------------------------- backward


@st.composite
def backward_cases(draw):
    config = draw(configs())
    T, B = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    batched = draw(st.integers(0, 4)) > 0
    x = np.random.default_rng(draw(st.integers(0, 100))).standard_normal(
        ((B, T) if config["batch_first"] else (T, B)) + (config["input_size"],) if batched
        else (T, config["input_size"]))
    lengths = np.random.default_rng(3).integers(1, T + 1, size=B) if batched and draw(
        st.booleans()) else None
    D, P, H = 2 if config["bidirectional"] else 1, _output_size(config), config["hidden_size"]
    out_shape = x.shape[:-1] + (D * P,)
    state_batch = (B,) if batched else ()
    bad = set()
    case = dict(target="backward", config=config, x=x, lengths=lengths,
                run_rows=draw(RUN_ROWS))
    for name, shape in [("grad_output", out_shape),
                        ("grad_h_n", (D * config["num_layers"],) + state_batch + (P,)),
                        ("grad_c_n", (D * config["num_layers"],) + state_batch + (H,))]:
        if name != "grad_output" and draw(st.integers(0, 2)) == 0:
            case[name] = None
            continue
        if draw(st.integers(0, 3)) == 0:
            want, shape = shape, draw(st.sampled_from([shape[:-1] + (shape[-1] + 1,), shape[1:],
                                                       (1,) + shape, tuple(reversed(shape))]))
            if shape != want:
                bad.add(name)
        value, wrong = draw(arrays(shape))
        if wrong:
            bad.add(name)
        case[name] = value
    return case, bad


def test_backward(worker):
    @FUZZ
    @given(backward_cases())
    def check(case_bad):
        case, bad = case_bad
        note(f"bad: {sorted(bad)}")

        def matches(result):
            config = case["config"]
            batched = np.ndim(case["x"]) == 3
            _, _, _, cache = _reference(dict(case, hx=None), result["state"])
            g = _time_major(case["grad_output"], batched, config["batch_first"])
            grads = [None if case[k] is None else np.asarray(case[k], np.float64).reshape(
                g.shape[1] and -1, g.shape[1], np.shape(case[k])[-1])
                for k in ("grad_h_n", "grad_c_n")]
            grad_x, _, _, _ = reference_backward(
                {k: v.astype(np.float64) for k, v in result["state"].items()}, cache, g, *grads)
            got = _time_major(result["grad_x"], batched, config["batch_first"])
            assert_close(got, grad_x, config["dtype"], "grad_x")

        expect(worker(case), bad, matches)

    check()


# ----------------------------------------------------------------------------- load_state_dict


@st.composite
def state_dict_cases(draw):
    config = draw(configs())
    shapes = param_shapes(config["input_size"], config["hidden_size"], config["num_layers"],
                          config["bias"], config["bidirectional"], config["proj_size"])
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    state = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    bad = set()
    name = draw(st.sampled_from(sorted(state)))
    kind = draw(st.sampled_from(["valid", "valid", "drop", "extra", "shape", "values", "type",
                                 "torch-named"]))
    if kind == "drop":
        del state[name]
        bad.add(name)
    elif kind == "extra":
        state["weight_hr_l9"] = np.zeros(3)
        bad.add("weight_hr_l9")
    elif kind == "shape":
        state[name] = state[name][..., :-1] if draw(st.booleans()) else state[name][None]
        bad.add(name)
    elif kind == "values":
        state[name], wrong = draw(arrays(shapes[name]))
        if wrong:
            bad.add(name)
    elif kind == "type":
        state = draw(st.sampled_from([list(state.items()), None, np.zeros(3), "weights"]))
        bad.add("state_dict")
    elif kind == "torch-named":
        state["module." + name] = state.pop(name)
        bad.update({name, "module." + name})
    return dict(target="load_state_dict", config=config, state_dict=state), bad


def test_load_state_dict(worker):
    @FUZZ
    @given(state_dict_cases())
    def check(case_bad):
        case, bad = case_bad
        note(f"bad: {sorted(bad)}")

        def matches(result):
            for name, value in case["state_dict"].items():
                np.testing.assert_array_equal(
                    result["state"][name], np.asarray(value).astype(case["config"]["dtype"]))

        expect(worker(case), bad, matches)

    check()


# ----------------------------------------------------------------------------- estimators


PARAMS = ["hidden_size", "num_layers", "bidirectional", "proj_size", "dropout", "solver",
          "batch_size", "max_iter", "learning_rate_init", "early_stopping",
          "validation_fraction", "dtype"]


@st.composite
def estimator_params(draw):
    params = dict(hidden_size=draw(st.integers(1, 4)), max_iter=draw(st.integers(1, 2)),
                  num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                  batch_size=draw(st.integers(1, 8)), dtype=draw(st.sampled_from(
                      ["float32", "float64"])), solver=draw(st.sampled_from(["adam", "sgd"])),
                  early_stopping=draw(st.integers(0, 4)) == 0, random_state=0, n_threads=1)
    bad = set()
    if draw(st.integers(0, 5)) == 0:
        name, value = draw(st.sampled_from([("hidden_size", 0), ("hidden_size", 2.5),
                                            ("proj_size", 99), ("dropout", 1.5),
                                            ("solver", "lbfgs"), ("batch_size", -1),
                                            ("learning_rate_init", 0), ("dtype", "int8"),
                                            ("validation_fraction", 1.0)]))
        params[name] = value
        bad.update({name, "hidden_size"} if name == "proj_size" else {name})
    return params, bad


@st.composite
def sequences_x(draw, n, n_features):
    """(X, bad, maybe) for n sequences of n_features: a 3-D array, a 2-D array of series, a
    list of arrays (ragged), or nested lists; ``bad`` is {"X"} if it is certainly invalid,
    ``maybe`` if scikit-learn may or may not convert it (object and string arrays)."""
    form = draw(st.sampled_from(["3-d", "3-d", "list", "list", "series", "nested", "empty"]))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    T = draw(st.sampled_from([1, 3, 6, 0]))
    if form == "empty":
        return [], {"X"}, set()
    if form != "list":
        shape = (n, T) if form == "series" else (n, T, n_features)
        X, wrong = draw(arrays(shape))
        kind = np.asarray(X).dtype.kind
        if form == "nested" and isinstance(X, np.ndarray):
            X = X.tolist()
        empty = T == 0 or n == 0 or (form != "series" and n_features == 0)
        if wrong == "non-finite" or empty or (wrong == "dtype" and kind in "cM"):
            return X, {"X"}, set()
        return X, set(), {"X"} if kind in "OU" else set()
    seqs, bad = [], set()
    for i in range(n):
        t = draw(st.integers(0, 5))
        f = n_features if draw(st.integers(0, 8)) else n_features + 1
        seq = rng.standard_normal((t, f)) if draw(st.integers(0, 3)) else rng.standard_normal(t)
        if t == 0:
            bad.add("X")
        seqs.append(seq)
    if n == 0 or len({s.shape[1] if s.ndim == 2 else 1 for s in seqs}) != 1:
        bad.add("X")  # (1-D sequences are univariate: one feature)
    return seqs, bad, set()


@st.composite
def estimator_cases(draw):
    estimator = draw(st.sampled_from(["LSTMClassifier", "LSTMRegressor"]))
    params, bad = draw(estimator_params())
    n = draw(st.sampled_from([1, 2, 6, 12, 0]))
    n_features = draw(st.integers(1, 3))
    X, bad_x, maybe = draw(sequences_x(n, n_features))
    bad |= bad_x
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    n_y = n if draw(st.integers(0, 8)) else n + 1
    if estimator == "LSTMClassifier":
        y = draw(st.sampled_from([rng.integers(0, 2, n_y), np.array(["a", "b"] * n_y)[:n_y],
                                  np.where(rng.random(n_y) > 0.5, 1.0, np.nan), np.zeros(n_y)]))
        if y.dtype.kind == "f" and np.isnan(y).any():
            bad.add("y")
    else:
        y = draw(st.sampled_from([rng.standard_normal(n_y), rng.standard_normal((n_y, 2)),
                                  np.full(n_y, np.nan), np.array(["a"] * n_y)]))
        if y.dtype.kind != "f" or np.isnan(y).any():
            bad.add("y")
    if n_y != n:
        bad.update({"X", "y"})
    partial = draw(st.booleans())
    classes = None
    if estimator == "LSTMClassifier":
        if partial:
            classes = draw(st.sampled_from([None, np.unique(y) if len(y) else None, [0, 1, 2]]))
        labels = classes if classes is not None else y
        if partial and classes is None:
            bad.add("classes")
        elif len(np.unique(labels)) < 2 and "y" not in bad:
            bad.add("y")  # a single class
        elif classes is not None and not set(np.unique(y)) <= set(np.unique(classes)):
            bad.update({"y", "classes"})
    if params["early_stopping"] and not partial:
        maybe.add("early_stopping")  # with few samples it fails clearly, else it works
    X_predict = X[:draw(st.integers(1, max(1, n)))]  # (of the form fit saw)
    return dict(target="estimator", estimator=estimator, params=params, X=X, y=y,
                partial=partial, classes=classes, X_predict=X_predict), bad, maybe


def test_estimators(worker):
    """Wrong data, labels and parameters of every kind: a clear error naming X, y, classes,
    early_stopping or the parameter; anything else fits and predicts finite values."""
    @FUZZ
    @given(estimator_cases())
    def check(case_bad_maybe):
        case, bad, maybe = case_bad_maybe
        note(f"bad: {sorted(bad)}, maybe: {sorted(maybe)}")
        result = worker(case)

        def predicts(pred):
            assert pred.shape[0] == len(case["X_predict"])
            if pred.dtype.kind == "f":
                assert np.all(np.isfinite(pred))

        if bad or (maybe and result[0] == "raised"):
            # the one checked first may be any of the wrong ones (or X, y for a mismatch)
            expect(result, bad | maybe | ({"X", "y"} if {"X", "y"} & bad else set()))
        else:
            expect(result, set(), predicts)

    check()


# ----------------------------------------------------------------------------- the engine


@st.composite
def engine_cases(draw):
    """The engine's entry points, with valid arguments of random small sizes and then some of
    them replaced by anything (wrong shapes, dtypes, layouts, None, lists, step sizes and
    offsets of any value): they run or raise, and never crash."""
    T, B = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    I, H = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kind = draw(st.sampled_from(sorted(CELL_KINDS.values())))
    lstm, gru = kind == CELL_KINDS["lstm"], kind == CELL_KINDS["gru"]
    G = (4 if lstm else 3 if gru else 1) * H
    P = draw(st.integers(1, H)) if lstm and draw(st.booleans()) else H
    dt = draw(st.sampled_from([np.float32, np.float64]))
    sizes = np.sort(draw(st.lists(st.integers(1, B), min_size=T, max_size=T)))[::-1].copy()
    sizes[0] = B
    N = int(sizes.sum())
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    rng = np.random.default_rng(0)

    def a(*shape):
        return rng.standard_normal(shape).astype(dt)

    project = P != H
    D = draw(st.integers(1, 2))
    common = dict(x=a(N, I), w_ih=a(G, I), w_hh=a(G, P), w_hr=a(P, H) if project else None,
                  batch_sizes=sizes.astype(np.intp), offsets=offsets,
                  out_col=draw(st.integers(0, D - 1)) * P, reverse=draw(st.booleans()), kind=kind)
    # what the cell stores for backward besides the gates and h_{t-1}
    cell_stored = (dict(tanh_cell=a(N, H), cell_prev=a(N, H)) if lstm
                   else dict(hidden_gates=a(N, G)) if gru else {})
    function = draw(st.sampled_from(["forward_layer", "backward_layer"]))
    if function == "forward_layer":
        args = dict(common, b_ih=a(G), b_hh=a(G) if draw(st.booleans()) else None,
                    hidden=a(B, P), cell=a(B, H) if lstm else None, out=a(N, D * P))
        if draw(st.booleans()):
            args.update(gates=a(N, G), hidden_prev=a(N, P), **cell_stored)
    else:
        args = dict(common, d_out=a(N, D * P), d_hidden=a(B, P), d_cell=a(B, H) if lstm else None,
                    gates=a(N, G), hidden_prev=a(N, P), d_x=a(N, I), d_w_ih=a(G, I),
                    d_w_hh=a(G, P), d_b_ih=a(G), d_b_hh=a(G),
                    d_w_hr=a(P, H) if project else None,
                    **dict(dict(tanh_cell=None, cell_prev=None), **cell_stored))
    changed = draw(st.lists(st.sampled_from(sorted(args)), max_size=3, unique=True))
    for name in changed:
        old = args[name]
        if name == "kind":
            args[name] = draw(st.integers(-1, 4))
        elif name in ("out_col",):
            args[name] = draw(st.integers(-3, 3 * P + 3) | st.integers(-2**63, 2**63 - 1))
        elif name == "reverse":
            args[name] = draw(st.sampled_from([True, 0, 2, "yes", None]))
        elif name in ("batch_sizes", "offsets"):
            args[name] = np.array(draw(st.lists(st.integers(-2**62, 2**62) | st.integers(-2, 6),
                                                min_size=0, max_size=6)), dtype=np.intp)
        else:
            shape = np.shape(old) if old is not None else (B, P)
            shape = draw(st.sampled_from([shape, shape[::-1], shape[:-1], shape + (1,),
                                          tuple(max(0, s + draw(st.integers(-1, 1)))
                                                for s in shape)]))
            value = np.random.default_rng(1).standard_normal(shape)
            kind = draw(st.sampled_from(["float32", "float64", "int64", "intp", "F", "reversed",
                                         "none", "list"]))
            if kind in ("float32", "float64", "int64", "intp"):
                value = value.astype(kind)
            elif kind == "F":
                value = np.asfortranarray(value.astype(dt))
            elif kind == "reversed" and value.ndim:
                value = value.astype(dt)[::-1]
            args[name] = None if kind == "none" else value.tolist() if kind == "list" else value
    if draw(st.booleans()):
        args["n_threads"] = draw(st.integers(-1, 4))
    return dict(target="engine", function=function, arguments=args), bool(changed)


def test_engine_entry_points(worker):
    @FUZZ
    @given(engine_cases())
    def check(case_changed):
        case, changed = case_changed
        note(f"changed: {changed}")
        result = worker(case)
        if not changed:
            assert result[0] == "ok", result
        elif result[0] == "raised":
            assert result[1] in CLEAR, result

    check()
