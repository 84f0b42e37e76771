"""Mixed-precision training (forward(training=True, precision="bfloat16") + backward, and the
estimators' fit_precision, tested with the estimators): the gradients against a NumPy emulation
of the same rounding and against float32, on every cell and option and under every kernel."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import lstm_fast
from lstm_fast._lstm import PRECISIONS, backward_layer
from lstm_fast.testing import reference_backward, reference_forward

from conftest import run_in_subprocess

CELLS = {"lstm": lstm_fast.LSTM, "gru": lstm_fast.GRU, "rnn_tanh": lstm_fast.RNN}
# Against the emulation: most elements to float32 accumulation order. A pre-activation gradient
# that the engine and the emulation compute a float32 ulp apart (their sums and activations
# differ in the last bit) can round to neighbouring bf16 values, 2^-8 apart, which moves the
# elements it enters (one row of dX and dh_0, one row of each weight gradient): rare, so most
# elements agree to STEP_RTOL and every one within FLIP_RTOL.
STEP_RTOL, AGREEING, FLIP_RTOL = 1e-5, 0.95, 4e-3
# Gradients against float32 training (relative to each gradient's largest element); the outputs
# as for inference (test_precision.py).
GRADS_VS_FLOAT32, OUTPUT_VS_FLOAT32 = 3e-2, {"rnn_tanh": 3e-2}


def _layers():
    """One layer-direction of each cell, with and without projection, one way or both."""
    yield "lstm", dict()
    yield "lstm", dict(proj_size=12)
    yield "lstm", dict(bidirectional=True)
    yield "gru", dict(bidirectional=True)
    yield "rnn_tanh", dict(bidirectional=True)


def _trained(cell, kwargs, x, hx, g, precision, H=48, lengths=None, threads=1,
             run_rows=None):
    """(output, grad_x, grad_hx, grads, layer) of one training step of a fresh float32 layer of
    hidden size H, its engine calls run_rows packed rows at most (None: the layer's choice)."""
    layer = CELLS[cell](x.shape[2], H, dtype=np.float32, random_state=0, **kwargs)
    if run_rows is not None:  # several runs of steps per layer call (PACKED weights)
        layer._call_rows = [(run_rows, run_rows)] * layer.num_layers
    with threadpool_limits(limits=threads):
        out, _ = layer.forward(x, hx=hx, lengths=lengths, training=True, precision=precision)
        grad_x = layer.backward(g(out.shape))
    hx_grad = layer.grad_hx if cell == "lstm" else (layer.grad_hx,)
    return out, grad_x, hx_grad, dict(layer.grads), layer


def _gradient(shape):
    """The same dL/doutput for every call with this shape."""
    return np.random.default_rng(5).standard_normal(shape).astype(np.float32)


def _step_agreement(cell, kwargs, threads=1, B=40, I=7):
    """(fraction of elements within STEP_RTOL, worst relative error) of one step's gradients
    (T = 1: no rounding carried from step to step) against the emulation, over every
    gradient: dX, dh_0 (and dc_0), each parameter's. With 2 threads, B is large enough for
    each direction's call to use both (threads_for)."""
    B = B if threads == 1 else 4 * B
    rng = np.random.default_rng(3)
    D = 2 if kwargs.get("bidirectional") else 1
    P, H = kwargs.get("proj_size") or 72, 72
    x = rng.standard_normal((1, B, I)).astype(np.float32)
    h0 = (rng.standard_normal((D, B, P)) * 0.5).astype(np.float32)
    c0 = (rng.standard_normal((D, B, H)) * 0.5).astype(np.float32)
    hx = (h0, c0) if cell == "lstm" else h0
    g = rng.standard_normal((1, B, D * P)).astype(np.float32)
    _, grad_x, grad_hx, grads, layer = _trained(cell, kwargs, x, hx, lambda s: g, "bfloat16",
                                                H=H, threads=threads)
    _, _, _, cache = reference_forward(layer.state_dict(), x, h0,
                                       c0 if cell == "lstm" else np.zeros((D, B, 0), np.float32),
                                       np.ones(B, int), 1, D == 2, cell=cell,
                                       precision="bfloat16")
    want_x, want, want_h, want_c = reference_backward(layer.state_dict(), cache, g)
    pairs = [(grad_x, want_x), (grad_hx[0], want_h)] + [(grads[k], want[k]) for k in want]
    if cell == "lstm":
        pairs.append((grad_hx[1], want_c))
    agreeing, worst = 1.0, 0.0
    for a, b in pairs:
        scale = np.abs(b).max()
        agreeing = min(agreeing, np.mean(np.abs(a - b) <= STEP_RTOL * scale))
        worst = max(worst, np.abs(a - b).max() / scale)
    return agreeing, worst


def _float32_errors(cell, kwargs):
    """Worst (output, gradient) relative errors of bf16 training against float32 training, a
    long ragged batch in several runs of steps, each over its bound."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 11, 9)).astype(np.float32)
    lengths = rng.integers(1, 41, size=11)
    results = [_trained(cell, kwargs, x, None, _gradient, precision, lengths=lengths,
                        run_rows=48)
               for precision in (None, "bfloat16")]
    (out, gx, ghx, grads, _), (out16, gx16, ghx16, grads16, _) = results
    rel = lambda a, b: np.abs(a - b).max() / np.abs(b).max()
    worst_grad = max([rel(gx16, gx)] + [rel(a, b) for a, b in zip(ghx16, ghx)]
                     + [rel(grads16[k], grads[k]) for k in grads])
    return (rel(out16, out) / OUTPUT_VS_FLOAT32.get(cell, 1e-2),
            worst_grad / GRADS_VS_FLOAT32)


def _kernel_errors():
    """What the kernel test below checks, in one line: the worst agreement, error and
    bound ratios over _layers."""
    steps = [_step_agreement(cell, kw) for cell, kw in _layers()]
    vs = [_float32_errors(cell, kw) for cell, kw in _layers()]
    return (min(a for a, _ in steps), max(w for _, w in steps), max(o for o, _ in vs),
            max(g for _, g in vs))


@pytest.mark.parametrize("cell,kwargs", list(_layers()))
@pytest.mark.parametrize("threads", [1, 2])
def test_one_step_matches_the_emulation(cell, kwargs, threads):
    agreeing, worst = _step_agreement(cell, kwargs, threads)
    assert agreeing >= AGREEING and worst <= FLIP_RTOL, (agreeing, worst)


@pytest.mark.parametrize("cell,kwargs", [("lstm", dict(num_layers=2, proj_size=16)),
                                         ("lstm", dict(num_layers=2, bidirectional=True)),
                                         ("gru", dict(num_layers=2, bidirectional=True)),
                                         ("rnn_tanh", dict(bidirectional=True))])
def test_close_to_float32_training(cell, kwargs):
    out, grads = _float32_errors(cell, kwargs)
    assert out <= 1 and grads <= 1, (out, grads)


@pytest.mark.parametrize("kernel", ["auto", "amx", "avx512_bf16", "avx512", "avx2", "blas"])
def test_every_kernel_trains_like_the_emulation(kernel):
    """Each kernel LSTM_FAST_KERNEL can force (the ones this CPU lacks fall back to the best it
    has): its bf16 products in training, against the emulation and float32."""
    agreeing, worst, out, grads = run_in_subprocess(
        "test_mixed_precision", "*t._kernel_errors()",
        {} if kernel == "auto" else {"LSTM_FAST_KERNEL": kernel})
    assert float(agreeing) >= AGREEING and float(worst) <= FLIP_RTOL, (agreeing, worst)
    assert float(out) <= 1 and float(grads) <= 1, (out, grads)


def test_threads_give_the_same_bits():
    x = np.random.default_rng(9).standard_normal((20, 64, 16)).astype(np.float32)
    (o1, x1, h1, w1, _), (o2, x2, h2, w2, _) = [
        _trained("lstm", {}, x, None, _gradient, "bfloat16", threads=t)
        for t in (1, 2)]
    for a, b in [(o1, o2), (x1, x2)] + list(zip(h1, h2)) + [(w1[k], w2[k]) for k in w1]:
        np.testing.assert_array_equal(a, b)


def test_int8_training_and_float64_are_refused():
    layer = lstm_fast.LSTM(2, 4, dtype=np.float32, random_state=0)
    with pytest.raises(ValueError, match="int8.*for inference.*precision='bfloat16'"):
        layer.forward(np.zeros((3, 1, 2), np.float32), training=True, precision="int8")
    wide = lstm_fast.LSTM(2, 4, dtype=np.float64, random_state=0)
    with pytest.raises(ValueError, match="runs float32 layers"):
        wide.forward(np.zeros((3, 1, 2)), training=True, precision="bfloat16")


@pytest.mark.parametrize("precision,dtype,error,match", [
    ("int8", np.float32, ValueError, "INT8 is for inference"),
    ("bfloat16", np.float64, TypeError, "takes float32 arrays"),
])
def test_the_engine_refuses_what_backward_cannot_do(precision, dtype, error, match):
    N, I, H = 3, 2, 4
    z = lambda *s: np.zeros(s, dtype)
    steps = np.ones(N, np.intp), np.arange(N, dtype=np.intp)
    with pytest.raises(error, match=match):
        backward_layer(z(N, I), z(4 * H, I), z(4 * H, H), None, *steps, z(N, H), 0, False,
                       z(1, H), z(1, H), z(N, 4 * H), z(N, H), z(N, H), z(N, H), z(N, I),
                       z(4 * H, I), z(4 * H, H), z(4 * H), z(4 * H), None,
                       precision=PRECISIONS[precision])
