"""Accuracy and uncertainty-calibration metrics for Gaussian predictions (mean, σ).

Definitions follow uncertainty-toolbox (Chung et al. 2021), checked against it in the tests:
interval calibration curve over 100 proportions, miscalibration area by trapezoids,
sharpness = sqrt(mean σ²), NLL = mean Gaussian negative log-likelihood. Dispersion is the
coefficient of variation of σ and ENCE the expected normalised calibration error
(Levi et al. 2022; Scalia et al. 2020), which uncertainty-toolbox does not provide.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

METRIC_LABELS = {
    "n": "materials",
    "mae": "MAE (eV/atom)",
    "rmse": "RMSE (eV/atom)",
    "r2": "R²",
    "coverage_1sigma": "coverage at 1σ (ideal 0.683)",
    "coverage_2sigma": "coverage at 2σ (ideal 0.954)",
    "miscalibration_area": "miscalibration area (ideal 0)",
    "rms_calibration_error": "RMS calibration error",
    "sharpness": "sharpness √⟨σ²⟩ (eV/atom)",
    "dispersion": "dispersion Cv of σ",
    "nll": "mean NLL",
    "ence": "ENCE",
    "spearman_error_sigma": "Spearman ρ(|error|, σ)",
}


def _check(y_pred, y_std, y_true):
    y_pred, y_std, y_true = (np.asarray(a, dtype=float).ravel() for a in (y_pred, y_std, y_true))
    if not (len(y_pred) == len(y_std) == len(y_true)):
        raise ValueError("y_pred, y_std and y_true must have the same length")
    if len(y_true) == 0:
        raise ValueError("no predictions to score")
    if np.any(y_std <= 0) or not np.all(np.isfinite(y_std)):
        raise ValueError("σ must be positive and finite")
    return y_pred, y_std, y_true


def calibration_curve(y_pred, y_std, y_true, num_bins: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Expected vs observed proportion of labels inside centred Gaussian intervals."""
    y_pred, y_std, y_true = _check(y_pred, y_std, y_true)
    expected = np.linspace(0, 1, num_bins)
    multiples = stats.norm.ppf(0.5 + expected / 2.0)
    z = np.abs(y_pred - y_true) / y_std
    observed = (z[:, None] <= multiples[None, :]).mean(axis=0)
    return expected, observed


def miscalibration_area(y_pred, y_std, y_true, num_bins: int = 100) -> float:
    expected, observed = calibration_curve(y_pred, y_std, y_true, num_bins)
    return float(area_from_diagonal(expected, observed))


def area_from_diagonal(expected: np.ndarray, observed: np.ndarray) -> float:
    """Area between the curve (expected, observed) and the diagonal, crossing-aware."""
    d = observed - expected
    x0, x1, d0, d1 = expected[:-1], expected[1:], d[:-1], d[1:]
    width = x1 - x0
    same = d0 * d1 >= 0
    area_same = 0.5 * width * np.abs(d0 + d1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.abs(d0) / (np.abs(d0) + np.abs(d1))
    area_cross = 0.5 * width * (np.abs(d0) * frac + np.abs(d1) * (1 - frac))
    return float(np.where(same, area_same, np.nan_to_num(area_cross)).sum())


def rms_calibration_error(y_pred, y_std, y_true, num_bins: int = 100) -> float:
    expected, observed = calibration_curve(y_pred, y_std, y_true, num_bins)
    return float(np.sqrt(np.mean((expected - observed) ** 2)))


def coverage(y_pred, y_std, y_true, k: float = 2.0) -> float:
    """Fraction of labels within ±kσ of the mean."""
    y_pred, y_std, y_true = _check(y_pred, y_std, y_true)
    return float(np.mean(np.abs(y_pred - y_true) <= k * y_std))


def sharpness(y_std) -> float:
    y_std = np.asarray(y_std, dtype=float)
    return float(np.sqrt(np.mean(y_std**2)))


def dispersion(y_std) -> float:
    """Coefficient of variation of σ: 0 means every prediction gets the same σ."""
    y_std = np.asarray(y_std, dtype=float)
    if len(y_std) < 2:
        return float("nan")
    return float(np.std(y_std, ddof=1) / np.mean(y_std))


def nll_gaussian(y_pred, y_std, y_true) -> float:
    y_pred, y_std, y_true = _check(y_pred, y_std, y_true)
    return float(-np.mean(stats.norm.logpdf(y_pred - y_true, scale=y_std)))


def ence(y_pred, y_std, y_true, n_bins: int = 10) -> float:
    """Expected normalised calibration error: mean over σ-sorted bins of |RMV − RMSE| / RMV."""
    y_pred, y_std, y_true = _check(y_pred, y_std, y_true)
    order = np.argsort(y_std, kind="stable")
    bins = [b for b in np.array_split(order, min(n_bins, len(order))) if len(b)]
    rmv = np.array([np.sqrt(np.mean(y_std[b] ** 2)) for b in bins])
    rmse = np.array([np.sqrt(np.mean((y_pred[b] - y_true[b]) ** 2)) for b in bins])
    return float(np.mean(np.abs(rmv - rmse) / rmv))


def regression_metrics(y_pred, y_std, y_true) -> dict[str, float]:
    """Every metric cfgp reports, as a flat dict of floats (keys in METRIC_LABELS)."""
    y_pred, y_std, y_true = _check(y_pred, y_std, y_true)
    err = y_pred - y_true
    ss_tot = np.sum((y_true - y_true.mean()) ** 2)
    rho = stats.spearmanr(np.abs(err), y_std).statistic if len(err) > 2 else float("nan")
    return {
        "n": int(len(err)),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": float(1 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "coverage_1sigma": coverage(y_pred, y_std, y_true, 1.0),
        "coverage_2sigma": coverage(y_pred, y_std, y_true, 2.0),
        "miscalibration_area": miscalibration_area(y_pred, y_std, y_true),
        "rms_calibration_error": rms_calibration_error(y_pred, y_std, y_true),
        "sharpness": sharpness(y_std),
        "dispersion": dispersion(y_std),
        "nll": nll_gaussian(y_pred, y_std, y_true),
        "ence": ence(y_pred, y_std, y_true),
        "spearman_error_sigma": float(rho),
    }


def excess_over_2sigma(y_pred, y_std, y_true) -> np.ndarray:
    """|residual| − 2σ per material: positive values are outside the 95 % interval (the paper's outliers)."""
    return np.abs(np.asarray(y_pred) - np.asarray(y_true)) - 2 * np.asarray(y_std)
