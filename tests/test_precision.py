"""Reduced-precision inference (precision="bfloat16" and "int8"): the rounding and quantisation,
the products of every route (AMX tiles, AVX512-BF16, the float32 units on rounded or quantised
values) against a NumPy emulation, the layers' outputs against that emulation and against
float32, and the errors for what is not supported."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import lstm_fast
from lstm_fast._lstm import bfloat16_peak, build_info, fma_peak, matmul_reduced, reduced_route
from lstm_fast.testing import quantize_int8, reference_forward, round_bfloat16

from conftest import run_in_subprocess

# A product of bf16-rounded operands, summed in float32, against the same summed exactly:
# K terms of float32 rounding, far below this for the shapes here.
PRODUCT_RTOL = 1e-5
# One step of a layer from the engine's own previous state, against the emulation.
STEP_RTOL = 1e-5
# Whole outputs against float32 (the bounds). A plain RNN's state goes through its weights
# at every step, ungated, and carries each step's rounding further: its bounds are looser.
VS_FLOAT32 = {"bfloat16": 1e-2, "int8": 3e-2}
RNN_VS_FLOAT32 = {"bfloat16": 3e-2, "int8": 9e-2}
PRECISIONS = ["bfloat16", "int8"]
# The units of each precision, lesser first (build_info names the best this CPU allows).
UNITS = {"bfloat16": ["float32", "avx512_bf16", "amx"],
         "int8": ["float32", "avx_vnni", "avx512_vnni", "amx"]}

CELLS = {"lstm": lstm_fast.LSTM, "gru": lstm_fast.GRU, "rnn_tanh": lstm_fast.RNN}


def test_rounding_is_to_nearest_even():
    one = 1.0
    ulp = 2.0 ** -7  # bf16 has 8 significant bits: 1 + 2^-7 is the next one after 1
    x = np.array([one, one + ulp / 2, one + 3 * ulp / 2, one + ulp / 2 + 2 ** -20, -2.5,
                  1e-39, -1e-39, np.inf, -np.inf, 3.4e38, 0.0, -0.0], dtype=np.float32)
    want = np.array([one, one, one + 2 * ulp, one + ulp, -2.5, 0.0, -0.0, np.inf, -np.inf,
                     np.inf, 0.0, -0.0], dtype=np.float32)
    got = round_bfloat16(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert np.signbit(got[6]) and not np.signbit(got[5])
    assert np.isnan(round_bfloat16(np.float32(np.nan)))
    # every result is a bf16 number: its low 16 bits are zero
    values = np.random.default_rng(0).standard_normal(10000).astype(np.float32) * 100
    assert not np.any(round_bfloat16(values).view(np.uint32) & 0xFFFF)


def test_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(1).standard_normal(100000).astype(np.float32)
    values *= np.float32(10.0) ** np.random.default_rng(2).integers(-30, 30, values.size)
    want = torch.from_numpy(values).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(round_bfloat16(values), want)


def _emulated(precision, a, b):
    if precision == "int8":
        qa, sa = quantize_int8(a)
        qb, sb = quantize_int8(b.T)  # the columns of b are the output channels
        return sa[:, None].astype(np.float64) * (qa @ qb.T) * sb.astype(np.float64)
    return round_bfloat16(a).astype(np.float64) @ round_bfloat16(b).astype(np.float64)


def test_quantisation_is_per_row_to_nearest_even():
    q, s = quantize_int8([[127.0, 0.5, 1.5, -2.5, -127.0, 63.5], [0.0] * 6, [254.0] + [1.0] * 5])
    np.testing.assert_array_equal(s, np.float32([1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(q, [[127, 0, 2, -2, -127, 64], [0] * 6, [127] + [0] * 5])


def _routes(precision):
    """The routes of `precision` this CPU (and LSTM_FAST_KERNEL) runs: at least every unit up to
    the best in UNITS' order, the 256-bit int8 one aside (only where the CPU has it, or forced)."""
    from lstm_fast._lstm import reduced_routes

    best = build_info()[f"{precision}_kernel"]
    order = [u for u in UNITS[precision] if u != "avx_vnni" or u == best]
    runs = reduced_routes(precision)
    assert set(order[:order.index(best) + 1]) <= set(runs), (best, runs)
    return runs


def _product_errors():
    """The worst relative error of matmul_reduced on every route of both precisions here, over
    shapes that cover every tile edge (rows of 1-12 and 32-row blocks, 16- and 32-column panels,
    depths not a multiple of 32 or 64, two segments, column parts); run under each kernel by
    the test below."""
    return max(_route_errors(p, route) for p in PRECISIONS for route in _routes(p))


def _route_errors(precision, route):
    rng = np.random.default_rng(0)
    worst = 0.0
    for m, n, k, k2 in [(1, 1, 1, 0), (1, 1024, 256, 256), (2, 40, 9, 0), (3, 17, 5, 0),
                        (4, 16, 3, 2), (5, 48, 130, 0), (12, 32, 64, 0),
                        (13, 48, 31, 33), (16, 16, 32, 32), (17, 33, 40, 7), (32, 64, 256, 0),
                        (33, 100, 70, 9), (64, 256, 96, 64), (70, 20, 300, 0)]:
        for parts in (1, 3):
            for beta in (False, True):
                a = rng.standard_normal((m, k), dtype=np.float32)
                b = rng.standard_normal((k, n), dtype=np.float32)
                a2 = rng.standard_normal((m, k2), dtype=np.float32) if k2 else None
                b2 = rng.standard_normal((k2, n), dtype=np.float32) if k2 else None
                c0 = rng.standard_normal((m, n), dtype=np.float32)
                c = c0.copy()
                matmul_reduced(precision, a, b, c, beta, parts, a2, b2, route)
                want = (_emulated(precision, a, b) + (c0 if beta else 0)
                        + (_emulated(precision, a2, b2) if k2 else 0))
                worst = max(worst, np.abs(c - want).max() / np.abs(want).max())
    return worst


def _layers():
    """Layers covering every option: cells, layers, directions, projection."""
    yield "lstm", dict()
    yield "lstm", dict(num_layers=2, bidirectional=True)
    yield "lstm", dict(proj_size=12)
    yield "gru", dict(num_layers=2, bidirectional=True)
    yield "rnn_tanh", dict(bidirectional=True)


def _teacher_forced_errors(cell, kwargs, precision, T=9, B=6, I=7, H=40, threads=1):
    """The worst relative error of each step of a reduced-precision layer (one layer) against the
    emulation
    of that step from the engine's own previous state: the recurrence is cut at every step, so
    a rounding that went one way in the engine and the other in the emulation (their sums
    differ in the last float32 bit) cannot grow through the sequence. With a projection, whose
    input r_t = o tanh(c_t) is itself rounded within the step, the step's c_t is compared (the
    projection's product is checked on its own by _product_errors)."""
    rng = np.random.default_rng(3)
    layer = CELLS[cell](I, H, dtype=np.float32, random_state=0, **kwargs)
    params = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    D, P = layer.num_directions, layer.output_size
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = rng.standard_normal((D, B, P)).astype(np.float32) * 0.5
    c0 = rng.standard_normal((D, B, H)).astype(np.float32) * 0.5
    hx = (h0, c0) if cell == "lstm" else h0
    with threadpool_limits(limits=threads):
        out, _, gates = layer.forward(x, hx=hx, return_gates=True, precision=precision)
    worst = 0.0
    for d in range(D):
        names = {k: k + "_l0" + ("_reverse" if d else "") for k in
                 ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")}
        step_params = {k + "_l0": params[v] for k, v in names.items() if v in params}
        h = out[:, :, d * P:(d + 1) * P]
        c = gates[d]["c"] if cell == "lstm" else np.zeros((T, B, 0))
        for t in range(T):
            prev = t + 1 if d else t - 1
            first = prev < 0 or prev >= T
            h_prev = h0[d] if first else h[prev]
            c_prev = (c0[d] if first else c[prev]) if cell == "lstm" else np.zeros((B, 0))
            want, _, want_c, _ = reference_forward(step_params, x[t:t + 1].astype(np.float64),
                                                   h_prev[None].astype(np.float64),
                                                   c_prev[None].astype(np.float64),
                                                   np.ones(B, int), 1, False, cell=cell,
                                                   precision=precision)
            pairs = [(c[t], want_c[0])] if cell == "lstm" else []
            if not layer.proj_size:
                pairs.append((h[t], want[0]))
            worst = max([worst] + [np.abs(a - b).max() / np.abs(b).max() for a, b in pairs])
    return worst


def _layer_errors(precision):
    """Worst errors of reduced-precision layers: (teacher-forced against the emulation, whole
    outputs against float32 over the bound); run under each kernel by the test below."""
    forced = max(_teacher_forced_errors(cell, {k: v for k, v in kw.items() if k != "num_layers"},
                                        precision) for cell, kw in _layers())
    rng = np.random.default_rng(4)
    vs_float32 = 0.0
    for cell, kw in _layers():
        layer = CELLS[cell](9, 48, dtype=np.float32, random_state=1, **kw)
        x = rng.standard_normal((25, 11, 9)).astype(np.float32)
        lengths = rng.integers(1, 26, size=11)
        want, _ = layer.forward(x, lengths=lengths)
        got, _ = layer.forward(x, lengths=lengths, precision=precision)
        bound = (RNN_VS_FLOAT32 if cell == "rnn_tanh" else VS_FLOAT32)[precision]
        vs_float32 = max(vs_float32, np.abs(got - want).max() / np.abs(want).max() / bound)
    return forced, vs_float32


def _cpu_flags():
    """This CPU's feature flags, as Linux names them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f
                         if line.startswith("flags")), [])
    except OSError:
        return []


def _expected_kernel(forced, precision):
    """The unit of `precision` that LSTM_FAST_KERNEL=forced should choose on this CPU."""
    best = build_info()[f"{precision}_kernel"]  # this process's: the best the CPU and OS allow
    order = UNITS[precision]
    if forced == "avx_vnni":  # int8's 256-bit vpdpbusd: AVX-VNNI's, or AVX512-VNNI's EVEX form
        flags = set(_cpu_flags())
        has = "avx_vnni" in flags or {"avx512_vnni", "avx512vl"} <= flags
        return "avx_vnni" if precision == "int8" and has and best != "float32" else "float32"
    # either AVX-512 dot-product kernel forced means both (no AMX); lesser kernels: float32
    top = {"auto": "amx", "amx": "amx", "avx512_bf16": "avx512_bf16",
           "avx512_vnni": "avx512_vnni"}.get(forced)
    if top is None:
        return "float32"
    if top in ("avx512_bf16", "avx512_vnni"):
        top = "avx512_bf16" if precision == "bfloat16" else "avx512_vnni"
        if best not in (top, "amx"):  # no AVX-512 dot-product unit: not the 256-bit one either
            return "float32"
    return order[min(order.index(best), order.index(top))]


def _run(call, kernel):
    """`call` (code using this module) in a fresh interpreter under LSTM_FAST_KERNEL=kernel: the
    units it chose and what the call printed."""
    return run_in_subprocess(
        "test_precision", f"build_info()['bfloat16_kernel'], build_info()['int8_kernel'], {call}",
        {} if kernel == "auto" else {"LSTM_FAST_KERNEL": kernel})


@pytest.mark.parametrize("kernel", ["auto", "amx", "avx512_bf16", "avx512_vnni", "avx_vnni",
                                    "avx512", "avx2", "blas"])
def test_every_kernel_matches_the_emulation(kernel):
    """Forced, a unit runs at every batch (B = 6 here, below where the tiles pay); lesser kernels
    take the float32 route on their own products (AVX2, BLAS)."""
    bf16, int8, batch_1, product, *errors = _run(
        "build_info()['bfloat16_batch_1'], t._product_errors(), *t._layer_errors('bfloat16'), "
        "*t._layer_errors('int8')", kernel)
    assert bf16 == _expected_kernel(kernel, "bfloat16")
    assert int8 == _expected_kernel(kernel, "int8")
    if kernel != "auto":
        assert batch_1 == bf16
    assert float(product) <= PRODUCT_RTOL, f"{bf16}, {int8}: products {product}"
    for precision, forced, vs_float32 in zip(PRECISIONS, errors[::2], errors[1::2]):
        assert float(forced) <= STEP_RTOL, f"{precision}: steps {forced}"
        assert float(vs_float32) <= 1, f"{precision}: against float32 {vs_float32} x the bound"


def test_small_batches_take_vdpbf16ps_where_it_outruns_the_fmas():
    """Below the tiles' batch (or without AMX) bf16 takes vdpbf16ps only where its chains beat
    the FMA chains by 1.25x, as measured once at load; here the same probes, longer."""
    if build_info()["bfloat16_kernel"] not in ("avx512_bf16", "amx"):
        pytest.skip("no AVX512-BF16 here")
    ratio = bfloat16_peak(1, 5_000_000) / fma_peak(False, 1, 5_000_000)
    if 1.1 < ratio < 1.4:
        pytest.skip(f"vdpbf16ps {ratio:.2f}x the FMAs: too near the threshold to tell")
    assert build_info()["bfloat16_batch_1"] == ("avx512_bf16" if ratio > 1.25 else "float32")


def test_products_here_match_the_emulation():
    assert _product_errors() <= PRODUCT_RTOL


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("cell,kwargs", list(_layers()))
@pytest.mark.parametrize("threads", [1, 2])
def test_each_step_matches_the_emulation(cell, kwargs, threads, precision):
    kwargs = {k: v for k, v in kwargs.items() if k != "num_layers"}
    assert _teacher_forced_errors(cell, kwargs, precision, B=40, H=72,
                                  threads=threads) <= STEP_RTOL


@pytest.mark.parametrize("precision,training", [("bfloat16", False), ("bfloat16", True),
                                                ("int8", False)])
def test_runs_of_steps_take_the_route_of_the_largest_batch(precision, training):
    """A layer call in runs of steps chooses its route by its largest batch, whichever run comes
    first: the reverse direction's first run, and the backward's, is the last, here of batch 1.
    The route depends on the batch on AMX machines (tiles from batch 8) and where vdpbf16ps
    does not outrun the FMAs; elsewhere every batch takes the same one."""
    layer = lstm_fast.LSTM(3, 8, bidirectional=True, dtype=np.float32, random_state=0)
    layer._call_rows = [(16, 16)]  # runs of at most 16 rows
    x = np.random.default_rng(7).standard_normal((6, 16, 3)).astype(np.float32)
    lengths = [6] + [1] * 15  # steps of 16, 1, 1, 1, 1, 1 sequences
    out, _ = layer.forward(x, lengths=lengths, precision=precision, training=training)
    if training:
        layer.backward(np.ones_like(out))
    for d in (0, 1):
        assert layer._workspaces[0, d][0].route == reduced_route(precision, 16), d


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_emulation_of_a_whole_sequence_agrees(precision):
    """Without cutting the recurrence: the emulation of the whole sequence, every option."""
    rng = np.random.default_rng(5)
    layer = lstm_fast.LSTM(6, 32, num_layers=2, bidirectional=True, proj_size=16,
                           dtype=np.float32, random_state=2)
    x = rng.standard_normal((12, 5, 6)).astype(np.float32)
    lengths = np.array([12, 3, 7, 1, 12])
    got, (h_n, c_n) = layer.forward(x, lengths=lengths, precision=precision)
    params = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    want, want_h, want_c, _ = reference_forward(params, x.astype(np.float64), np.zeros((4, 5, 16)),
                                                np.zeros((4, 5, 32)), lengths, 2, True,
                                                precision=precision)
    for a, b in ((got, want), (h_n, want_h), (c_n, want_c)):
        # a sum that differs in its last bit can round the next step's input the other way,
        # which the following steps carry (bounded by the bf16 step, 2^-8 relative)
        assert np.abs(a - b).max() / np.abs(b).max() <= 4e-3


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_close_to_float32_with_every_option(cell, precision):
    rng = np.random.default_rng(6)
    extra = dict(proj_size=8) if cell == "lstm" else {}
    layer = CELLS[cell](5, 24, num_layers=2, bidirectional=True, batch_first=True,
                        dtype=np.float32, random_state=3, **extra)
    x = rng.standard_normal((4, 10, 5)).astype(np.float32)
    lengths = [10, 2, 7, 10]
    h0 = rng.standard_normal((4, 4, layer.output_size)).astype(np.float32)
    hx = (h0, rng.standard_normal((4, 4, 24)).astype(np.float32)) if cell == "lstm" else h0
    want, want_state = layer.forward(x, hx=hx, lengths=lengths)
    got, got_state = layer.forward(x, hx=hx, lengths=lengths, precision=precision)
    assert got.shape == want.shape and got.dtype == np.float32
    bound = (RNN_VS_FLOAT32 if cell == "rnn_tanh" else VS_FLOAT32)[precision]
    assert np.abs(got - want).max() / np.abs(want).max() <= bound
    assert 0 < np.abs(got - want).max()  # it did round
    np.testing.assert_array_equal(got[1, 2:], 0)  # padding stays zero
    for a, b in zip(np.atleast_1d(got_state) if cell != "lstm" else got_state,
                    np.atleast_1d(want_state) if cell != "lstm" else want_state):
        assert np.abs(a - b).max() / np.abs(b).max() <= bound


@pytest.mark.parametrize("precision", PRECISIONS)
def test_unbatched_and_stream_calls(precision):
    layer = lstm_fast.LSTM(3, 16, dtype=np.float32, random_state=0)
    x = np.random.default_rng(7).standard_normal((8, 3)).astype(np.float32)
    whole, (h, c) = layer.forward(x, precision=precision)
    state = None
    for t in range(8):  # B = 1, T = 1 calls reuse the packed weights
        step, state = layer.forward(x[t:t + 1], hx=state, precision=precision)
        np.testing.assert_array_equal(step[0], whole[t])
    np.testing.assert_array_equal(state[0], h)


def test_packed_weights_follow_the_weights_and_the_precision():
    rng = np.random.default_rng(8)
    layer = lstm_fast.LSTM(4, 32, dtype=np.float32, random_state=0)
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    first, _ = layer.forward(x, precision="bfloat16")
    native, _ = layer.forward(x)
    int8, _ = layer.forward(x, precision="int8")
    np.testing.assert_array_equal(layer.forward(x, precision="bfloat16")[0], first)
    assert not np.array_equal(native, first) and not np.array_equal(int8, first)
    np.testing.assert_array_equal(layer.forward(x)[0], native)
    np.testing.assert_array_equal(layer.forward(x, precision="int8")[0], int8)
    layer.weight_hh_l0 = layer.weight_hh_l0 * 0.5  # a change through the layer repacks
    fresh = lstm_fast.LSTM(4, 32, dtype=np.float32, random_state=0)
    fresh.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(layer.forward(x, precision="bfloat16")[0],
                                  fresh.forward(x, precision="bfloat16")[0])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_threads_give_the_same_bits(precision):
    layer = lstm_fast.LSTM(16, 256, dtype=np.float32, random_state=0)
    x = np.random.default_rng(9).standard_normal((20, 64, 16)).astype(np.float32)
    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            results.append(layer.forward(x, precision=precision)[0])
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("precision,dtype,training,match", [
    ("int4", np.float32, False, "precision must be None, 'bfloat16' or 'int8'"),
    ("bf16", np.float32, False, "precision must be"),
    (16, np.float32, False, "precision must be"),
    ("bfloat16", np.float64, False, "runs float32 layers.*float64"),
    ("int8", np.float64, False, "precision='int8' runs float32 layers"),
    ("int8", np.float32, True, "int8.*for inference"),
])
def test_unsupported_precisions_are_refused(precision, dtype, training, match):
    layer = lstm_fast.LSTM(2, 4, dtype=dtype, random_state=0)
    with pytest.raises(ValueError, match=match):
        layer.forward(np.zeros((3, 1, 2), dtype), training=training, precision=precision)


def test_the_layer_dtype_names_itself():
    layer = lstm_fast.LSTM(2, 4, dtype=np.float64, random_state=0)
    x = np.ones((3, 1, 2))
    np.testing.assert_array_equal(layer.forward(x, precision="float64")[0], layer.forward(x)[0])


def test_estimators_predict_in_bfloat16():
    rng = np.random.default_rng(10)
    X = rng.standard_normal((120, 15, 3)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    clf = lstm_fast.LSTMClassifier(hidden_size=32, max_iter=15, random_state=0).fit(X, y)
    native = clf.predict_proba(X)
    clf.set_params(predict_precision="int8")
    int8 = clf.predict_proba(X)
    assert 0 < np.abs(int8 - native).max() < 5e-2
    assert np.mean(clf.predict(X) == np.argmax(native, axis=1)) >= 0.95
    clf.set_params(predict_precision="bfloat16")  # set after fit: predict follows it
    reduced = clf.predict_proba(X)
    assert 0 < np.abs(reduced - native).max() < 2e-2
    assert np.mean(clf.predict(X) == np.argmax(native, axis=1)) >= 0.95
    fitted_in_bf16 = lstm_fast.LSTMClassifier(hidden_size=32, max_iter=15, random_state=0,
                                              predict_precision="bfloat16").fit(X, y)
    np.testing.assert_array_equal(fitted_in_bf16.predict_proba(X), reduced)  # fit unaffected


def test_streams_and_forecasts_follow_predict_precision():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((40, 12, 2)).astype(np.float32)
    y = rng.standard_normal((40, 12))
    reg = lstm_fast.LSTMSequenceRegressor(hidden_size=16, max_iter=5, random_state=0,
                                          predict_precision="bfloat16").fit(X, y)
    stream = reg.stream()
    chunks = np.concatenate([stream.update(X[:3, :5]), stream.update(X[:3, 5:])], axis=1)
    np.testing.assert_allclose(chunks, reg.predict(X[:3]), rtol=1e-6, atol=1e-6)
    series = np.sin(np.arange(150) / 5.0)
    f = lstm_fast.LSTMForecaster(window=12, horizon=4, max_iter=5, random_state=0).fit(series)
    native = f.predict(8)
    reduced = f.set_params(predict_precision="bfloat16").predict(8)
    assert 0 < np.abs(reduced - native).max() < 5e-2


def test_predict_precision_is_checked():
    X = np.zeros((10, 4, 2))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="predict_precision"):
        lstm_fast.LSTMClassifier(predict_precision="int4", max_iter=1).fit(X, y)
    clf = lstm_fast.LSTMClassifier(dtype="float64", max_iter=1, predict_precision="bfloat16")
    with pytest.raises(ValueError, match="predict_precision='bfloat16' needs dtype='float32'"):
        clf.fit(X, y).predict(X)
