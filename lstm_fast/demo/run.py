"""``lstm-fast demo``: LSTM, GRU and plain RNN (and two ablations of the LSTM) trained on long-lag
tasks at several lengths, with the error, the gradient flow back in time and the forget gate
measured: the claims of the LSTM's design, checked on this machine."""

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..models import LSTMClassifier, LSTMRegressor
from .tasks import TASKS

__all__ = ["MODELS", "Settings", "run_demo"]

# name: estimator parameters
MODELS = {
    "LSTM": dict(cell="lstm"),
    "GRU": dict(cell="gru"),
    "RNN": dict(cell="rnn"),
    "LSTM, forget bias 0": dict(cell="lstm", forget_bias=0.0),
    "LSTM, Glorot W_hh": dict(cell="lstm", recurrent_init="glorot"),
}


class Settings:
    """The demo's sizes: lengths, samples, epochs (the full run, or a quick one)."""

    def __init__(self, quick=False, seed=0):
        self.quick, self.seed = quick, seed
        self.lengths = [20, 50] if quick else [20, 50, 100, 200]
        self.n_train, self.n_test = (2000, 300) if quick else (2000, 500)
        self.epochs = 15 if quick else 20
        self.batch_size, self.hidden_size, self.learning_rate = 32, 32, 0.01
        # the length at which gradients and gates are shown (the longest with T <= 100)
        self.probe_length = max(T for T in self.lengths if T <= 100)


def run_demo(settings, progress=None):
    """Train every model on every task and length; returns the results (JSON-able).

    ``progress(done, total, label)`` is called after each epoch of each run."""
    rows, curves, probes = [], {}, {}
    runs = [(task, T, model) for task in TASKS for T in settings.lengths for model in MODELS]
    total, done = len(runs) * settings.epochs, 0
    for task, T, model in runs:
        def tick(epoch):
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, f"{task} T={T} {model} epoch {epoch}")
        row, curve, est, test = _train(task, T, model, settings, tick)
        rows.append(row)
        curves[f"{task}|{T}|{model}"] = curve
        if task == "adding" and T == settings.probe_length:
            probes[model] = _probe(est, *test)
    return dict(settings=vars(settings), rows=rows, curves=curves, probes=probes)


def _train(task, T, model, settings, tick):
    """One model on one task at one length: epochs of partial_fit, the test error after each."""
    generate, kind, _, baseline, solved_below = TASKS[task]
    rng = np.random.default_rng([settings.seed, T, list(TASKS).index(task)])
    X, y = generate(settings.n_train, T, rng)
    X_test, y_test = generate(settings.n_test, T, rng)
    Estimator = LSTMRegressor if kind == "regression" else LSTMClassifier
    est = Estimator(hidden_size=settings.hidden_size, learning_rate_init=settings.learning_rate,
                    batch_size=settings.batch_size, standardize=False,
                    random_state=settings.seed, **MODELS[model])
    extra = {} if kind == "regression" else dict(classes=np.arange(4))
    curve, start = [], time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(1, settings.epochs + 1):
            est.partial_fit(X, y, **extra)
            curve.append(_error(est, kind, X_test, y_test))
            tick(epoch)
    seconds = time.perf_counter() - start
    steps = settings.epochs * -(-settings.n_train // settings.batch_size)
    row = dict(task=task, T=T, model=model, steps=steps, error=curve[-1], baseline=baseline,
               solved=bool(curve[-1] < solved_below), seconds=round(seconds, 2))
    return row, curve, est, (X_test, y_test)


def _error(est, kind, X, y):
    if kind == "regression":
        return float(np.mean((est.predict(X) - y) ** 2))
    return float(np.mean(est.predict(X) != y))


def _probe(est, X, y):
    """What the trained model does inside, on test data: the gradient norm at every step and
    (LSTM) the mean forget gate per step and unit."""
    flow = est.gradient_flow(X, y)[0]
    probe = {name: v.tolist() for name, v in flow.items()}
    if est.cell == "lstm":
        f = est.gate_activations(X[:200])[0]["f"]
        probe["forget_gate"] = f.mean(axis=0).tolist()  # (T, H)
        probe["forget_share_above_0.9"] = float((f > 0.9).mean())
    return probe


def format_results(results):
    """The table of results, one line per run."""
    head = (f"{'task':<15}{'T':>5}  {'model':<21}{'steps':>6}  {'error':>8}  {'chance':>7}  "
            f"{'solved':<7}{'seconds':>8}")
    lines = [head, "-" * len(head)]
    for r in results["rows"]:
        lines.append(f"{r['task']:<15}{r['T']:>5}  {r['model']:<21}{r['steps']:>6}  "
                     f"{r['error']:>8.4f}  {r['baseline']:>7.3f}  "
                     f"{'yes' if r['solved'] else 'no':<7}{r['seconds']:>8.1f}")
    lines.append("error: test MSE (adding) or error rate (temporal order); chance: predicting "
                 "the mean, or guessing. Solved: below 0.01, or 0.05.")
    return "\n".join(lines)
