"""LSTMForecaster: shapes, covariates, bookkeeping, and forecasts of real series (statsmodels'
sunspots and CO2, the airline passengers) against naive, seasonal-naive and AR baselines."""

import io
import warnings

import numpy as np
import pytest

import lstm_fast
from lstm_fast import LSTMForecaster

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Box & Jenkins' airline passengers, monthly totals in thousands, 1949-1960 (as aeon and
# sktime ship them).
AIRLINE = np.array([
    112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118, 115, 126, 141, 135, 125, 149,
    170, 170, 158, 133, 114, 140, 145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166,
    171, 180, 193, 181, 183, 218, 230, 242, 209, 191, 172, 194, 196, 196, 236, 235, 229, 243,
    264, 272, 237, 211, 180, 201, 204, 188, 235, 227, 234, 264, 302, 293, 259, 229, 203, 229,
    242, 233, 267, 269, 270, 315, 364, 347, 312, 274, 237, 278, 284, 277, 317, 313, 318, 374,
    413, 405, 355, 306, 271, 306, 315, 301, 356, 348, 355, 422, 465, 467, 404, 347, 305, 336,
    340, 318, 362, 348, 363, 435, 491, 505, 404, 359, 310, 337, 360, 342, 406, 396, 420, 472,
    548, 559, 463, 407, 362, 405, 417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432],
    dtype=float)


def _seasonal(n=150, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + np.sin(2 * np.pi * t / 12) + 0.02 * t + 0.05 * rng.standard_normal(n)


def test_shapes_follow_y():
    y = _seasonal()
    small = dict(window=12, horizon=6, hidden_size=8, max_iter=2, random_state=0)
    assert LSTMForecaster(**small).fit(y).predict(6).shape == (6,)
    assert LSTMForecaster(**small).fit(y).predict(14).shape == (14,)  # fed back past 6
    two = np.column_stack([y, 2 * y])
    assert LSTMForecaster(**small).fit(two).predict(3).shape == (3, 2)
    ragged = LSTMForecaster(**small).fit([y, y[:40]]).predict(4)
    assert isinstance(ragged, list) and [p.shape for p in ragged] == [(4,), (4,)]
    assert LSTMForecaster(recursive=True, **small).fit(y).predict(5).shape == (5,)


def test_forecasts_start_after_the_last_window_and_are_level_free():
    """The model reads values relative to the window's last one: the same series shifted by a
    constant forecasts the same shape shifted by it (up to float32 rounding)."""
    y = _seasonal()
    params = dict(window=12, horizon=6, hidden_size=8, max_iter=3, random_state=0)
    base = LSTMForecaster(**params).fit(y).predict(6)
    shifted = LSTMForecaster(**params).fit(y + 1000).predict(6)
    np.testing.assert_allclose(shifted - 1000, base, atol=1e-3)


def test_covariates_in_fit_and_predict():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((150, 2))
    y = _seasonal() + np.r_[0, X[:-1, 0]]  # the next value follows the covariate
    f = LSTMForecaster(window=12, horizon=3, hidden_size=8, max_iter=2, random_state=0)
    f.fit(y, X)
    assert f.n_covariates_ == 2 and f.predict(3).shape == (3,)
    assert f.predict(7, X=rng.standard_normal((7, 2))).shape == (7,)
    with pytest.raises(ValueError, match="X: a forecast of 7 steps.*covariates"):
        f.predict(7)
    with pytest.raises(ValueError, match="X has 3 covariates, but fit saw 2"):
        f.predict(3, X=np.zeros((3, 3)))
    shared = LSTMForecaster(window=12, horizon=3, hidden_size=8, max_iter=1, random_state=0)
    shared.fit(np.column_stack([y, y]), np.stack([X, X], axis=1))
    assert shared.predict(2).shape == (2, 2)
    with pytest.raises(ValueError, match="X has 149 steps for series 0, which has 150"):
        LSTMForecaster(window=12).fit(y, X[:-1])


def test_bad_input_is_named():
    y = _seasonal()
    with pytest.raises(ValueError, match="series 1 has 20 values, fewer than window \\+ horizon"):
        LSTMForecaster(window=12, horizon=12).fit([y, y[:20]])
    with pytest.raises(ValueError, match="y.*NaN"):
        LSTMForecaster().fit(np.r_[y, np.nan])
    with pytest.raises(ValueError, match="y: Found array with dim 3"):
        LSTMForecaster().fit(np.zeros((10, 2, 2)))
    f = LSTMForecaster(window=12, horizon=3, hidden_size=4, max_iter=1).fit(y)
    with pytest.raises(ValueError, match="horizon must be a positive int"):
        f.predict(0)
    with pytest.raises(ValueError, match="fit without covariates"):
        f.predict(3, X=np.zeros((3, 1)))


def _real_series():
    sm = pytest.importorskip("statsmodels.api")
    sunspots = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().ffill().to_numpy()
    # (name, series, season, horizon held out, scaling): the sunspot cycle is stationary, its
    # level matters; CO2 and the airline passengers trend
    return [("sunspots", sunspots, 11, 22, "series"), ("co2", co2, 12, 24, "window"),
            ("airline", AIRLINE, 12, 24, "window")]


def _baselines(train, test, season):
    from statsmodels.tsa.ar_model import AutoReg

    h = len(test)
    mae = {"naive": np.abs(train[-1] - test).mean(),
           "seasonal naive": np.abs(np.resize(train[-season:], h) - test).mean()}
    ar = AutoReg(train, lags=2 * season).fit()
    mae["AR"] = np.abs(ar.predict(len(train), len(train) + h - 1) - test).mean()
    return mae


@pytest.mark.parametrize("name", ["sunspots", "co2", "airline"])
def test_forecasts_beat_seasonal_naive_on_real_series(name):
    """Mean absolute errors measured (seed 0): sunspots 18.6 (seasonal naive 38.5, AR 19.3),
    CO2 0.25 (1.88, 0.51), airline 30.9 (71.3, 19.1)."""
    _, y, season, h, scaling = next(s for s in _real_series() if s[0] == name)
    train, test = y[:-h], y[-h:]
    baselines = _baselines(train, test, season)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = LSTMForecaster(window=2 * season, horizon=h, scaling=scaling, random_state=0)
        f.fit(train)
    ours = np.abs(f.predict(h) - test).mean()
    assert ours < baselines["seasonal naive"], (ours, baselines)


def test_scikit_learn_conventions():
    import pickle

    from sklearn.base import clone

    y = _seasonal()
    f = LSTMForecaster(window=12, horizon=4, hidden_size=6, max_iter=2, random_state=0)
    assert clone(f).get_params() == f.get_params()
    f.fit(y)
    again = pickle.loads(pickle.dumps(f))
    np.testing.assert_array_equal(again.predict(8), f.predict(8))
    np.testing.assert_array_equal(
        LSTMForecaster(**f.get_params()).fit(y).predict(4), f.predict(4))  # deterministic
    with pytest.raises(ValueError, match="scaling"):
        LSTMForecaster(scaling="global").fit(y)
    before = f.predict(4)
    f.set_params(window=6, scaling="series")  # the fitted model keeps what fit used
    np.testing.assert_array_equal(f.predict(4), before)
    with pytest.raises(TypeError, match="use pickle or joblib"):
        lstm_fast.io.save(f, io.BytesIO())
