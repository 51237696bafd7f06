"""An independent reference for the tests: the exact GP posterior with the Laplacian kernel in a few lines
of NumPy/SciPy (no TensorFlow, no code from cfgp), so expectations do not come from the code under test."""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.spatial.distance import cdist


def laplacian(A, B, amplitude, length_scale):
    return amplitude**2 * np.exp(-cdist(A, B) / length_scale)


def posterior(X, y, Q, amplitude, length_scale, noise_variance, mean=0.0):
    """Posterior mean and predictive σ (of a noisy label) at Q, for a GP conditioned on (X, y)."""
    K = laplacian(X, X, amplitude, length_scale) + noise_variance * np.eye(len(X))
    c = cho_factor(K, lower=True)
    Kq = laplacian(X, Q, amplitude, length_scale)
    mu = mean + Kq.T @ cho_solve(c, np.asarray(y, float) - mean)
    var = amplitude**2 + noise_variance - np.einsum("ij,ij->j", Kq, cho_solve(c, Kq))
    return mu, np.sqrt(np.maximum(var, 0.0))


def neg_log_marginal_likelihood(X, y, amplitude, length_scale, noise_variance, mean=0.0):
    """−log p(y | X) of the GP, per point (the objective cfgp minimises)."""
    K = laplacian(X, X, amplitude, length_scale) + noise_variance * np.eye(len(X))
    L = np.linalg.cholesky(K)
    alpha = np.linalg.solve(L, np.asarray(y, float) - mean)
    return (0.5 * alpha @ alpha + np.log(np.diag(L)).sum()) / len(y) + 0.5 * np.log(2 * np.pi)


def standardise(X_train, *others):
    """Per-feature standardisation on the training rows (what 'standard' feature scaling means)."""
    mu, sd = X_train.mean(axis=0), X_train.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return [(np.asarray(A, float) - mu) / sd for A in (X_train, *others)]


def gp_posterior_from_saved(gp_dict, X_train, y_train, Q):
    """Posterior of a GP saved by cfgp (gp.json's "gp"), using only its numbers: scaler, a, l, noise, mean."""
    h, s = gp_dict["hyperparameters"], gp_dict["scaler"]
    shift, scale = np.asarray(s["shift"]), np.asarray(s["scale"])
    Xs, Qs = (np.asarray(X_train) - shift) / scale, (np.asarray(Q) - shift) / scale
    return posterior(Xs, y_train, Qs, h["amplitude"], h["length_scale"], h["noise_variance"], h["mean_constant"])
