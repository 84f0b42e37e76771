import os
import subprocess
import sys

# scikit-learn's array-API check needs this set before SciPy is first imported; without it that
# check is skipped instead of run.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest

from lstm_fast._lstm import build_info

def run_in_subprocess(module, call, env_vars):
    """The words `call` prints, `call` being code using the test module `module` (as ``t``) and
    ``build_info``, run in a fresh interpreter with LSTM_FAST_KERNEL and LSTM_FAST_SPLIT
    replaced by ``env_vars`` (the kernel and split choices are read once per process)."""
    env = dict(os.environ)
    for name in ("LSTM_FAST_KERNEL", "LSTM_FAST_SPLIT"):
        env.pop(name, None)
    env.update(env_vars)
    code = (f"import sys; sys.path.insert(0, sys.argv[1]); import {module} as t; "
            f"from lstm_fast._lstm import build_info; print({call})")
    # Run from the tests folder: from the repository root, Python would import the source tree's
    # lstm_fast (which holds no built extension) instead of the installed one.
    here = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run([sys.executable, "-c", code, here], env=env, cwd=here,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


# Relative tolerances per dtype for comparing two implementations of the same maths.
RTOL = {np.float32: 1e-4, np.float64: 1e-10}

# Bitwise batch independence is a property of the engine's packed kernel (every sum starts from C
# and adds its terms in k order). Where it falls back to BLAS (no AVX2), OpenBLAS's results depend
# on the number of rows (gemv for one, gemm for more).
needs_packed_kernel = pytest.mark.skipif(build_info()["matmul_kernel"] == "blas",
                                         reason="bitwise batch independence needs the packed "
                                                "kernel; BLAS is in use")


def assert_close(actual, expected, dtype, name=""):
    """|actual - expected| <= rtol * max(1, max|expected|), elementwise over the whole array."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    err = float(np.abs(actual - expected).max(initial=0.0)) / scale
    assert err <= RTOL[dtype], f"{name}: relative error {err:.3e} > {RTOL[dtype]:.0e}"
    return err


@pytest.fixture(scope="module")
def client():
    """A Dask client of two worker processes on the loopback, one thread each (for a module)."""
    import warnings

    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
        with cluster, distributed.Client(cluster) as client:
            yield client


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def random_state(lstm, B, rng, batched=True):
    """Random (h_0, c_0) for lstm with batch B."""
    k = lstm.num_directions * lstm.num_layers
    shape_h, shape_c = (k, B, lstm.output_size), (k, B, lstm.hidden_size)
    if not batched:
        shape_h, shape_c = (k, lstm.output_size), (k, lstm.hidden_size)
    return rng.standard_normal(shape_h), rng.standard_normal(shape_c)


HERE = os.path.dirname(os.path.abspath(__file__))


def run_python(code, timeout=300, env=None, **kwargs):
    """Run ``code`` in a fresh interpreter from the tests folder (so that the installed lstm_fast
    is imported, not the source tree's), with ``env`` added to the environment."""
    import subprocess
    import sys

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", code], cwd=HERE, env=full_env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)
