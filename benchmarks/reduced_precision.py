"""What predicting in bfloat16 or int8 costs in accuracy, on real data sets.

Fits an LSTMClassifier in float32 on each data set and seed, then scores the test split with
``predict_precision=None``, ``"bfloat16"`` and ``"int8"`` (the same fitted model). Needs aeon
for the data sets (``pip install aeon``), as stopping_rules.py does.

    python benchmarks/reduced_precision.py --seeds 0 1 2 --epochs 150 --json precision.json
"""

import argparse
import json

import numpy as np

from lstm_fast import LSTMClassifier

from stopping_rules import load

DATA = ["GunPoint", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels", "ArrowHead"]


def output_error(clf, X, precision):
    """Largest relative difference of the fitted LSTM's outputs (every step) at `precision`
    against float32, on standardised, zero-padded X."""
    lengths = np.array([len(x) for x in X])
    padded = np.zeros((len(X), lengths.max(), X[0].shape[1]), np.float32)
    for i, x in enumerate(X):
        padded[i, :len(x)] = (x - clf.scaler_mean_) / clf.scaler_scale_
    steps = padded if clf.lstm_.batch_first else np.ascontiguousarray(padded.transpose(1, 0, 2))
    want, _ = clf.lstm_.forward(steps, lengths=lengths)
    got, _ = clf.lstm_.forward(steps, lengths=lengths, precision=precision)
    return float(np.abs(got - want).max() / np.abs(want).max())


def measure(name, seed, epochs):
    X, y, X_test, y_test = load(name)
    clf = LSTMClassifier(max_iter=epochs, random_state=seed).fit(X, y)
    proba = clf.predict_proba(X_test)
    row = dict(data=name, seed=seed, n_test=len(y_test), float32=clf.score(X_test, y_test))
    for precision in PRECISIONS:
        clf.set_params(predict_precision=precision)
        reduced = clf.predict_proba(X_test)
        row[precision] = dict(
            score=clf.score(X_test, y_test),
            changed=int(np.sum(proba.argmax(1) != reduced.argmax(1))),
            max_proba_diff=float(np.abs(proba - reduced).max()),
            output_error=output_error(clf, X_test, precision))
        row[precision]["points"] = 100 * (row[precision]["score"] - row["float32"])
    return row


PRECISIONS = ("bfloat16", "int8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=DATA)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    print("| data | seed | test acc. float32 | precision | test acc. | points | predictions "
          "changed | max proba diff | LSTM output error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.data:
        for seed in args.seeds:
            r = measure(name, seed, args.epochs)
            rows.append(r)
            for p in PRECISIONS:
                m = r[p]
                print(f"| {name} | {seed} | {r['float32']:.4f} | {p} | {m['score']:.4f} | "
                      f"{m['points']:+.2f} | {m['changed']} / {r['n_test']} | "
                      f"{m['max_proba_diff']:.1e} | {m['output_error']:.1e} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
