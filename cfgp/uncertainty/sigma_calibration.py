"""σ you can act on: the GP's σ recalibrated on a calibration split (never the test split), heavier-tailed,
and wider where the domain model flags a material.

Measured on the shipped default (README, "Domain of applicability"): the GP's standardised residuals
z = (GP − DFT)/σ on held-out oxides are heavy-tailed — a Student-t with ν ≈ 2.4 degrees of freedom fits them
far better than a Gaussian (held-out NLL on the pool split by 2-fold cross-fitting −0.93 against −0.68 for a
Gaussian recalibration; ``benchmarks/sigma_model.py``) — and flagged materials have ~2.6× wider z. So the predictive distribution shipped is

    E_f ~ GP mean + scale · t_ν,   scale = τ_in · σ_GP            (in the domain)
                                   scale = τ_out · σ_GP           (latent far from the training set)
                                   scale = τ_rare · σ_GP          (an element in only a few training materials)
                                   scale = τ_new · σ_GP           (composition or elements outside training)
                                   scale = sqrt((τ_out · σ_GP)² + σ_emb²)   (an oxide with a never-trained element,
                                                                             when its σ_emb was drawn)

with ν and τ_in fitted by maximum likelihood on the in-domain calibration materials, τ_out on the far ones and
τ_rare on the rare-chemistry ones (ν fixed). New chemistry has no calibration material by definition, so τ_new is
fitted on chemical families held out of training *and* calibration (:mod:`cfgp.uncertainty.family_holdout`); without that
fit, the scale is max(τ_out · σ_GP, s₀) with s₀ the spread of the training energies (safe, but so wide that
held-out families were covered 100 % of the time with a poor NLL). Where a material's σ_emb is known — the spread of
the GP's mean when the embedding rows of its never-trained elements are drawn from trained ones
(:mod:`cfgp.uncertainty.embedding_draws`) — it replaces both, with nothing fitted: on four networks trained without a
chemical family, its mean pool NLL was 1.12 against the floor's 1.29 (``docs/domain.md``). The σ reported to users is the
"2σ-equivalent" ``sigma = scale · t_ν⁻¹(0.97725) / 2``, so that E_f ± 2σ is the central 95.45 % interval of
that distribution, exactly as for a Gaussian; the GP's own σ stays available as ``sigma_raw``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats
from cfgp.uncertainty.metrics import area_from_diagonal

#: central probabilities of the ±1σ and ±2σ intervals of a Gaussian
P1, P2 = 0.682689492137086, 0.954499736103642
#: fewer calibration materials than this in a class (in domain / flagged) and its scale is not fitted
MIN_CALIBRATION = 30


def scale_mle(z: np.ndarray, df: float | None) -> float:
    """Maximum-likelihood scale of zero-centred standardised residuals: Student-t with ``df`` fixed, or the RMS for a
    Gaussian (``df`` None)."""
    return _t_scale_mle(z, df) if df is not None else float(np.sqrt(np.mean(z**2)))


def _t_scale_mle(z: np.ndarray, df: float) -> float:
    """Maximum-likelihood scale of a zero-centred Student-t with ``df`` fixed."""
    def nll(log_s: float) -> float:
        return -float(np.mean(stats.t.logpdf(z / math.exp(log_s), df) - log_s))

    res = optimize.minimize_scalar(nll, bounds=(-6.0, 6.0), method="bounded")
    return float(math.exp(res.x))


def _ppf(q, df):
    return stats.norm.ppf(q) if df is None else stats.t.ppf(q, df)


def two_sigma_half_width(df: float | None) -> float:
    """Half-width, in scales, of the central 95.45 % interval of a Student-t of ``df`` (None: Gaussian, 2): a
    material is inside its ±2σ when |error| ≤ this × its scale."""
    return float(_ppf(0.5 + P2 / 2, df))


class SigmaCalibrator:
    """Maps the GP's σ and a material's domain flags to a Student-t predictive scale (scikit-learn style).

    ``fit`` sees calibration materials only: their GP σ, residuals (GP − DFT) and domain flags.
    """

    def __init__(self, min_calibration: int = MIN_CALIBRATION):
        self.min_calibration = min_calibration

    def fit(self, sigma: np.ndarray, residual: np.ndarray, in_domain: np.ndarray, new_chemistry: np.ndarray,
            floor: float, rare: np.ndarray | None = None, tau_new: float | None = None) -> "SigmaCalibrator":
        """sigma, residual : GP σ and GP − DFT of the calibration materials; in_domain : their domain flags;
        new_chemistry : composition or unseen-element flags; floor : s₀, the standard deviation of the training
        energies (eV/atom), used for new chemistry when no ``tau_new`` is given; rare : rare-element flags (their
        own scale τ_rare); tau_new : the new-chemistry scale fitted on held-out families."""
        sigma, residual = np.asarray(sigma, float), np.asarray(residual, float)
        in_domain, new_chemistry = np.asarray(in_domain, bool), np.asarray(new_chemistry, bool)
        rare = np.zeros(len(sigma), bool) if rare is None else np.asarray(rare, bool)
        if not (len(sigma) == len(residual) == len(in_domain) == len(new_chemistry) == len(rare)):
            raise ValueError("sigma, residual and the flags must have the same length")
        ok = np.isfinite(sigma) & np.isfinite(residual) & (sigma > 0)
        z = residual[ok] / sigma[ok]
        special = (rare | new_chemistry)[ok]
        zin, zout, zrare = z[in_domain[ok]], z[~in_domain[ok] & ~special], z[rare[ok] & ~new_chemistry[ok]]
        self.n_rare_ = int(len(zrare))
        self.tau_new_ = None if tau_new is None else float(tau_new)
        self.n_in_, self.n_flagged_ = int(len(zin)), int(len(zout))
        self.floor_ = float(floor)
        if len(zin) >= self.min_calibration:
            df, _, tau = stats.t.fit(zin, floc=0)
            self.df_ = None if df > 1e3 else float(df)
            self.tau_in_ = float(tau)
            self.fitted_ = True
        else:  # too few to fit: the GP's own Gaussian σ
            self.df_, self.tau_in_, self.fitted_ = None, 1.0, False
        if len(zout) >= self.min_calibration and self.fitted_:
            self.tau_out_ = scale_mle(zout, self.df_)
            self.tau_out_fitted_ = True
        else:
            self.tau_out_, self.tau_out_fitted_ = self.tau_in_, False
        if len(zrare) >= self.min_calibration and self.fitted_:
            self.tau_rare_ = scale_mle(zrare, self.df_)
        else:
            self.tau_rare_ = None  # too few to fit: rare chemistry gets τ_out
        return self

    @property
    def df(self) -> float | None:
        """Degrees of freedom of the predictive Student-t (None: Gaussian)."""
        return self.df_

    @property
    def two_sigma_factor(self) -> float:
        """sigma (2σ-equivalent) = scale × this factor."""
        return two_sigma_half_width(self.df_) / 2

    def scale(self, sigma: np.ndarray, in_domain: np.ndarray, new_chemistry: np.ndarray,
              rare: np.ndarray | None = None, spread: np.ndarray | None = None) -> np.ndarray:
        """Scale of the predictive Student-t per material.

        spread : σ_emb (eV/atom) per material, NaN where it was not drawn; a new-chemistry material with a finite
        one gets sqrt((τ_out·σ_GP)² + σ_emb²) instead of τ_new·σ_GP or the floor.
        """
        sigma = np.asarray(sigma, float)
        in_domain, new_chemistry = np.asarray(in_domain, bool), np.asarray(new_chemistry, bool)
        s = np.where(in_domain, self.tau_in_, self.tau_out_) * sigma
        if rare is not None and getattr(self, "tau_rare_", None) is not None:
            s = np.where(np.asarray(rare, bool), self.tau_rare_ * sigma, s)
        if getattr(self, "tau_new_", None) is not None:
            new = np.where(new_chemistry, self.tau_new_ * sigma, s)
        else:
            new = np.where(new_chemistry, np.maximum(s, self.floor_), s)
        if spread is None:
            return new
        spread = np.asarray(spread, float)
        if spread.shape != sigma.shape:
            raise ValueError(f"spread must have one value per material: {spread.shape} for {sigma.shape}")
        drawn = new_chemistry & np.isfinite(spread)
        return np.where(drawn, np.hypot(self.tau_out_ * sigma, np.where(drawn, spread, 0.0)), new)

    def transform(self, sigma: np.ndarray, in_domain: np.ndarray, new_chemistry: np.ndarray,
                  rare: np.ndarray | None = None, spread: np.ndarray | None = None) -> np.ndarray:
        """The σ shown to users: E_f ± 2σ is the central 95.45 % predictive interval."""
        return self.scale(sigma, in_domain, new_chemistry, rare, spread) * self.two_sigma_factor

    # ---------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {"df": self.df_, "tau_in": self.tau_in_, "tau_out": self.tau_out_, "floor": self.floor_,
                "n_in": self.n_in_, "n_flagged": self.n_flagged_, "fitted": self.fitted_,
                "tau_out_fitted": self.tau_out_fitted_, "min_calibration": self.min_calibration,
                "tau_rare": getattr(self, "tau_rare_", None), "n_rare": getattr(self, "n_rare_", 0),
                "tau_new": getattr(self, "tau_new_", None),
                "two_sigma_factor": self.two_sigma_factor}

    @classmethod
    def from_dict(cls, d: dict) -> "SigmaCalibrator":
        c = cls(min_calibration=d.get("min_calibration", MIN_CALIBRATION))
        c.df_ = d["df"]
        c.tau_in_, c.tau_out_, c.floor_ = float(d["tau_in"]), float(d["tau_out"]), float(d["floor"])
        c.n_in_, c.n_flagged_ = int(d["n_in"]), int(d["n_flagged"])
        c.fitted_, c.tau_out_fitted_ = bool(d["fitted"]), bool(d["tau_out_fitted"])
        c.tau_rare_, c.n_rare_, c.tau_new_ = d.get("tau_rare"), int(d.get("n_rare", 0)), d.get("tau_new")
        return c


def predictive_metrics(y_pred, scale, y_true, df: float | None = None, num_bins: int = 100) -> dict:
    """Calibration of a Student-t (``df``; None = Gaussian) predictive distribution with per-material ``scale``:
    coverage of its central 68.27 % and 95.45 % intervals (for a Gaussian, ±1σ and ±2σ), miscalibration area
    of its interval calibration curve (uncertainty-toolbox definition, as :mod:`cfgp.uncertainty.metrics`), mean NLL
    and MAE."""
    y_pred, scale, y_true = (np.asarray(a, float).ravel() for a in (y_pred, scale, y_true))
    if not len(y_pred) == len(scale) == len(y_true):
        raise ValueError("y_pred, scale and y_true must have the same length")
    if len(y_true) == 0:
        return {"n": 0}
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        raise ValueError("scale must be positive and finite")
    err = y_pred - y_true
    a = np.abs(err) / scale
    expected = np.linspace(0, 1, num_bins)
    observed = (a[:, None] <= _ppf(0.5 + expected / 2, df)[None, :]).mean(axis=0)
    logpdf = (stats.norm.logpdf(err, scale=scale) if df is None
              else stats.t.logpdf(err / scale, df) - np.log(scale))
    return {
        "n": int(len(err)),
        "mae": float(np.mean(np.abs(err))),
        "coverage_1sigma": float(np.mean(a <= _ppf(0.5 + P1 / 2, df))),
        "coverage_2sigma": float(np.mean(a <= two_sigma_half_width(df))),
        "miscalibration_area": area_from_diagonal(expected, observed),
        "nll": float(-np.mean(logpdf)),
    }
