"""Sparse variational GP regression (SGPR, Titsias 2009) with CFGP's Laplacian kernel, in NumPy/SciPy.

An exact GP conditions on n points with an n×n Cholesky: O(n³) time and O(n²) memory — 10 GB of kernel
matrix at the 35,000 labelled materials shipped. SGPR summarises the data through m ≪ n inducing inputs Z
and the optimal Gaussian q(u) over f(Z) for fixed hyper-parameters (Titsias' collapsed bound):

    ELBO = log N(y − μ | 0, Q_ff + σ²I) − tr(K_ff − Q_ff) / (2σ²),   Q_ff = K_fu K_uu⁻¹ K_uf,

a lower bound on the log marginal likelihood that equals it when Z = X. Everything the posterior needs
is the m×m matrix A Aᵀ and the m-vector A r with A = L⁻¹K_uf/σ (L the Cholesky factor of K_uu), which
are accumulated over chunks of rows: O(n·m²) time and O(m² + m·chunk) memory for the conditioning, and
O(n·m) for the greedy choice of Z. Predictions follow GPflow's SGPR (whitened, two triangular solves).

Why NumPy and not GPflow: gpflow 2.11.2 (the current release) requires ``numpy<2`` while the project pins
numpy 2.4.6 (TensorFlow 2.21 and pandas 3 need numpy 2); installing it would downgrade numpy under the whole
stack. TFP's variational GP would run on TensorFlow's CPU kernels, which measured 2–3× slower than LAPACK
here for the same Cholesky and solves (see /README "Hyper-parameter fit speed"), as CFGP's CPU fit does.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from scipy.spatial.distance import cdist

from cfgp.predictive import predictive_output, std_from_variance

INDUCING_METHODS = ("greedy", "kmeans", "random")


def laplacian(A: np.ndarray, B: np.ndarray, amplitude: float, length_scale: float) -> np.ndarray:
    """a² exp(−‖a_i − b_j‖/l) with exact (difference-based) Euclidean distances, as CFGP computes them."""
    return amplitude**2 * np.exp(-cdist(A, B) / length_scale)


def greedy_inducing(X: np.ndarray, m: int, amplitude: float, length_scale: float, first: int = 0,
                    tol: float = 1e-10) -> np.ndarray:
    """Indices of m rows of X chosen by greedy conditional variance (a pivoted Cholesky of K_ff).

    Each step picks the point whose prior variance is least explained by the points already picked, i.e.
    the largest diagonal entry of K_ff − Q_ff; this drives tr(K_ff − Q_ff), the gap between the ELBO and the
    log marginal likelihood, down fastest among simple rules (Burt, Rasmussen & van der Wilk 2020). The
    selections are nested (the first k of m are the k-point choice). O(n·m²) time, O(n·m) memory (the
    m×n factor), never n×n. Stops early when every residual variance is below ``tol``·a² (duplicates).
    """
    n = len(X)
    m = min(int(m), n)
    a2 = amplitude**2
    resid = np.full(n, a2)
    V = np.empty((m, n))
    picked: list[int] = []
    i = int(first)
    for j in range(m):
        if j > 0:
            i = int(np.argmax(resid))
        if resid[i] <= tol * a2:
            break
        k = a2 * np.exp(-cdist(X[i:i + 1], X)[0] / length_scale)
        v = k - V[:j, i] @ V[:j] if j else k
        v /= math.sqrt(resid[i])
        V[j] = v
        resid -= v * v
        resid[i] = 0.0
        np.maximum(resid, 0.0, out=resid)
        picked.append(i)
    return np.asarray(picked, dtype=int)


def choose_inducing(X: np.ndarray, m: int, method: str, amplitude: float, length_scale: float,
                    seed: int = 0) -> np.ndarray:
    """m inducing inputs for X (already scaled): rows of X ('greedy', 'random') or k-means centres."""
    if method not in INDUCING_METHODS:
        raise ValueError(f"inducing must be one of {INDUCING_METHODS}, not {method!r}")
    if m >= len(X):
        return X.copy()  # Z = X: SGPR is then the exact GP
    rng = np.random.default_rng(seed)
    if method == "greedy":
        return X[greedy_inducing(X, m, amplitude, length_scale, first=int(rng.integers(len(X))))]
    if method == "random":
        return X[np.sort(rng.choice(len(X), m, replace=False))]
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=m, n_init=1, max_iter=50, random_state=seed).fit(X).cluster_centers_


class SparseGP:
    """SGPR posterior with fixed hyper-parameters on already-scaled inputs (CFGP scales and fits them).

    Parameters
    ----------
    amplitude, length_scale, noise_variance, mean_constant : the GP's hyper-parameters (as CFGP's).
    n_inducing : m, the number of inducing inputs (m ≥ n uses every training point: the exact GP).
    inducing : how Z is chosen — 'greedy' conditional variance (default), 'kmeans' centres, 'random' rows.
    jitter : added to K_uu's diagonal (relative to a²), raised ×10 until its Cholesky succeeds.
    chunk_size : rows of X per block when accumulating (memory m × chunk_size).
    """

    def __init__(self, amplitude: float, length_scale: float, noise_variance: float, mean_constant: float = 0.0,
                 n_inducing: int = 1000, inducing: Literal["greedy", "kmeans", "random"] = "greedy",
                 seed: int = 0, jitter: float = 1e-9, chunk_size: int = 4096):
        if noise_variance <= 0:
            raise ValueError("a sparse GP needs a positive noise variance (its bound divides by σ²)")
        if inducing not in INDUCING_METHODS:
            raise ValueError(f"inducing must be one of {INDUCING_METHODS}, not {inducing!r}")
        if int(n_inducing) < 1:
            raise ValueError(f"n_inducing must be at least 1, got {n_inducing}")
        self.amplitude, self.length_scale = float(amplitude), float(length_scale)
        self.noise_variance, self.mean_constant = float(noise_variance), float(mean_constant)
        self.n_inducing, self.inducing, self.seed = int(n_inducing), inducing, seed
        self.jitter, self.chunk_size = float(jitter), int(chunk_size)

    # ------------------------------------------------------------------ fit
    def fit(self, X: np.ndarray, y: np.ndarray, Z: np.ndarray | None = None) -> "SparseGP":
        """Choose the inducing inputs (unless ``Z`` is given) and condition on (X, y)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError("X and y must be finite")
        if Z is None:
            Z = choose_inducing(X, self.n_inducing, self.inducing, self.amplitude, self.length_scale, self.seed)
        self.Z_ = np.asarray(Z, dtype=np.float64)
        self._factor_kuu()
        m = len(self.Z_)
        self.AAT_, self.Ar_ = np.zeros((m, m)), np.zeros(m)
        self.n_, self.rr_, self.trace_AAT_ = 0, 0.0, 0.0
        self._accumulate(X, y)
        self._finish()
        return self

    def _factor_kuu(self) -> None:
        Kuu = laplacian(self.Z_, self.Z_, self.amplitude, self.length_scale)
        jitter = self.jitter * self.amplitude**2
        for _ in range(8):
            try:
                self.L_ = cholesky(Kuu + jitter * np.eye(len(Kuu)), lower=True)
                self.jitter_used_ = jitter
                return
            except np.linalg.LinAlgError:
                jitter *= 10
        raise np.linalg.LinAlgError("K_uu is not positive definite even with jitter (duplicate inducing inputs?)")

    def _whitened(self, X: np.ndarray) -> np.ndarray:
        """L⁻¹ K(Z, X): the inputs' kernel against Z in the whitened basis (m × len(X))."""
        return solve_triangular(self.L_, laplacian(self.Z_, X, self.amplitude, self.length_scale), lower=True,
                                check_finite=False)

    def _accumulate(self, X: np.ndarray, y: np.ndarray) -> None:
        sigma = math.sqrt(self.noise_variance)
        for s in range(0, len(X), self.chunk_size):
            A = self._whitened(X[s:s + self.chunk_size]) / sigma
            r = y[s:s + self.chunk_size] - self.mean_constant
            self.AAT_ += A @ A.T
            self.Ar_ += A @ r
            self.rr_ += float(r @ r)
        self.n_ += len(X)

    def _finish(self) -> None:
        m = len(self.Z_)
        self.trace_AAT_ = float(np.trace(self.AAT_))
        self.LB_ = cholesky(np.eye(m) + self.AAT_, lower=True)
        self.c_ = solve_triangular(self.LB_, self.Ar_, lower=True) / math.sqrt(self.noise_variance)

    def add(self, X_new: np.ndarray, y_new: np.ndarray) -> "SparseGP":
        """Condition on extra labelled points with Z and the hyper-parameters fixed: a rank-k update of the
        m×m statistics and one m×m Cholesky (O(m²k + m³)), equal to a fit on all points with the same Z."""
        X_new = np.atleast_2d(np.asarray(X_new, dtype=np.float64))
        y_new = np.atleast_1d(np.asarray(y_new, dtype=np.float64))
        if len(X_new) != len(y_new) or not (np.isfinite(X_new).all() and np.isfinite(y_new).all()):
            raise ValueError("X_new and y_new must be finite and the same length")
        self._accumulate(X_new, y_new)
        self._finish()
        return self

    # -------------------------------------------------------------- predict
    def predict(self, X: np.ndarray, return_std: bool = False, include_noise: bool = True,
                batch_size: int = 4096):
        """Posterior mean and, with ``return_std``, the predictive σ of a label (``include_noise=False``: of
        the latent function), as :meth:`cfgp.gp.CFGP.predict`:
        mean = μ + (LB⁻¹L⁻¹k_u*)ᵀc, var_f = a² − ‖L⁻¹k_u*‖² + ‖LB⁻¹L⁻¹k_u*‖²."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        means, stds = [], []
        for s in range(0, len(X), batch_size):
            t1 = self._whitened(X[s:s + batch_size])
            t2 = solve_triangular(self.LB_, t1, lower=True, check_finite=False)
            means.append(self.mean_constant + t2.T @ self.c_)
            if return_std:
                var = self.amplitude**2 - (t1 * t1).sum(axis=0) + (t2 * t2).sum(axis=0)
                if include_noise:
                    var += self.noise_variance
                stds.append(std_from_variance(var))
        return predictive_output(means, stds, return_std)

    def elbo(self) -> float:
        """Titsias' collapsed lower bound on log p(y) (total, not per point) at the current Z and hyper-parameters."""
        n, s2 = self.n_, self.noise_variance
        return float(-0.5 * n * math.log(2 * math.pi) - np.log(np.diag(self.LB_)).sum() - 0.5 * n * math.log(s2)
                     - 0.5 * self.rr_ / s2 + 0.5 * self.c_ @ self.c_
                     - 0.5 * n * self.amplitude**2 / s2 + 0.5 * self.trace_AAT_)

    @property
    def trace_gap_(self) -> float:
        """tr(K_ff − Q_ff): the prior variance the inducing inputs do not explain (0 when Z = X)."""
        return float(self.n_ * self.amplitude**2 - self.noise_variance * self.trace_AAT_)
