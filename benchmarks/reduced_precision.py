"""What predicting in bfloat16 costs in accuracy, on real data sets.

Fits an LSTMClassifier in float32 on each data set and seed, then scores the test split with
``predict_precision=None`` and ``"bfloat16"`` (the same fitted model), and times both
predictions. Needs aeon for the data sets (``pip install aeon``), as stopping_rules.py does.

    python benchmarks/reduced_precision.py --seeds 0 1 2 --epochs 150 --json precision.json
"""

import argparse
import json
import time

import numpy as np

from lstm_fast import LSTMClassifier

from stopping_rules import load

DATA = ["GunPoint", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels", "ArrowHead"]


def scored(clf, X, y, precision):
    clf.set_params(predict_precision=precision)
    start = time.perf_counter()
    score = clf.score(X, y)
    return score, time.perf_counter() - start


def output_error(clf, X):
    """Largest relative difference of the fitted LSTM's outputs (every step) in bfloat16 against
    float32, on standardised, zero-padded X."""
    lengths = np.array([len(x) for x in X])
    padded = np.zeros((len(X), lengths.max(), X[0].shape[1]), np.float32)
    for i, x in enumerate(X):
        padded[i, :len(x)] = (x - clf.scaler_mean_) / clf.scaler_scale_
    steps = padded if clf.lstm_.batch_first else np.ascontiguousarray(padded.transpose(1, 0, 2))
    want, _ = clf.lstm_.forward(steps, lengths=lengths)
    got, _ = clf.lstm_.forward(steps, lengths=lengths, precision="bfloat16")
    return float(np.abs(got - want).max() / np.abs(want).max())


def measure(name, seed, epochs):
    X, y, X_test, y_test = load(name)
    clf = LSTMClassifier(max_iter=epochs, random_state=seed).fit(X, y)
    f32, f32_s = scored(clf, X_test, y_test, None)
    bf16, bf16_s = scored(clf, X_test, y_test, "bfloat16")
    proba = clf.set_params(predict_precision=None).predict_proba(X_test)
    proba_bf16 = clf.set_params(predict_precision="bfloat16").predict_proba(X_test)
    return dict(data=name, seed=seed, float32=f32, bfloat16=bf16, points=100 * (bf16 - f32),
                max_proba_diff=float(np.abs(proba - proba_bf16).max()),
                changed=int(np.sum(proba.argmax(1) != proba_bf16.argmax(1))), n_test=len(y_test),
                output_error=output_error(clf, X_test),
                float32_s=f32_s, bfloat16_s=bf16_s)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=DATA)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    print("| data | seed | test acc. float32 | bfloat16 | points | predictions changed | "
          "max proba diff | LSTM output error |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.data:
        for seed in args.seeds:
            r = measure(name, seed, args.epochs)
            rows.append(r)
            print(f"| {name} | {seed} | {r['float32']:.4f} | {r['bfloat16']:.4f} | "
                  f"{r['points']:+.2f} | {r['changed']} / {r['n_test']} | "
                  f"{r['max_proba_diff']:.1e} | {r['output_error']:.1e} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
