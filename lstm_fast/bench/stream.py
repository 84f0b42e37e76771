"""Streaming latency: a loop of B = 1, T = 1 steps, each carrying the state of the one before,
lstm_fast's ``LSTM.forward(x_t, hx)`` against ``torch.nn.LSTM`` called the same way (both on
one thread). It measures what a live stream pays per step: mostly per-call overhead and one
matrix-vector product, the weights packed once (see ``LSTM.mark_updated``)."""

import numpy as np
from threadpoolctl import threadpool_limits

from ..nn import LSTM
from .harness import _interleaved_medians

__all__ = ["STREAM_SIZES", "stream_latency", "format_stream"]

# (input_size, hidden_size) of the streams measured.
STREAM_SIZES = ((8, 32), (32, 128), (64, 256))


class _OursStream:
    name = "lstm_fast"

    def __init__(self, input_size, hidden_size, steps):
        self.lstm = LSTM(input_size, hidden_size, random_state=0)
        rng = np.random.default_rng(1)
        self.x = [rng.standard_normal((1, 1, input_size)).astype(np.float32)
                  for _ in range(steps)]

    def __call__(self):
        hx = None
        for x in self.x:
            _, hx = self.lstm.forward(x, hx=hx)


class _TorchStream:
    name = "torch"

    def __init__(self, ours):
        import torch

        self.torch = torch
        self.lstm = torch.nn.LSTM(ours.lstm.input_size, ours.lstm.hidden_size)
        self.lstm.load_state_dict({k: torch.from_numpy(v)
                                   for k, v in ours.lstm.state_dict().items()})
        self.x = [torch.from_numpy(x) for x in ours.x]

    def __call__(self):
        hx = None
        with self.torch.inference_mode():
            for x in self.x:
                _, hx = self.lstm(x, hx)


def stream_latency(sizes=STREAM_SIZES, steps=10_000, repeat=3, torch=True, pause=0.3):
    """Microseconds per step of a ``steps``-step stream for each (input_size, hidden_size),
    float32 on one thread: ``[{"input_size", "hidden_size", "steps", "impls": {name:
    {"us_per_step", "ratio"}}}]``, ratio = peer time / lstm_fast time. torch is left out when
    not installed (or ``torch=False``)."""
    results = []
    with threadpool_limits(limits=1):
        if torch:
            try:
                import torch as _torch
                _torch.set_num_threads(1)
            except ImportError:
                torch = False
        for input_size, hidden_size in sizes:
            impls = [_OursStream(input_size, hidden_size, steps)]
            if torch:
                impls.append(_TorchStream(impls[0]))
            medians = _interleaved_medians(impls, repeat, repeat, pause)
            results.append(dict(input_size=input_size, hidden_size=hidden_size, steps=steps,
                                impls={impl.name: dict(us_per_step=seconds / steps * 1e6,
                                                       ratio=seconds / medians[0])
                                       for impl, seconds in zip(impls, medians)}))
    return results


def format_stream(results):
    """The streaming table: per-step latency of each implementation and the ratios."""
    names = list(results[0]["impls"]) if results else []
    head = "| stream (B=1, T=1 steps) | " + " | ".join(f"{n} us/step" for n in names)
    head += "".join(f" | {n}/lstm_fast" for n in names[1:]) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(names) - 1)]
    for r in results:
        cells = [f"I={r['input_size']} H={r['hidden_size']}, {r['steps']} steps"]
        cells += [f"{r['impls'][n]['us_per_step']:.1f}" for n in names]
        cells += [f"{r['impls'][n]['ratio']:.2f}" for n in names[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
