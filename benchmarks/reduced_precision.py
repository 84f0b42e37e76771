"""What predicting in bfloat16 or int8, or training in bfloat16, costs in accuracy, on real data
sets.

Fits an LSTMClassifier in float32 on each data set and seed, then scores the test split with
``predict_precision=None``, ``"bfloat16"`` and ``"int8"`` (the same fitted model); with
``--fit``, fits it instead with ``fit_precision=None`` and ``"bfloat16"`` (mixed-precision
training, the same seed) and scores both in float32. Needs aeon for the data sets
(``pip install aeon``), as stopping_rules.py does.

    python benchmarks/reduced_precision.py --seeds 0 1 2 --epochs 150 --json precision.json
    python benchmarks/reduced_precision.py --fit --seeds 0 1 2 --epochs 150
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


def measure_fit(name, seed, epochs):
    """Test accuracy of the same recipe and seed trained in float32 and in bfloat16."""
    X, y, X_test, y_test = load(name)
    row = dict(data=name, seed=seed, n_test=len(y_test))
    for precision in (None, "bfloat16"):
        clf = LSTMClassifier(max_iter=epochs, random_state=seed, fit_precision=precision)
        row[precision or "float32"] = clf.fit(X, y).score(X_test, y_test)
    row["points"] = 100 * (row["bfloat16"] - row["float32"])
    return row


def report_fit(args):
    rows = []
    print("| data | seed | test acc. float32 training | test acc. bf16 training | points |")
    print("|---|---|---|---|---|")
    for name in args.data:
        for seed in args.seeds:
            r = measure_fit(name, seed, args.epochs)
            rows.append(r)
            print(f"| {name} | {seed} | {r['float32']:.4f} | {r['bfloat16']:.4f} | "
                  f"{r['points']:+.2f} |", flush=True)
        mine = [r for r in rows if r["data"] == name]
        means = [100 * np.mean([r[k] for r in mine]) for k in ("float32", "bfloat16")]
        spread = 100 * np.std([r["float32"] for r in mine])
        print(f"| {name} | mean | {means[0]:.2f} (sd {spread:.2f}) | {means[1]:.2f} | "
              f"{means[1] - means[0]:+.2f} |", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=DATA)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--json")
    parser.add_argument("--fit", action="store_true",
                        help="compare float32 and bfloat16 training instead of predictions")
    args = parser.parse_args()
    if args.fit:
        rows = report_fit(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return
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
