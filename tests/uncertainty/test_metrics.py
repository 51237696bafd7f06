"""Our calibration metrics equal uncertainty-toolbox's on the same arrays."""

import numpy as np
import pytest
import uncertainty_toolbox as uct
from scipy import stats

from cfgp.uncertainty import metrics as cal


def _arrays(kind, n=700, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.normal(-2.4, 0.7, n)
    std = rng.uniform(0.02, 0.3, n)
    scale = {"calibrated": 1.0, "overconfident": 3.0, "underconfident": 0.3}[kind]
    y_pred = y_true + rng.normal(0, 1, n) * std * scale
    return y_pred, std, y_true


@pytest.mark.parametrize("kind", ["calibrated", "overconfident", "underconfident"])
def test_against_uncertainty_toolbox(kind):
    y_pred, std, y_true = _arrays(kind)
    ours = cal.regression_metrics(y_pred, std, y_true)
    acc = uct.metrics_accuracy.prediction_error_metrics(y_pred, y_true)
    for key in ("mae", "rmse", "r2"):
        assert ours[key] == pytest.approx(acc[key], rel=1e-12)
    assert ours["miscalibration_area"] == pytest.approx(uct.miscalibration_area(y_pred, std, y_true), abs=1e-12)
    assert ours["rms_calibration_error"] == pytest.approx(
        uct.root_mean_squared_calibration_error(y_pred, std, y_true), abs=1e-12)
    assert ours["sharpness"] == pytest.approx(uct.sharpness(std), rel=1e-12)
    assert ours["nll"] == pytest.approx(uct.nll_gaussian(y_pred, std, y_true), rel=1e-12)
    exp, obs = cal.calibration_curve(y_pred, std, y_true)
    uexp, uobs = uct.get_proportion_lists(y_pred, std, y_true)
    np.testing.assert_allclose(exp, uexp)
    np.testing.assert_allclose(obs, uobs)
    assert ours["coverage_1sigma"] == pytest.approx(uct.metrics_calibration.get_proportion_in_interval(
        y_pred, std, y_true, stats.norm.cdf(1) - stats.norm.cdf(-1)), abs=2 / len(y_true))


def test_metrics_react_to_miscalibration():
    good = cal.regression_metrics(*_arrays("calibrated"))
    over = cal.regression_metrics(*_arrays("overconfident"))
    assert abs(good["coverage_2sigma"] - 0.954) < 0.03
    assert over["coverage_2sigma"] < 0.7
    assert over["miscalibration_area"] > 3 * good["miscalibration_area"]
    assert over["ence"] > good["ence"]


def test_dispersion_ence_and_spearman_by_hand():
    std = np.array([0.1, 0.1, 0.2, 0.4])
    assert cal.dispersion(std) == pytest.approx(np.std(std, ddof=1) / 0.2)
    y_true = np.zeros(4)
    y_pred = np.array([0.1, -0.1, 0.0, 0.8])
    # two bins by sorted σ: {0.1, 0.1} with RMSE 0.1 (perfect) and {0.2, 0.4}: RMV √0.1, RMSE √0.32
    expected = (0 + abs(np.sqrt(0.1) - np.sqrt(0.32)) / np.sqrt(0.1)) / 2
    assert cal.ence(y_pred, std, y_true, n_bins=2) == pytest.approx(expected)
    assert cal.coverage(y_pred, std, y_true, 1.0) == 0.75
    assert cal.coverage(y_pred, std, y_true, 2.0) == 1.0
    np.testing.assert_allclose(cal.excess_over_2sigma(y_pred, std, y_true), [-0.1, -0.1, -0.4, 0.0])


def test_bad_sigma_is_refused():
    with pytest.raises(ValueError, match="positive"):
        cal.regression_metrics([1.0, 2.0], [0.1, 0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no predictions"):
        cal.regression_metrics([], [], [])
