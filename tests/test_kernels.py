"""The engine's kernels on their own: sigmoid/tanh accuracy, the packed products, every kernel
choice (AVX-512, AVX2, BLAS) and thread count against the NumPy reference."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import lstm_fast
from lstm_fast._lstm import activations, build_info, matmul
from lstm_fast.testing import reference_backward, reference_forward

from conftest import RTOL, assert_close, needs_packed_kernel, run_in_subprocess

# Largest relative error allowed for sigmoid and tanh, in units of the dtype's epsilon.
ULPS = 8


@pytest.mark.parametrize("avx512", [True, False], ids=["avx512", "portable"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_are_accurate_everywhere(dtype, avx512):
    rng = np.random.default_rng(0)
    x = np.concatenate([
        np.linspace(-30, 30, 200001),
        rng.standard_normal(10000) * 1e-4,
        np.geomspace(1e-30, 1e3, 2000), -np.geomspace(1e-30, 1e3, 2000),
        [0.0, -0.0, 1e4, -1e4, np.finfo(dtype).max, -np.finfo(dtype).max],
    ]).astype(dtype)
    sig, th = np.empty_like(x), np.empty_like(x)
    ran_avx512 = activations(x, sig, th, avx512)
    assert ran_avx512 == (avx512 and build_info()["gate_kernels"] == "avx512")
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        sig_true = np.where(x64 >= 0, 1 / (1 + np.exp(-np.abs(x64))),
                            np.exp(-np.abs(x64)) / (1 + np.exp(-np.abs(x64))))
    th_true = np.tanh(x64)
    eps = np.finfo(dtype).eps
    tiny = np.finfo(dtype).tiny
    for got, want, name in ((sig, sig_true, "sigmoid"), (th, th_true, "tanh")):
        assert np.all(np.isfinite(got)), name
        err = np.abs(got - want) / np.maximum(np.abs(want), tiny / eps)
        assert err.max() <= ULPS * eps, f"{name}: {err.max() / eps:.1f} ulp at x={x[err.argmax()]}"
    assert np.all((sig >= 0) & (sig <= 1)) and np.all(np.abs(th) <= 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 256, 64), (1, 200, 5), (1, 40, 3), (5, 37, 7),
                                   (12, 32, 16), (13, 33, 300), (40, 100, 513), (3, 1024, 256)])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_packed_matmul_matches_numpy(dtype, trans_a, m, n, k, beta):
    rng = np.random.default_rng(m * 1000 + n + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    want = (a.T if trans_a else a).astype(np.float64) @ b + beta * c0
    for parts in (1, 2, 3):
        c = c0.copy()
        matmul(trans_a, a, b, c, dtype(beta), parts)
        assert_close(c, want, dtype, f"parts={parts}")


@needs_packed_kernel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, 64, 200])
def test_one_row_gets_the_same_bits_as_in_a_tile(dtype, n):
    """A one-row product has a path of its own (several panels at once): its sums are the same,
    in the same order, as that row's in a taller product, so the bits are equal."""
    rng = np.random.default_rng(n)
    a = rng.standard_normal((7, 45)).astype(dtype)
    b = rng.standard_normal((45, n)).astype(dtype)
    c0 = rng.standard_normal((7, n)).astype(dtype)
    tall = c0.copy()
    matmul(False, a, b, tall, dtype(1), 1)
    for r in (0, 6):
        row = c0[r:r + 1].copy()
        matmul(False, a[r:r + 1], b, row, dtype(1), 1)
        np.testing.assert_array_equal(row[0], tall[r])


def test_build_info_names_the_kernels():
    info = build_info()
    assert info["matmul_kernel"] in ("avx512", "avx2", "blas")
    assert info["max_threads"] >= 1


def _reference_errors(dtype_name):
    """Max relative error of forward+backward against the reference, over a few configurations
    large enough to use both threads, on two threads. Run in a subprocess by the test below."""
    with threadpool_limits(limits=2):
        return _reference_errors_here(np.dtype(dtype_name).type)


def _layer(cell, I, H, **kwargs):
    if cell == "lstm":
        return lstm_fast.LSTM(I, H, **kwargs)
    if cell == "gru":
        return lstm_fast.GRU(I, H, **kwargs)
    return lstm_fast.RNN(I, H, nonlinearity=cell[4:], **kwargs)


def _reference_errors_here(dtype):
    worst = 0.0
    rng = np.random.default_rng(0)
    # (cell, bidirectional, proj_size, lengths, B, H): each large enough for two threads (a GRU
    # at batch 2: with its input projection hoisted)
    lengths = [30, 12, 25, 1] * 8
    configs = [("lstm", False, 0, None, 16, 64), ("lstm", True, 16, lengths[:16], 16, 64),
               ("gru", False, 0, None, 32, 64), ("gru", True, 0, lengths, 32, 64),
               ("gru", False, 0, [30, 7], 2, 256)] + [
        (cell, bidirectional, 0, lengths if bidirectional else None, 32, 128)
        for cell in ("rnn_tanh", "rnn_relu") for bidirectional in (False, True)]
    for cell, bidirectional, proj_size, lengths, B, H in configs:
        T, I = 30, 8
        extra = dict(proj_size=proj_size) if cell == "lstm" else {}
        lstm = _layer(cell, I, H, num_layers=2, bidirectional=bidirectional, dtype=dtype,
                      random_state=0, **extra)
        x = rng.standard_normal((T, B, I)).astype(dtype)
        out, _ = lstm.forward(x, lengths=lengths, training=True)
        g = rng.standard_normal(out.shape).astype(dtype)
        grad_x = lstm.backward(g)
        params = {k: v.astype(np.float64) for k, v in lstm.state_dict().items()}
        D, P = lstm.num_directions, lstm.output_size
        zeros = (np.zeros((2 * D, B, P)), np.zeros((2 * D, B, H if cell == "lstm" else 0)))
        lens = np.full(B, T) if lengths is None else np.array(lengths)
        r_out, _, _, cache = reference_forward(params, x, *zeros, lens, 2, bidirectional,
                                               cell=cell)
        r_gx, r_grads, _, _ = reference_backward(params, cache, g)
        pairs = [(out, r_out), (grad_x, r_gx)] + [(lstm.grads[k], r_grads[k]) for k in r_grads]
        for got, want in pairs:
            scale = max(1.0, np.abs(want).max())
            worst = max(worst, np.abs(got - want).max() / scale)
    return worst


@pytest.mark.parametrize("kernel,split", [("auto", "auto"), ("auto", "rows"), ("auto", "columns"),
                                          ("avx2", "auto"), ("blas", "auto")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_kernel_choice_matches_reference(kernel, split, dtype):
    env = {} if kernel == "auto" else {"LSTM_FAST_KERNEL": kernel}
    if split != "auto":
        env["LSTM_FAST_SPLIT"] = split
    used, err = _run_in_subprocess(f"t._reference_errors({dtype!r})", env)
    if kernel != "auto":
        assert used in (kernel, "blas")  # a CPU without AVX2 falls back to BLAS
    assert float(err) <= RTOL[np.dtype(dtype).type], f"{used}: {err}"


def _thread_bits_differ(dtype_name):
    """How many arrays (outputs, states, every gradient) differ bitwise between 1 and 2 threads.
    Run in a subprocess by the tests below."""
    dtype = np.dtype(dtype_name).type
    rng = np.random.default_rng(1)
    differ = 0
    # One direction: both threads walk each time loop; two: one direction each.
    for bidirectional in (False, True):
        lstm = lstm_fast.LSTM(8, 64, num_layers=2, bidirectional=bidirectional, proj_size=32,
                              dtype=dtype, random_state=0)
        x = rng.standard_normal((20, 32, 8)).astype(dtype)
        lengths = rng.integers(1, 21, size=32)
        g = rng.standard_normal((20, 32, 32 * lstm.num_directions)).astype(dtype)
        results = []
        for threads in (1, 2):
            with threadpool_limits(limits=threads):
                lstm.zero_grad()
                out, (h, c) = lstm.forward(x, lengths=lengths, training=True)
                grad_x = lstm.backward(g)
                results.append([out, h, c, grad_x] + [v.copy() for v in lstm.grads.values()])
        differ += sum(not np.array_equal(one, two) for one, two in zip(*results))
    return differ


def _run_in_subprocess(call, env_vars):
    """The matmul kernel chosen and what `call` (code using this module) printed, in a fresh
    interpreter with extra environment variables (see conftest.run_in_subprocess)."""
    return run_in_subprocess("test_kernels", f"build_info()['matmul_kernel'], {call}", env_vars)


@pytest.mark.parametrize("split", ["auto", "rows", "columns"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_threads_give_the_same_bits_as_one(dtype, split):
    """However the two threads share the time loops (by sequences or by weight columns)."""
    env = {} if split == "auto" else {"LSTM_FAST_SPLIT": split}
    _, differ = _run_in_subprocess(f"t._thread_bits_differ({dtype!r})", env)
    assert int(differ) == 0


def _concurrent_bits_differ(dtype_name):
    """How many arrays (outputs, input and weight gradients) differ bitwise between calls made one
    at a time and the same calls made from three threads at once, each on a team of two OpenMP
    threads meeting at the time loops' barriers: six threads share the cores. Run in a subprocess
    by the test below."""
    dtype = np.dtype(dtype_name).type
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((10, 32, 16)).astype(dtype) for _ in range(3)]
    g = rng.standard_normal((10, 32, 64)).astype(dtype)

    def run(x):
        lstm = lstm_fast.LSTM(16, 64, dtype=dtype, random_state=0)
        out, _ = lstm.forward(x, training=True)
        return [out, lstm.backward(g)] + list(lstm.grads.values())

    alone = [run(x) for x in xs]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(run, xs * 2))
    return sum(not np.array_equal(a, b)
               for want, got in zip(alone * 2, together) for a, b in zip(want, got))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_teams_in_several_threads_at_once(dtype):
    """Time loops split by columns (a barrier after each product and pass) on two threads each,
    from three Python threads at once: the same bits as one at a time, and no hang when the
    threads outnumber the cores (a waiter yields its core)."""
    env = {"LSTM_FAST_SPLIT": "columns", "OMP_NUM_THREADS": "2"}
    _, differ = _run_in_subprocess(f"t._concurrent_bits_differ({dtype!r})", env)
    assert int(differ) == 0


def _hidden_filling(budget, I, project):
    """The largest H whose float32 weights (I + H) 4H [+ H H] fit in `budget` bytes."""
    H = 1
    while ((I + H + 1) * 4 * (H + 1) + (H + 1) ** 2 * project) * 4 <= budget:
        H += 1
    return H


@needs_packed_kernel
def test_split_by_rows_counts_the_projection_only_when_there_is_one():
    """The split by rows needs every weight a thread multiplies in its share of L2 (half of it):
    W_ih and W_hh, and W_hr only with a projection. H chosen so that (I + H) 4H floats of 4
    bytes just fit, and H * P more would go over it."""
    from lstm_fast._lstm import split_choice

    if os.environ.get("LSTM_FAST_SPLIT"):
        pytest.skip("LSTM_FAST_SPLIT forces the split")
    budget = build_info()["l2_bytes"] // 2
    B, I = 16, 100
    H = _hidden_filling(budget, I, False)
    assert (I + H) * 4 * H * 4 <= budget < ((I + H) * 4 * H + H * H) * 4
    assert split_choice(B, I, H, H, False, 2, 4) == "rows"
    assert split_choice(B, I, H + 1, H + 1, False, 2, 4) == "columns"
    assert split_choice(B, I, H, H - 1, True, 2, 4) == "columns"
    assert split_choice(B, I, H, H, False, 2, 8) == "columns"  # float64: twice the bytes
    assert split_choice(7, I, H, H, False, 2, 4) == "columns"  # under 4 sequences a thread


def test_l2_is_this_cores():
    """The engine's cache budgets come from this CPU's L2, as the OS reports it."""
    sysconf = os.sysconf("SC_LEVEL2_CACHE_SIZE") if "SC_LEVEL2_CACHE_SIZE" in os.sysconf_names \
        else 0
    l2 = build_info()["l2_bytes"]
    assert l2 == (sysconf if sysconf > 0 else l2) and 64 * 1024 <= l2 <= 64 << 20


@needs_packed_kernel
def test_parallel_threshold_follows_this_cores_fma_rate():
    """A call runs on several threads from 4.5 us of FMA work a step, at this core's measured FMA
    rate (the best of three short probes at load, near a longer probe's): one multiply-add below
    the threshold stays on one thread, one above takes them all."""
    from lstm_fast._lstm import fma_peak, parallel_min_macs, threads_for

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core")
    rate = build_info()["fma_rate"]
    assert 0.6 < rate / (fma_peak(False, 1, 5_000_000) * 1e9) < 1.6
    macs = parallel_min_macs()
    assert macs == pytest.approx(rate * 4.5e-6 / 2)
    P = 64
    below, above = int(macs) // (4 * P * P), int(macs) // (4 * P * P) + 1
    with threadpool_limits(2, user_api="openmp"):
        assert threads_for(below, P, P) == 1
        assert threads_for(above, P, P) == 2
