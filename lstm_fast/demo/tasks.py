"""The long-lag tasks of the demo: data generators with their chance-level baselines."""

import numpy as np

__all__ = ["TASKS", "adding", "temporal_order"]


def adding(n, T, rng):
    """The adding problem (Le, Jaitly & Hinton 2015): each step is (value in [0, 1), marker);
    two steps are marked, one in each half, and the target is the sum of their values. Predicting
    the mean (1) scores MSE 1/6, the variance of the sum."""
    values, markers = rng.uniform(0, 1, (n, T)), np.zeros((n, T))
    half = max(1, T // 2)
    markers[np.arange(n), rng.integers(0, half, n)] = 1
    markers[np.arange(n), rng.integers(half, T, n) if T > half else half - 1] = 1
    return np.stack([values, markers], axis=2).astype(np.float32), (values * markers).sum(axis=1)


# temporal order: the symbols, one-hot (a-d distractors, B and E the sequence's ends, X and Y
# the two that decide the class)
_SYMBOLS = "abcdBEXY"


def temporal_order(n, T, rng):
    """The temporal-order task (Hochreiter & Schmidhuber 1997, task 6a), at length T: random
    distractors a-d between a start symbol B and an end symbol E, and two symbols, each X or Y,
    one at a step in [0.1 T, 0.2 T], one in [0.5 T, 0.6 T]. The class (XX, XY, YX, YY) is their
    order: 4 classes, chance error 0.75."""
    symbols = rng.integers(0, 4, (n, T))
    symbols[:, 0], symbols[:, -1] = _SYMBOLS.index("B"), _SYMBOLS.index("E")
    first = rng.integers(max(1, T // 10), max(2, T // 5) + 1, n)
    second = rng.integers(max(first.max() + 1, T // 2), max(first.max() + 2, 3 * T // 5) + 1, n)
    second = np.minimum(second, T - 2)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    symbols[np.arange(n), first] = _SYMBOLS.index("X") + a
    symbols[np.arange(n), second] = _SYMBOLS.index("X") + b
    X = np.eye(len(_SYMBOLS), dtype=np.float32)[symbols]
    return X, 2 * a + b


# name: (generator, kind, metric, chance-level error, solved below)
TASKS = {
    "adding": (adding, "regression", "MSE", 1 / 6, 0.01),
    "temporal order": (temporal_order, "classification", "error rate", 0.75, 0.05),
}
