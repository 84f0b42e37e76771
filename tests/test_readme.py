"""The README's Python examples run, in order, as a user would paste them."""

import pathlib
import re
import warnings

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _examples():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.skipif(not README.exists(), reason="needs the source tree's README")
def test_the_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # (they write model files)
    examples = _examples()
    assert len(examples) >= 4
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for code in examples:
            exec(compile(code, str(README), "exec"), namespace)
    tagger, ragged = namespace["tagger"], namespace["ragged"]
    assert [p.shape for p in tagger.predict(ragged[:3])] == [(5,), (6,), (7,)]
    assert namespace["values"].predict(namespace["X"][:2]).shape == (2, 15, 1)
    bf16, int8, f32 = namespace["out_bf16"], namespace["out_int8"], namespace["out_f32"]
    assert 0 < np.abs(bf16 - f32).max() / np.abs(f32).max() <= 1e-2
    assert 0 < np.abs(int8 - f32).max() / np.abs(f32).max() <= 3e-2


@pytest.mark.parametrize("name", ["LSTMClassifier", "LSTMRegressor", "LSTMSequenceClassifier",
                                  "LSTMSequenceRegressor", "LSTMForecaster"])
def test_the_docstring_examples_run(name):
    import doctest

    import lstm_fast

    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    tests = [t for t in finder.find(getattr(lstm_fast, name), name) if t.examples]
    assert tests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for test in tests:
            runner.run(test)
    assert runner.failures == 0
