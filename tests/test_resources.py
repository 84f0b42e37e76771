"""Memory, sizes and interrupts, each measured in a process of its own: resident memory (RSS,
which sees the engine's own allocations) stays flat, absurd sizes are refused before anything
is allocated, and Ctrl-C stops a long call within a second and leaves everything usable."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import HERE, run_python

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc/self/status")

# Code the measuring subprocesses share: resident and peak memory from /proc.
MEMORY = textwrap.dedent("""
    import json, resource, numpy as np, lstm_fast

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
""")


def _json_result(code, **kwargs):
    result = run_python(MEMORY + textwrap.dedent(code), **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_resident_memory_stays_flat_over_many_calls():
    """10,000 forward calls (inference, variable lengths, both directions) and 1,000 training
    steps: what is resident after them is what was after the first few (workspaces and stored
    activations are reused, nothing leaks)."""
    grown = _json_result("""
        rng = np.random.default_rng(0)
        lstm = lstm_fast.LSTM(8, 32, num_layers=2, bidirectional=True, random_state=0)
        xs = [rng.standard_normal((20, 4, 8)).astype(np.float32) for _ in range(10)]
        lengths = [rng.integers(1, 21, size=4) for _ in range(10)]
        def infer(n):
            for i in range(n):
                lstm.forward(xs[i % 10], lengths=lengths[i % 10])
        def train(n):
            for i in range(n):
                out, _ = lstm.forward(xs[i % 10], lengths=lengths[i % 10], training=True)
                lstm.backward(np.ones_like(out))
        infer(500); train(100)
        start = status("VmRSS:")
        infer(10_000); train(1_000)
        print(json.dumps(status("VmRSS:") - start))
    """)
    print(f"\nRSS growth over 10,000 forward and 1,000 training calls: {grown / 2**10:.0f} KiB")
    assert grown < 4 * 2**20


@pytest.mark.slow
def test_fit_predict_cycles_leave_memory_flat():
    """200 fit/predict cycles of small estimators in one process."""
    grown = _json_result("""
        import warnings
        from sklearn.exceptions import ConvergenceWarning
        warnings.simplefilter("ignore", ConvergenceWarning)
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((64, 10, 3)), rng.integers(0, 2, 64)
        def cycles(n):
            for i in range(n):
                clf = lstm_fast.LSTMClassifier(hidden_size=16, max_iter=2, random_state=i)
                clf.fit(X, y).predict_proba(X)
        cycles(20)
        start = status("VmRSS:")
        cycles(200)
        print(json.dumps(status("VmRSS:") - start))
    """)
    print(f"\nRSS growth over 200 fit/predict cycles: {grown / 2**10:.0f} KiB")
    assert grown < 8 * 2**20


def test_inference_memory_does_not_grow_with_sequence_length():
    """The peak resident memory of an inference call, beyond its input and output, is O(B*H):
    the same at T = 10,000 and T = 100,000, where keeping any per-step state would add at least
    B*H*4 = 1 KiB a step (90 MiB)."""
    extra = _json_result("""
        lstm = lstm_fast.LSTM(8, 64, random_state=0)
        extra = {}
        for T in (10_000, 100_000, 10_000, 100_000):
            x = np.random.default_rng(0).standard_normal((T, 4, 8)).astype(np.float32)
            reset_peak()
            before = status("VmRSS:")
            out, _ = lstm.forward(x)
            extra[T] = status("VmHWM:") - before - out.nbytes
            del out
        print(json.dumps(extra))
    """)
    small, large = extra["10000"], extra["100000"]
    print(f"\npeak memory beyond the output, B=4 H=64: T=10,000 {small / 2**10:.0f} KiB, "
          f"T=100,000 {large / 2**10:.0f} KiB")
    assert large - small < 2**20


# An address-space limit for the processes below: if a size check were missing, the allocation
# would fail there (with NumPy's own message, which the tests tell from ours) instead of taking
# the machine's memory.
LIMITED = "resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))\n"


@pytest.mark.parametrize("code, match", [
    ("lstm_fast.LSTM(8, 10**9)", "hidden_size must be in"),
    ("lstm_fast.LSTM(8, 10**8)", r"LSTM\(8, 100000000, dtype=float32\): its "
                                 r"40000004000000000 parameters and their gradients would need"),
    ("lstm_fast.LSTM(10**9, 64)", "would need"),
    ("lstm_fast.LSTM(4, 8, num_layers=10**9)", "would need"),
    ("lstm_fast.LSTM(1, 256).forward(np.broadcast_to(np.float32(0), (10**6, 10**3, 1)))",
     r"forward on x of shape \(1000000, 1000, 1\) would need"),
    ("lstm_fast.LSTM(1, 64).forward(np.broadcast_to(np.float32(0), (10**7, 10, 1)), "
     "training=True)", r"forward\(training=True\) on x .* would need"),
    ("lstm_fast.LSTMRegressor(hidden_size=10**8).fit(np.zeros((4, 3, 2)), np.zeros(4))",
     "would need"),
])
def test_absurd_sizes_are_refused_before_allocating(code, match):
    result = run_python(MEMORY + LIMITED + textwrap.dedent(f"""
        try:
            {code}
        except (MemoryError, ValueError) as exc:
            print(json.dumps([type(exc).__name__, str(exc), status("VmHWM:")]))
    """))
    assert result.returncode == 0, result.stderr
    kind, message, peak = json.loads(result.stdout)
    assert kind in ("MemoryError", "ValueError")
    assert "Unable to allocate" not in message and __import__("re").search(match, message), message
    assert peak < 1 << 30  # nothing large was touched


def _interrupt(code, wait_for="ready"):
    """Run ``code`` in a child, send it SIGINT a second after it prints ``wait_for``, and return
    the seconds from the signal to its next line, and its remaining output."""
    # Python's own SIGINT handler, whatever the test run inherited (a background job, for one,
    # starts with SIGINT ignored, and Python then leaves it so)
    code = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n" + code
    # unbuffered: readline() takes no more than its line, so communicate() gets all the rest
    child = subprocess.Popen([sys.executable, "-u", "-c", code], cwd=HERE, bufsize=0,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in iter(child.stdout.readline, b""):
            if line.strip() == wait_for.encode():
                break
        time.sleep(1.0)
        sent = time.perf_counter()
        child.send_signal(signal.SIGINT)
        first = child.stdout.readline().decode()
        latency = time.perf_counter() - sent
        rest, err = (b.decode() for b in child.communicate(timeout=120))
    finally:
        child.kill()
    assert child.returncode == 0, err
    return latency, first.strip(), rest.strip().splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("training,bidirectional,during", [
    (False, False, "forward"), (False, True, "forward"), (True, False, "forward"),
    (True, True, "backward")])
def test_ctrl_c_stops_a_long_call_within_a_second(training, bidirectional, during):
    """A forward or backward over a sequence of millions of steps (seconds of work) stops soon
    after SIGINT with KeyboardInterrupt, and the layer works afterwards."""
    steps = 150_000 if training else 2_000_000
    latency, first, rest = _interrupt(textwrap.dedent(f"""
        import numpy as np, lstm_fast
        lstm = lstm_fast.LSTM(1, 512, proj_size=1, bidirectional={bidirectional},
                              random_state=0)
        x = np.zeros(({steps}, 1, 1), np.float32)
        print("ready" if "{during}" == "forward" else "")
        try:
            out, _ = lstm.forward(x, training={training})
            if {training}:
                print("backward" if "{during}" == "backward" else "")
                lstm.backward(np.ones_like(out))
            print("finished")
        except KeyboardInterrupt:
            print("interrupted")
        out, _ = lstm.forward(x[:50])
        print(bool(np.isfinite(out).all()), out.shape)
        out, _ = lstm.forward(x[:50], training=True)
        lstm.backward(out)
        print("trains")
    """), wait_for="ready" if during == "forward" else "backward")
    print(f"\nSIGINT to KeyboardInterrupt ({during}): {latency:.3f} s")
    assert first == "interrupted"
    assert latency < 1.0
    assert rest == [f"True (50, 1, {1 + bidirectional})", "trains"]
@pytest.mark.slow
def test_ctrl_c_during_fit_keeps_the_last_completed_epoch():
    """fit stops within a second of SIGINT, re-raising KeyboardInterrupt; the estimator is
    then exactly the model of its last completed epoch (the same as a fit with max_iter set to
    it), and it predicts and fits again."""
    latency, first, rest = _interrupt(textwrap.dedent("""
        import sys, warnings, numpy as np, lstm_fast
        from sklearn.exceptions import ConvergenceWarning
        warnings.simplefilter("ignore", ConvergenceWarning)
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((256, 30, 3)), rng.standard_normal(256)
        params = dict(hidden_size=64, max_iter=100000, tol=0, random_state=0, n_threads=1)
        reg = lstm_fast.LSTMRegressor(**params)
        print("ready")
        try:
            reg.fit(X, y)
        except KeyboardInterrupt:
            print("interrupted")
        done = reg.n_iter_
        again = lstm_fast.LSTMRegressor(**dict(params, max_iter=done)).fit(X, y)
        same = all(np.array_equal(a, b) for (_, a), (_, b) in
                   zip(reg.lstm_.named_parameters(), again.lstm_.named_parameters()))
        print(done, len(reg.loss_curve_), same and np.array_equal(reg.coefs_[0], again.coefs_[0]))
        print(reg.predict(X[:3]).shape, reg.set_params(max_iter=1, warm_start=True).fit(X, y).n_iter_)
    """))
    print(f"\nSIGINT to KeyboardInterrupt in fit: {latency:.3f} s")
    assert first == "interrupted" and latency < 1.0
    done, curve, same = rest[0].split()
    assert int(done) >= 1 and curve == done and same == "True"
    assert rest[1] == f"(3,) {int(done) + 1}"
