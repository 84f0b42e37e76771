"""Benchmark harness: lstm_fast against PyTorch and NumPy, measured in one process.

Each case is timed for every implementation with the same thread count, one implementation after
the other with a pause between them: interleaving them sample by sample would let each one's idle
thread pool (OpenBLAS and OpenMP workers spin for a while after a call) steal the second core from
the next. The figure kept is the median per call over the samples. GF/s counts forward FLOPs =
2*T*B*4H*(I+P) (+ 2*T*B*H*P with projection) per layer and direction, with valid steps only
under ``lengths``; training counts three times that.
"""

import dataclasses
import functools
import os
import platform
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from ..nn import LSTM
from ..testing import reference_backward, reference_forward

__all__ = ["Case", "STANDARD_SUITE", "run_benchmark", "gemm_roof", "fma_peak", "bfloat16_peak",
           "int8_peak", "machine_info", "blas_info"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One problem size: batch B, steps T, input I, hidden H, layers, directions, projection,
    dtype."""

    batch: int
    seq_len: int
    input_size: int
    hidden_size: int
    layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    dtype: str = "float32"
    variable_lengths: bool = False
    label: str = ""
    precision: str = ""  # the products': "" (the dtype's), "bfloat16" or "int8"

    @property
    def name(self):
        parts = [f"B{self.batch} T{self.seq_len} I{self.input_size} H{self.hidden_size}"]
        if self.layers > 1:
            parts.append(f"L{self.layers}")
        if self.bidirectional:
            parts.append("bidir")
        if self.proj_size:
            parts.append(f"P{self.proj_size}")
        if self.variable_lengths:
            parts.append("lengths")
        if self.dtype != "float32":
            parts.append(self.dtype)
        if self.precision:
            parts.append(self.precision)
        return " ".join(parts)

    def lengths(self):
        """Per-sequence lengths: uniform in [T/10, T] (fixed seed), or None."""
        if not self.variable_lengths:
            return None
        rng = np.random.default_rng(0)
        return rng.integers(max(1, self.seq_len // 10), self.seq_len + 1, size=self.batch)

    def forward_flops(self):
        lengths = self.lengths()
        steps = self.seq_len * self.batch if lengths is None else int(lengths.sum())
        H, P, D = self.hidden_size, self.proj_size or self.hidden_size, 1 + self.bidirectional
        flops = 0
        for layer in range(self.layers):
            I = self.input_size if layer == 0 else D * P
            per_step = 2 * 4 * H * (I + P) + (2 * H * P if self.proj_size else 0)
            flops += D * steps * per_step
        return flops


STANDARD_SUITE = [
    Case(1, 100, 32, 64, label="1"),
    Case(1, 1000, 8, 32, label="2"),
    Case(16, 100, 32, 128, label="3"),
    Case(32, 100, 64, 256, label="4"),
    Case(64, 50, 128, 512, label="5"),
    Case(32, 100, 64, 256, layers=2, label="6"),
    Case(32, 100, 64, 256, bidirectional=True, label="7"),
    Case(256, 20, 16, 64, label="8"),
    Case(32, 100, 64, 256, dtype="float64", label="9"),
    Case(32, 100, 64, 256, variable_lengths=True, label="10"),
    Case(32, 100, 64, 256, proj_size=128, label="11"),
    Case(1, 1, 8, 8, label="12"),
]

QUICK_SUITE = [
    Case(1, 50, 8, 16, label="q1"),
    Case(8, 30, 16, 32, bidirectional=True, label="q2"),
    Case(8, 30, 16, 32, variable_lengths=True, proj_size=8, label="q3"),
]

SUITES = {"standard": STANDARD_SUITE, "quick": QUICK_SUITE}


# ----------------------------------------------------------------------------- implementations

class _LstmFast:
    name = "lstm_fast"
    at = None  # the precision it runs at: None, the case's

    def __init__(self, case, training, threads):
        self.lstm = LSTM(case.input_size, case.hidden_size, num_layers=case.layers,
                         bidirectional=case.bidirectional, proj_size=case.proj_size,
                         dtype=np.dtype(case.dtype).type, random_state=0)
        rng = np.random.default_rng(1)
        self.x = rng.standard_normal((case.seq_len, case.batch, case.input_size)).astype(case.dtype)
        self.lengths = case.lengths()
        self.training = training
        self.grad = None
        self.precision = self.at or case.precision or None

    def __call__(self):
        out, _ = self.lstm.forward(self.x, lengths=self.lengths, training=self.training,
                                   precision=self.precision)
        if self.training:
            if self.grad is None:
                self.grad = np.ones_like(out)
            self.lstm.backward(self.grad)


class _LstmFastFloat32(_LstmFast):
    """Ours in float32 (the cases' dtype): the peer of a reduced-precision case."""
    name = at = "float32"


class _LstmFastBfloat16(_LstmFast):
    """Ours in bfloat16: the peer of an int8 case."""
    name = at = "bfloat16"


class _Numpy(_LstmFast):
    name = "numpy"

    def __init__(self, case, training, threads):
        super().__init__(case, training, threads)
        self.params = self.lstm.state_dict()
        k = self.lstm.num_directions * self.lstm.num_layers
        self.h0 = np.zeros((k, case.batch, self.lstm.output_size), case.dtype)
        self.c0 = np.zeros((k, case.batch, case.hidden_size), case.dtype)
        if self.lengths is None:
            self.lengths = np.full(case.batch, case.seq_len)

    def __call__(self):
        out, _, _, cache = reference_forward(self.params, self.x, self.h0, self.c0, self.lengths,
                                             self.lstm.num_layers, self.lstm.bidirectional)
        if self.training:
            reference_backward(self.params, cache, np.ones_like(out))


class _Torch:
    name = "torch"

    def __init__(self, case, training, threads):
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        self.torch, self.pack, self.unpack = torch, pack_padded_sequence, pad_packed_sequence
        torch.set_num_threads(threads)
        ours = _LstmFast(case, training, threads)
        dtype = getattr(torch, case.dtype)
        self.lstm = torch.nn.LSTM(case.input_size, case.hidden_size, num_layers=case.layers,
                                  bidirectional=case.bidirectional, proj_size=case.proj_size,
                                  dtype=dtype)
        self.lstm.load_state_dict({k: torch.from_numpy(v)
                                   for k, v in ours.lstm.state_dict().items()})
        self.x = torch.from_numpy(ours.x).requires_grad_(training)
        self.lengths = None if ours.lengths is None else torch.as_tensor(ours.lengths)
        self.training, self.seq_len = training, case.seq_len
        # bf16 training: under autocast where it runs, else torch's bf16 module trained as such
        self.autocast = case.precision == "bfloat16" and training and torch_autocast_runs()
        if case.precision == "bfloat16" and not self.autocast:
            # torch's own bf16 inference (and training where autocast fails): module and input
            self.lstm = self.lstm.to(torch.bfloat16)
            self.x = self.x.detach().to(torch.bfloat16).requires_grad_(training)

    def _forward(self):
        with self.torch.autocast("cpu", dtype=self.torch.bfloat16, enabled=self.autocast):
            if self.lengths is None:
                return self.lstm(self.x)[0]
            packed = self.pack(self.x, self.lengths, enforce_sorted=False)
            return self.unpack(self.lstm(packed)[0], total_length=self.seq_len)[0]

    def __call__(self):
        if self.training:
            self._forward().float().sum().backward()
        else:
            with self.torch.inference_mode():
                self._forward()


@functools.cache
def torch_autocast_runs():
    """Whether torch.nn.LSTM trains under torch.autocast("cpu", bfloat16) here: its oneDNN bf16
    LSTM needs a CPU with bf16 instructions (elsewhere a RuntimeError, seen on AVX2 CPUs)."""
    import torch

    lstm, x = torch.nn.LSTM(4, 8), torch.zeros(3, 2, 4, requires_grad=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = lstm(x)[0]
        out.float().sum().backward()
        return True
    except RuntimeError:
        return False


def _peers_of(case, peer_classes):
    """The peers a case is timed against: torch in the same precision (bfloat16; torch's
    dynamically quantised LSTM is gone: int8 has none), and for a reduced-precision case ours in
    the layer's dtype (NumPy has neither) and, for int8, in bfloat16."""
    if not case.precision:
        return peer_classes
    if case.precision == "int8":
        return [_LstmFastFloat32, _LstmFastBfloat16]
    return [cls for cls in peer_classes if cls is _Torch] + [_LstmFastFloat32]


def _runs(case, mode):
    """Whether a case runs in ``mode``: int8 is for inference, bfloat16 also trains."""
    return mode == "infer" or case.precision != "int8"


def available_peers(names):
    """The peer classes among ``names`` ('numpy', 'torch') that can run here."""
    peers = []
    for name in names:
        if name == "numpy":
            peers.append(_Numpy)
        elif name == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                continue
            peers.append(_Torch)
        else:
            raise ValueError(f"unknown peer {name!r}; choose from numpy, torch")
    return peers


# ----------------------------------------------------------------------------- timing

def _calls_per_sample(fn, target=2e-3):
    """How many calls make one timed sample last about ``target`` seconds (after a warm-up)."""
    start = time.perf_counter()
    fn()
    fn()
    per_call = (time.perf_counter() - start) / 2
    return max(1, int(target / max(per_call, 1e-9)))


def _samples(fn, repeat, n):
    """``repeat`` samples of seconds per call of ``fn``, each the mean of ``n`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n)
    return samples


def _median_seconds(fn, repeat):
    """Median seconds per call of ``fn`` over ``repeat`` samples, after a warm-up."""
    return statistics.median(_samples(fn, repeat, _calls_per_sample(fn)))


def _interleaved_medians(impls, repeat, rounds, pause):
    """Median seconds per call of each of ``impls`` over ``repeat`` samples, taken in ``rounds``
    rounds: each round times every implementation in turn, for its share of the samples, with
    ``pause`` seconds after each. The machine's slow spells (it is shared) then fall on every
    implementation alike instead of on the one whose block they hit."""
    calls = [_calls_per_sample(impl) for impl in impls]
    samples = [[] for _ in impls]
    for r in range(rounds):
        share = repeat * (r + 1) // rounds - repeat * r // rounds
        for impl, n, taken in zip(impls, calls, samples):
            _wake_threads(impl)
            taken += _samples(impl, share, n)
            _let_threads_idle(pause)
    return [statistics.median(taken) for taken in samples]


def _wake_threads(fn, seconds=0.1):
    """Run ``fn`` untimed for about ``seconds`` (at least once). After a pause, the first calls
    of a multi-threaded implementation ran at one thread's speed for tens of milliseconds (its
    threads woke on one CPU until the scheduler spread them), and that fell on whichever one was
    timed first."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < seconds:
        fn()


def _let_threads_idle(pause):
    """Pause until the thread pools of what ran last sleep again (OpenBLAS's workers spin ~0.1 s
    after a call, OpenMP's several ms), so that they take no core from what is timed next."""
    time.sleep(pause)


def gemm_roof(dtype, threads, size=2048, repeat=5):
    """GF/s of scipy's BLAS gemm on (size x size) matrices: the ceiling an LSTM can approach."""
    from scipy.linalg import blas

    gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((size, size)).astype(dtype))
    b = np.asfortranarray(rng.standard_normal((size, size)).astype(dtype))
    c = np.zeros((size, size), dtype=dtype, order="F")
    with threadpool_limits(limits=threads):
        seconds = _median_seconds(lambda: gemm(1.0, a, b, c=c, overwrite_c=True), repeat)
    return 2.0 * size ** 3 / seconds / 1e9


def bfloat16_peak(threads, iters=2_000_000, repeat=3):
    """GF/s of the bf16 kernel's unit (AMX tiles or vdpbf16ps chains, see `fma_peak`); 0.0
    with the portable kernel."""
    from .._lstm import bfloat16_peak as chains

    return max(chains(threads, iters) for _ in range(repeat))


def int8_peak(threads, iters=2_000_000, repeat=3):
    """G ops/s of the int8 unit (AMX tdpbssd or AVX512-VNNI vpdpbusd chains, see `fma_peak`);
    0.0 without one."""
    from .._lstm import int8_peak as chains

    return max(chains(threads, iters) for _ in range(repeat))


def fma_peak(dtype, threads, iters=20_000_000, repeat=3):
    """GF/s of the cores' vector FMA units: the best of ``repeat`` runs of independent FMA chains
    on ``threads`` threads (``iters`` rounds of 12 FMAs each). No product can run faster on this
    machine; 0.0 where the engine has no packed kernel (no AVX2 or AVX-512)."""
    from .._lstm import fma_peak as chains

    return max(chains(np.dtype(dtype) == np.float64, threads, iters) for _ in range(repeat))


def run_benchmark(cases, modes=("infer", "train"), threads=(1,), peers=("numpy", "torch"),
                  repeat=15, progress=None, pause=0.3, roof_size=2048, peak_iters=20_000_000,
                  rounds=3):
    """Time every case, mode and thread count.

    Returns ``(results, roofs, peaks)``: a list of result dicts, and per dtype and thread count
    the measured GEMM roof (GF/s of ``roof_size``-cubed products) and FMA peak (GF/s, see
    `fma_peak`). Each cell's implementations are timed in turn, ``rounds`` times over, for
    ``repeat`` samples each in all, with ``pause`` seconds between the timings.

    Each result has ``case``, ``label``, ``mode``, ``threads``, ``flops`` and ``impls``: a dict from
    implementation name to ``{"median_us", "gflops", "peak_fraction"}``, with ``ratio`` (peer time
    / lstm_fast time) for the peers, and ``roof_fraction`` for lstm_fast.
    """
    peer_classes = available_peers(peers)
    roofs, peaks, results = {}, {}, []
    total = len(threads) * sum(1 for case in cases for m in modes if _runs(case, m))
    for n_threads in threads:
        for case in cases:
            key = (case.precision or case.dtype, n_threads)
            if key not in roofs:
                # (no bf16 GEMM in SciPy: the reduced-precision rows have their unit's peak only)
                roofs[key] = None if case.precision else gemm_roof(case.dtype, n_threads,
                                                                    size=roof_size)
                peaks[key] = (bfloat16_peak(n_threads, iters=peak_iters // 10)
                              if case.precision == "bfloat16" else
                              int8_peak(n_threads, iters=peak_iters // 10)
                              if case.precision == "int8" else
                              fma_peak(case.dtype, n_threads, iters=peak_iters))
                _let_threads_idle(pause)
            for mode in [m for m in modes if _runs(case, m)]:
                training = mode == "train"
                with threadpool_limits(limits=n_threads):
                    impls = [cls(case, training, n_threads)
                             for cls in [_LstmFast] + _peers_of(case, peer_classes)]
                    _let_threads_idle(pause)  # building them ran multi-threaded BLAS (QR)
                    medians = _interleaved_medians(impls, repeat, min(rounds, repeat), pause)
                flops = case.forward_flops() * (3 if training else 1)
                entry = dict(case=case.name, label=case.label, mode=mode, threads=n_threads,
                             flops=flops, impls={})
                for impl, seconds in zip(impls, medians):
                    gflops = flops / seconds / 1e9
                    entry["impls"][impl.name] = dict(
                        median_us=seconds * 1e6, gflops=gflops, ratio=seconds / medians[0],
                        peak_fraction=gflops / peaks[key] if peaks[key] else None)
                ours = entry["impls"]["lstm_fast"]
                ours["roof_fraction"] = ours["gflops"] / roofs[key] if roofs[key] else None
                results.append(entry)
                if progress is not None:
                    progress(len(results), total, case.name)
    return results, _by_name(roofs), _by_name(peaks)


def _by_name(per_key):
    """{(dtype, threads): value} as {"float32 1 thr": value}, for printing and JSON."""
    return {f"{d} {t} thr": value for (d, t), value in per_key.items()}


# ----------------------------------------------------------------------------- environment

def machine_info():
    """CPU model, cores and memory of this machine."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    return dict(cpu=model, cores=os.cpu_count(), memory_gib=None if mem is None else round(mem, 1),
                python=sys.version.split()[0], numpy=np.__version__,
                env={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")})


def blas_info():
    """The BLAS and OpenMP libraries loaded in this process, with kernel and thread count."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS so it is listed)

    return [dict(api=i.get("internal_api"), library=os.path.basename(i.get("filepath", "")),
                 version=i.get("version"), kernel=i.get("architecture"),
                 threads=i.get("num_threads"))
            for i in threadpool_info()]
