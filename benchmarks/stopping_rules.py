"""Stopping rules measured on real data sets (the study behind the estimators' default stop).

Trains each estimator for ``--epochs`` epochs without stopping, scoring the test split after
every epoch, then replays candidate stopping rules on the recorded training-loss curves: where
each would have stopped and the test score there. Needs aeon for the data sets (``pip install
aeon``); its UCR/UEA and Monash archives ship inside the package.

    python benchmarks/stopping_rules.py --seeds 0 1 2 --json stopping.json
"""

import argparse
import json
import time

import numpy as np
from aeon.datasets import load_classification, load_regression

from lstm_fast import LSTMClassifier, LSTMRegressor

CLASSIFICATION = ["GunPoint", "ItalyPowerDemand", "ArrowHead", "BasicMotions", "JapaneseVowels"]
REGRESSION = ["Covid3Month", "CardanoSentiment"]


def sequences(X):
    """aeon's (n, channels, T) array or list of (channels, T_i) arrays -> ours (steps first)."""
    if isinstance(X, np.ndarray):
        return np.ascontiguousarray(X.transpose(0, 2, 1))
    return [np.ascontiguousarray(x.T) for x in X]


def load(name):
    loader = load_regression if name in REGRESSION else load_classification
    X_train, y_train = loader(name, split="train")
    X_test, y_test = loader(name, split="test")
    if name in REGRESSION:
        y_train, y_test = y_train.astype(float), y_test.astype(float)
    return sequences(X_train), y_train, sequences(X_test), y_test


def record(name, seed, epochs):
    """Loss and test score after every epoch of one fit that never stops."""
    X, y, X_test, y_test = load(name)
    cls = LSTMRegressor if name in REGRESSION else LSTMClassifier
    scores = []

    class Recorded(cls):
        def _no_progress(self, score):
            scores.append(self.score(X_test, y_test))
            return False

    Recorded.__name__ = cls.__name__
    est = Recorded(max_iter=epochs, random_state=seed)
    start = time.perf_counter()
    est.fit(X, y)
    return dict(data=name, seed=seed, loss=list(est.loss_curve_), score=scores,
                seconds=time.perf_counter() - start)


# Rules replayed on a loss curve: (name, function(losses) -> epochs run).
def plateau(tol, patience, relative=False, smooth=None):
    """sklearn's rule (stop after `patience` epochs without the loss improving on its best by
    `tol`), optionally relative to the best loss and on an exponentially smoothed loss."""
    def rule(losses):
        best, count, avg = np.inf, 0, None
        for epoch, loss in enumerate(losses, 1):
            avg = loss if smooth is None or avg is None else smooth * avg + (1 - smooth) * loss
            margin = tol * best if relative and np.isfinite(best) else tol
            count = count + 1 if avg > best - margin else 0
            best = min(best, avg)
            if count > patience:
                return epoch
        return len(losses)
    return rule


RULES = {
    "abs 1e-4, 10 (sklearn)": plateau(1e-4, 10),
    "abs 1e-4, 50": plateau(1e-4, 50),
    "rel 1e-4, 10": plateau(1e-4, 10, relative=True),
    "rel 1e-3, 10, smoothed 0.9": plateau(1e-3, 10, relative=True, smooth=0.9),
    "rel 1e-4, 50": plateau(1e-4, 50, relative=True),
    "rel 1e-4, 50, smoothed 0.9": plateau(1e-4, 50, relative=True, smooth=0.9),
    "none": lambda losses: len(losses),
}


def summarise(runs):
    print(f"{'data':18s} {'rule':28s} {'epochs (per seed)':22s} {'test score at stop':28s}")
    for name in dict.fromkeys(r["data"] for r in runs):
        mine = [r for r in runs if r["data"] == name]
        for rule_name, rule in RULES.items():
            stops = [rule(r["loss"]) for r in mine]
            scores = [r["score"][s - 1] for r, s in zip(mine, stops)]
            print(f"{name:18s} {rule_name:28s} {' '.join(f'{s:4d}' for s in stops):22s} "
                  f"{' '.join(f'{v:7.3f}' for v in scores)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", default=CLASSIFICATION + REGRESSION)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--json", help="write the recorded curves here")
    parser.add_argument("--replay", help="summarise curves written by --json, without fitting")
    args = parser.parse_args()
    if args.replay:
        with open(args.replay) as f:
            return summarise(json.load(f))
    runs = []
    for name in args.data:
        for seed in args.seeds:
            runs.append(record(name, seed, args.epochs))
            print(f"{name} seed {seed}: {runs[-1]['seconds']:.1f} s, final score "
                  f"{runs[-1]['score'][-1]:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f)
    summarise(runs)


if __name__ == "__main__":
    main()
