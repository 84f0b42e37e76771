"""lstm-fast demo: its tasks, and a small run through the command line."""

import json

import numpy as np
import pytest

from lstm_fast import cli
from lstm_fast.demo import Settings, run_demo
from lstm_fast.demo.tasks import TASKS, adding, temporal_order


def test_adding_problem_targets_and_chance_level():
    X, y = adding(20000, 30, np.random.default_rng(0))
    assert X.shape == (20000, 30, 2) and np.all(X[:, :, 1].sum(axis=1) == 2)
    first, second = (np.nonzero(X[i, :, 1])[0] for i in (0, 1))
    assert first[0] < 15 <= first[1] and second[0] < 15 <= second[1]  # one in each half
    np.testing.assert_allclose(y, (X[:, :, 0] * X[:, :, 1]).sum(axis=1), rtol=1e-6)
    assert np.var(y) == pytest.approx(TASKS["adding"][3], rel=0.03)  # the mean guess's MSE


@pytest.mark.parametrize("T", [20, 100])
def test_temporal_order_classes_are_the_two_symbols(T):
    X, y = temporal_order(4000, T, np.random.default_rng(1))
    symbols = X.argmax(axis=2)
    assert X.shape == (4000, T, 8) and np.all(X.sum(axis=2) == 1)
    assert np.all(symbols[:, 0] == 4) and np.all(symbols[:, -1] == 5)  # B ... E
    relevant = [np.nonzero(s >= 6)[0] for s in symbols]
    assert all(len(r) == 2 for r in relevant)
    for s, r, label in zip(symbols[:50], relevant, y[:50]):
        assert T // 10 <= r[0] <= T // 5 and T // 2 <= r[1] <= 3 * T // 5
        assert label == 2 * (s[r[0]] - 6) + (s[r[1]] - 6)
    assert np.bincount(y, minlength=4).min() > 900  # four balanced classes: chance error 0.75


def test_demo_runs_and_writes_its_results(tmp_path, monkeypatch, capsys):
    def tiny(self, quick=False, seed=0):
        self.quick, self.seed, self.lengths, self.probe_length = quick, seed, [6, 8], 8
        self.n_train, self.n_test, self.epochs = 40, 20, 2
        self.batch_size, self.hidden_size, self.learning_rate = 16, 4, 0.01
    monkeypatch.setattr(Settings, "__init__", tiny)
    path = tmp_path / "demo.json"
    assert cli.main(["demo", "--quick", "--out", str(tmp_path / "figs"), "--json",
                     str(path)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(path.read_text())
    assert len(results["rows"]) == 2 * 2 * 5  # tasks x lengths x models
    assert {"task", "T", "model", "steps", "error", "baseline", "solved",
            "seconds"} <= set(results["rows"][0])
    assert "adding" in printed and "LSTM, forget bias 0" in printed
    assert set(results["probes"]) == {"LSTM", "GRU", "RNN", "LSTM, forget bias 0",
                                      "LSTM, Glorot W_hh"}
    assert len(results["probes"]["LSTM"]["c"]) == 8
    assert np.asarray(results["probes"]["LSTM"]["forget_gate"]).shape == (8, 4)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "install matplotlib" in printed
    else:
        for name in ("error_curves.png", "gradient_flow.png", "forget_gate.png"):
            assert (tmp_path / "figs" / name).stat().st_size > 1000


def test_run_demo_is_deterministic(monkeypatch):
    settings = Settings(quick=True)
    settings.lengths, settings.n_train, settings.n_test, settings.epochs = [5], 32, 16, 1
    settings.probe_length = 5
    a, b = run_demo(settings), run_demo(settings)
    assert [r["error"] for r in a["rows"]] == [r["error"] for r in b["rows"]]
