"""The thread budget of the calling context, and limits set within it.

``n_threads=None`` means the threads the caller allows, never more: OpenMP's and the BLAS's
current limits in the calling thread (``OMP_NUM_THREADS``, ``threadpoolctl.threadpool_limits``,
the one thread a core that joblib's loky workers and Dask's give each task) and the CPUs the
process may run on (its affinity). Raising the limit to every core instead would oversubscribe
the machine under ``GridSearchCV(n_jobs=k)``, a Dask worker or a server's thread pool.
"""

import contextlib
import os

from threadpoolctl import ThreadpoolController

__all__ = ["thread_budget", "limited_threads", "budget_limits"]

_controller = None


def _libraries():
    """threadpoolctl's controller of the thread pools loaded now (ours among them), made once:
    it inspects the loaded libraries, which takes milliseconds."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def affinity_cpus():
    """CPUs the process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # (not on every OS)
        return os.cpu_count() or 1


def thread_budget():
    """Threads the calling context allows: the least of the thread pools' current limits (as
    this thread sees them) and the process's CPUs."""
    limits = [lib.get_num_threads() for lib in _libraries().lib_controllers]
    return max(1, min([affinity_cpus()] + [n for n in limits if n]))


def limited_threads(n):
    """A context in which BLAS and OpenMP use ``n`` threads (restored on exit). The limits are
    the process's (BLAS) or the thread's (OpenMP): threads that set different ones at once may
    leave the BLAS at another's."""
    return _libraries().limit(limits=n)


def budget_limits():
    """A context that keeps the thread pools within the caller's budget: no limit at all (so
    nothing to race with other threads' limits) unless the process's CPUs allow fewer threads
    than a pool would use."""
    n = thread_budget()
    if all(lib.get_num_threads() <= n for lib in _libraries().lib_controllers):
        return contextlib.nullcontext()
    return limited_threads(n)
