"""Bad input raises a clear Python exception naming the argument (never a crash)."""

import os

import numpy as np
import pytest

import lstm_fast


@pytest.fixture
def lstm():
    return lstm_fast.LSTM(3, 4, num_layers=2, random_state=0)


X = np.zeros((5, 2, 3))


def _readonly(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(input_size=0, hidden_size=4), ValueError, "input_size"),
    (dict(input_size=3.5, hidden_size=4), TypeError, "input_size"),
    (dict(input_size=3, hidden_size=-1), ValueError, "hidden_size"),
    (dict(input_size=3, hidden_size=4, num_layers=0), ValueError, "num_layers"),
    (dict(input_size=3, hidden_size=4, proj_size=4), ValueError, "proj_size"),
    (dict(input_size=3, hidden_size=4, proj_size=-1), ValueError, "proj_size"),
    (dict(input_size=3, hidden_size=4, dropout=1.5), ValueError, "dropout"),
    (dict(input_size=3, hidden_size=4, dtype=np.int32), ValueError, "dtype"),
    (dict(input_size=3, hidden_size=4, dtype="float16"), ValueError, "dtype"),
    (dict(input_size=3, hidden_size=4, forget_bias=float("nan")), ValueError, "forget_bias"),
])
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        lstm_fast.LSTM(**kwargs)


@pytest.mark.parametrize("x,exc,match", [
    (np.zeros((5, 2, 4)), ValueError, "input_size=3"),
    (np.zeros(3), ValueError, "3-D"),
    (np.zeros((1, 5, 2, 3)), ValueError, "3-D"),
    (np.zeros((5, 2, 3), dtype=np.int64), TypeError, "floating-point"),
    (np.zeros((5, 2, 3), dtype=bool), TypeError, "floating-point"),
    (np.zeros((5, 2, 3), dtype=complex), TypeError, "floating-point"),
    (np.array([["a", "b", "c"]]), TypeError, "floating-point"),
    (np.zeros((0, 2, 3)), ValueError, "at least one step"),
    (np.zeros((5, 0, 3)), ValueError, "at least one step"),
    (np.full((5, 2, 3), np.nan), ValueError, "NaN"),
    (np.full((5, 2, 3), np.inf), ValueError, "NaN or infinity"),
    (np.where(np.arange(30).reshape(5, 2, 3) == 29, np.nan, 0.0), ValueError, "NaN"),  # last
    (np.where(np.arange(30).reshape(5, 2, 3) == 13, -np.inf, 0.0), ValueError, "NaN"),
    (np.where(np.arange(30).reshape(5, 2, 3) == 0, np.nan, 0.0)[::-1], ValueError, "NaN"),
])
def test_bad_x(lstm, x, exc, match):
    with pytest.raises(exc, match=match):
        lstm.forward(x)


@pytest.mark.parametrize("lengths,exc,match", [
    ([1, 6], ValueError, r"\[1, T=5\]"),
    ([0, 3], ValueError, r"\[1, T=5\]"),
    ([1, 2, 3], ValueError, "shape"),
    ([[1, 2]], ValueError, "shape"),
    ([1.0, 2.0], TypeError, "integers"),
])
def test_bad_lengths(lstm, lengths, exc, match):
    with pytest.raises(exc, match=match):
        lstm.forward(X, lengths=lengths)


@pytest.mark.parametrize("hx,match", [
    ((np.zeros((2, 2, 4)),), "tuple"),
    (np.zeros((2, 2, 4)), "tuple"),
    ((np.zeros((1, 2, 4)), np.zeros((2, 2, 4))), "h_0 must have shape"),
    ((np.zeros((2, 2, 4)), np.zeros((2, 3, 4))), "c_0 must have shape"),
    ((np.zeros((2, 2, 4)), np.full((2, 2, 4), np.nan)), "c_0 contains NaN"),
])
def test_bad_hx(lstm, hx, match):
    with pytest.raises(ValueError, match=match):
        lstm.forward(X, hx=hx)


def test_bad_backward_arguments(lstm):
    lstm.forward(X, training=True)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        lstm.backward(np.zeros((5, 2, 5)))
    with pytest.raises(ValueError, match="grad_h_n must have shape"):
        lstm.backward(np.zeros((5, 2, 4)), grad_h_n=np.zeros((2, 2, 5)))
    with pytest.raises(ValueError, match="grad_output contains NaN"):
        lstm.backward(np.full((5, 2, 4), np.nan))
    with pytest.raises(TypeError, match="grad_output"):
        lstm.backward(np.zeros((5, 2, 4), dtype=int))
    lstm.backward(np.zeros((5, 2, 4)))  # the cache survives rejected calls


def test_bad_state_dict(lstm):
    sd = lstm.state_dict()
    del sd["weight_hh_l1"]
    with pytest.raises(ValueError, match="missing keys.*weight_hh_l1"):
        lstm.load_state_dict(sd)
    sd = lstm.state_dict()
    sd["weight_hr_l0"] = np.zeros((1, 4))
    with pytest.raises(ValueError, match="unexpected keys.*weight_hr_l0"):
        lstm.load_state_dict(sd)
    sd = lstm.state_dict()
    sd["bias_ih_l1"] = np.zeros(15)
    with pytest.raises(ValueError, match=r"state_dict\['bias_ih_l1'\] has shape \(15,\)"):
        lstm.load_state_dict(sd)
    before = lstm.state_dict()
    sd = lstm.state_dict()
    sd["weight_ih_l0"] = np.ones_like(sd["weight_ih_l0"])
    sd["weight_hh_l1"] = np.full_like(sd["weight_hh_l1"], np.inf)
    with pytest.raises(ValueError, match="weight_hh_l1"):
        lstm.load_state_dict(sd)
    for k, v in lstm.state_dict().items():  # a rejected dict changes nothing
        np.testing.assert_array_equal(v, before[k])


def test_unbatched_shapes():
    lstm = lstm_fast.LSTM(3, 4, bidirectional=True, random_state=0)
    out, (h, c) = lstm.forward(np.zeros((5, 3)), hx=(np.zeros((2, 4)), np.zeros((2, 4))),
                               lengths=5)
    assert out.shape == (5, 8) and h.shape == (2, 4) and c.shape == (2, 4)
    with pytest.raises(ValueError, match="h_0 must have shape"):
        lstm.forward(np.zeros((5, 3)), hx=(np.zeros((2, 1, 4)), np.zeros((2, 1, 4))))


F32 = np.float32


def _forward_args(**change):
    """Valid forward_layer arguments (float32, T=3, B=2, I=2, H=2; step sizes 2, 2, 1), with some
    replaced."""
    args = dict(x=np.zeros((5, 2), F32), w_ih=np.zeros((8, 2), F32), w_hh=np.zeros((8, 2), F32),
                b_ih=None, b_hh=None, w_hr=None, batch_sizes=np.array([2, 2, 1], np.intp),
                offsets=np.array([0, 2, 4], np.intp), hidden=np.zeros((2, 2), F32),
                cell=np.zeros((2, 2), F32), out=np.zeros((5, 2), F32), out_col=0, reverse=False)
    args.update(change)
    return args


def _backward_args(**change):
    """Valid backward_layer arguments for the same shapes as _forward_args, with some replaced."""
    n = 5
    args = dict(x=np.zeros((n, 2), F32), w_ih=np.zeros((8, 2), F32), w_hh=np.zeros((8, 2), F32),
                w_hr=None, batch_sizes=np.array([2, 2, 1], np.intp),
                offsets=np.array([0, 2, 4], np.intp), d_out=np.zeros((n, 2), F32), out_col=0,
                reverse=False, d_hidden=np.zeros((2, 2), F32), d_cell=np.zeros((2, 2), F32),
                gates=np.zeros((n, 8), F32), tanh_cell=np.zeros((n, 2), F32),
                cell_prev=np.zeros((n, 2), F32), hidden_prev=np.zeros((n, 2), F32),
                d_x=np.zeros((n, 2), F32), d_w_ih=np.zeros((8, 2), F32),
                d_w_hh=np.zeros((8, 2), F32), d_b_ih=None, d_b_hh=None, d_w_hr=None)
    args.update(change)
    return args


# Wrong values of the packed layout, for both entry points.
BAD_STEPS = [
    (dict(batch_sizes=np.array([2, 2, 3], np.intp)), "step 2 has batch_sizes 3"),   # grows
    (dict(batch_sizes=np.array([3, 1, 1], np.intp)), "step 0 has batch_sizes 3"),   # > B
    (dict(batch_sizes=np.array([2, 0, 0], np.intp)), "step 1 has batch_sizes 0"),
    (dict(batch_sizes=np.array([2, -5, 1], np.intp)), "step 1 has batch_sizes -5"),
    (dict(offsets=np.array([0, 2, 5], np.intp)), "step 2 has batch_sizes 1 and offsets 5"),
    (dict(offsets=np.array([1, 3, 5], np.intp)), "step 0 .* offsets 1"),
    (dict(offsets=np.array([0, 2, 10**12], np.intp)), "offsets 1000000000000"),
    (dict(batch_sizes=np.array([2, 1, 1], np.intp), offsets=np.array([0, 2, 3], np.intp)),
     "add up to 4 rows, but x has 5"),
]


@pytest.mark.parametrize("change, exc, match", [
    (dict(x=[[0.0, 0.0]] * 5), TypeError, "x must be a float32 or float64 ndarray"),
    (dict(x=np.zeros((5, 2), np.int64)), TypeError, "x must be a float32 or float64"),
    (dict(w_ih=np.zeros((8, 2))), ValueError, "w_ih must be a C-contiguous float32 array"),
    (dict(w_hh=np.zeros((2, 8), F32).T), ValueError, "w_hh must be a C-contiguous.*not C-cont"),
    (dict(b_ih=np.zeros(7, F32)), ValueError, r"b_ih .* shape \(8,\), got float32 array of "
                                              r"shape \(7,\)"),
    (dict(batch_sizes=np.ones(3, np.int32)), ValueError, "batch_sizes must be"),
    (dict(offsets=np.arange(2, dtype=np.intp)), ValueError, r"offsets .* shape \(3,\)"),
    (dict(out=np.zeros((5, 2), F32)[::-1]), ValueError, "out must be a C-contiguous"),
    (dict(out=np.zeros((5, 2), F32)[:4]), ValueError, r"out must .* shape \(5, 2\)"),
    (dict(cell=np.zeros((2, 2), F32)[:, :, None]), ValueError, "cell must be"),
    (dict(hidden=None), ValueError, "hidden must be .* got NoneType"),
    (dict(hidden=np.zeros((2, 3), F32)), ValueError, r"w_hh must .* shape \(8, 3\)"),
    (dict(w_hr=np.zeros((2, 2), F32), hidden=np.zeros((2, 2), F32), cell=np.zeros((2, 3), F32)),
     ValueError, "w_ih must be"),
    (dict(out_col=1), ValueError, "out_col = 1 and P = 2 columns do not fit"),
    (dict(out_col=-1), ValueError, "out_col = -1"),
    (dict(out_col=2**63 - 1), ValueError, "out_col = 9223372036854775807"),  # out_col + P wraps
    (dict(x=np.zeros((5, 2), ">f4")), ValueError, "x must be .*byte-swapped"),
    (dict(w_ih=np.zeros((8, 2), ">f4")), ValueError, "w_ih must be .*byte-swapped"),
    (dict(w_ih=np.frombuffer(bytes(65), np.uint8)[1:].view(F32).reshape(8, 2)), ValueError,
     "w_ih must be .*not aligned"),
    (dict(gates=np.zeros((5, 8), F32)), ValueError, "tanh_cell must be"),
    (dict(tanh_cell=np.zeros((5, 2), F32)), ValueError, "go with gates"),
    (dict(hidden=np.zeros((2, 2), F32)[:, :1].copy(), w_hh=np.zeros((8, 1), F32),
          out=np.zeros((5, 1), F32)), ValueError, "without w_hr, hidden must have H = 2"),
] + [(change, ValueError, match) for change, match in BAD_STEPS])
def test_forward_layer_refuses_bad_arrays(change, exc, match):
    """The engine's entry point checks its arrays and the packed layout's values itself (no
    memoryview typing): a wrong one is an exception, never a read or write out of bounds."""
    from lstm_fast._lstm import forward_layer

    forward_layer(**_forward_args())
    if exc is None:
        forward_layer(**_forward_args(**change))
        return
    with pytest.raises(exc, match=match):
        forward_layer(**_forward_args(**change))


@pytest.mark.parametrize("change, exc, match", [
    (dict(x=np.zeros((5, 2))), ValueError, "d_hidden must be a C-contiguous writable float64"),
    (dict(w_ih=np.zeros((8, 3), F32)), ValueError, r"w_ih must .* shape \(8, 2\)"),
    (dict(w_hh=np.zeros((8, 2), F32)[::-1]), ValueError, "w_hh must be a C-contiguous"),
    (dict(d_out=np.zeros((4, 2), F32)), ValueError, r"d_out must .* shape \(5, 2\)"),
    (dict(d_out=np.zeros((5, 3), F32), out_col=2), ValueError, "out_col = 2"),
    (dict(d_cell=np.zeros((2, 3), F32)), ValueError, "w_ih must be"),
    (dict(gates=np.zeros((5, 4), F32)), ValueError, r"gates must .* shape \(5, 8\)"),
    (dict(gates=np.zeros((5, 8), F32)[::-1]), ValueError, "gates must be a C-contiguous"),
    (dict(tanh_cell=np.zeros((4, 2), F32)), ValueError, "tanh_cell must be"),
    (dict(cell_prev=np.zeros((5, 3), F32)), ValueError, "cell_prev must be"),
    (dict(hidden_prev=None), ValueError, "hidden_prev must be .* got NoneType"),
    (dict(d_x=np.zeros((5, 2), F32)[:, ::-1]), ValueError, "d_x must be"),
    (dict(d_w_ih=np.zeros((8, 2))), ValueError, "d_w_ih must be .*float32"),
    (dict(d_w_hh=np.zeros((2, 8), F32)), ValueError, "d_w_hh must be"),
    (dict(d_b_ih=np.zeros(4, F32)), ValueError, r"d_b_ih must .* shape \(8,\)"),
    (dict(d_b_hh=np.zeros(8, np.float64)), ValueError, "d_b_hh must be"),
    (dict(d_w_hr=np.zeros((2, 2), F32)), ValueError, "d_w_hr goes with w_hr"),
    (dict(w_hr=np.zeros((2, 2), F32)), ValueError, "d_w_hr must be .* got NoneType"),
    (dict(d_hidden=np.zeros((2, 2), F32)[:, ::-1]), ValueError, "d_hidden must be"),
    (dict(d_w_ih=np.zeros((8, 2), F32)[::2][:0]), ValueError, "d_w_ih must be"),
    (dict(d_w_hh=_readonly(np.zeros((8, 2), F32))), ValueError, "writable.*read-only"),
    (dict(d_b_ih=np.zeros(8, F32), d_b_hh=np.zeros(8, F32)), None, None),
] + [(change, ValueError, match) for change, match in BAD_STEPS])
def test_backward_layer_refuses_bad_arrays(change, exc, match):
    """backward_layer checks every array it is given (the stored ones and the gradients, whose
    shapes it used to trust) and the packed layout's values, as forward_layer does."""
    from lstm_fast._lstm import backward_layer

    backward_layer(**_backward_args())
    if exc is None:
        backward_layer(**_backward_args(**change))
        return
    with pytest.raises(exc, match=match):
        backward_layer(**_backward_args(**change))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 15, 16, 17, 4097, 100003])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finite_check_finds_one_bad_value_anywhere(dtype, size, bad):
    """The vectorised check finds NaN or infinity at the first, a middle and the last element
    (outside the vector-width loop too) and passes the extremes of the finite range."""
    from lstm_fast._checks import check_finite
    finfo = np.finfo(dtype)
    a = np.resize(np.array([finfo.max, -finfo.max, finfo.tiny / 4, -0.0], dtype), size)
    check_finite(a, "a")
    check_finite(a[::-1], "a")  # not contiguous: NumPy's path
    for at in {0, size // 2, size - 1}:
        b = a.copy()
        b[at] = bad
        with pytest.raises(ValueError, match="b contains NaN or infinity"):
            check_finite(b, "b")
        with pytest.raises(ValueError, match="b contains NaN or infinity"):
            check_finite(b[::-1], "b")


def test_prepared_weights_must_be_in_the_workspace():
    """A run of steps after the first skips packing the weights (prepared=True): the workspace
    must hold exactly these weights, packed by the same kind of call, or it is an error."""
    from lstm_fast._lstm import Workspace, backward_layer, forward_layer

    args = _forward_args()
    with pytest.raises(ValueError, match="does not hold these weights"):
        forward_layer(**args, workspace=Workspace(), prepared=True)
    ws = Workspace()
    forward_layer(**args, workspace=ws)
    forward_layer(**args, workspace=ws, prepared=True)
    assert ws.nbytes > 0
    with pytest.raises(ValueError, match="does not hold these weights"):
        forward_layer(**dict(args, w_hh=args["w_hh"].copy()), workspace=ws, prepared=True)
    with pytest.raises(ValueError, match="does not hold these weights"):
        backward_layer(**_backward_args(w_ih=args["w_ih"], w_hh=args["w_hh"]), workspace=ws,
                       prepared=True)


@pytest.mark.parametrize("source_tree", [True, False])
def test_importing_without_the_built_engine_says_why(tmp_path, source_tree):
    """``import lstm_fast`` from the repository root after ``pip install .`` finds the source
    tree's package, which holds no compiled engine: the error says so and what to do."""
    import shutil
    import subprocess
    import sys

    package = os.path.dirname(lstm_fast.__file__)
    shutil.copytree(package, tmp_path / "lstm_fast",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    if source_tree:
        (tmp_path / "setup.py").write_text("")
    # (an editable install's import hook would find the real package first: set it aside)
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in "
            "repr(f).lower()]; import lstm_fast")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: lstm_fast's compiled engine (lstm_fast._lstm) could "
                           "not be imported"), last
    assert "holds no built engine" in last
    if source_tree:
        assert "source tree" in last and "pip install -e ." in last and "another folder" in last
    else:
        assert "source tree" not in last
