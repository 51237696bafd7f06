"""Convolution-fed Gaussian process: an exact GP with the Laplacian kernel on MEGNet latents.

k(x, y) = a² exp(−‖x − y‖₂ / l)  (TFP ``MaternOneHalf``), Gaussian likelihood with noise
variance σ²ₙ, constant mean. Written in float64 TensorFlow ops so it runs on a GPU when
TensorFlow sees one. Hyper-parameters are fitted by maximising the log marginal likelihood
with L-BFGS on at most ``max_fit_points`` points, then the GP conditions on all the data.
Labelled points added later enter through a bordered Cholesky update (O(n²)), not a refit.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

import cfgp  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from cfgp.local_gp import N_NEIGHBOURS, LocalGP  # N_NEIGHBOURS: training points each local query conditions on
from cfgp.predictive import predictive_output, std_from_variance
from cfgp.sparse_gp import SparseGP
from sklearn.base import BaseEstimator, RegressorMixin

JITTER = 1e-8
METHODS = ("auto", "exact", "sparse", "local")
LOCAL_ABOVE = 10_000  # method="auto" conditions on nearest neighbours above this many points (README "Scaling out")
N_INDUCING = 2000  # default inducing inputs of the sparse GP (README "Scaling out")
MIN_NOISE = 1e-6  # floor on a fitted noise variance (eV/atom)², keeps the Cholesky stable


def tf_device() -> str:
    """The TensorFlow device the GP runs on: '/GPU:0' when one is visible, else '/CPU:0'."""
    import tensorflow as tf

    return "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"


def device_label() -> str:
    """A human-readable device name for the app and the CLI."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    except Exception:
        name = "GPU"
    return f"GPU ({name})"


def laplacian_kernel(amplitude, length_scale):
    """TFP's Matérn-½ kernel: a² exp(−‖x−y‖/l) with Euclidean distance."""
    import tensorflow_probability as tfp

    return tfp.math.psd_kernels.MaternOneHalf(amplitude=amplitude, length_scale=length_scale)


def pairwise_distances(A, B, max_elements: int = 1 << 24):
    """Exact Euclidean distances ‖a_i − b_j‖ as a float64 tensor.

    TFP's ``kernel.matrix`` expands ‖a‖² + ‖b‖² − 2a·b, whose round-off (~1e-15) becomes ~3e-8
    after the square root at near-zero distances (the diagonal); differences avoid that, and
    ``MaternOneHalf.apply`` on the same differences gives the same values (tested). On a CPU SciPy's
    ``cdist`` takes the differences in C, 11 times faster than TensorFlow's broadcast (0.20 s against 2.23 s
    for 1,800 × 1,800 plus 1,800 × 4,096 in 32-d, one core) and equal to it within 6e-15; on a GPU TensorFlow
    does it there, in row chunks of at most ``max_elements`` differences to bound memory.
    """
    import tensorflow as tf

    if tf_device() == "/CPU:0" and tf.executing_eagerly():
        from scipy.spatial.distance import cdist

        A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
        return tf.constant(cdist(A, B) if len(A) and len(B) else np.zeros((len(A), len(B))))
    A = tf.convert_to_tensor(A, tf.float64)
    B = tf.convert_to_tensor(B, tf.float64)
    rows = max(1, max_elements // max(1, int(B.shape[0]) * int(B.shape[1])))
    out = [tf.sqrt(tf.reduce_sum(tf.square(A[i:i + rows, None, :] - B[None, :, :]), axis=-1))
           for i in range(0, int(A.shape[0]), rows)]
    return tf.concat(out, axis=0) if out else tf.zeros((0, int(B.shape[0])), tf.float64)


@dataclass
class FeatureScaler:
    """Per-feature affine scaling fitted on the training latents ('standard', 'minmax' or None)."""

    kind: str | None = "standard"
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "FeatureScaler":
        d = X.shape[1]
        if self.kind is None:
            self.shift, self.scale = np.zeros(d), np.ones(d)
        elif self.kind == "standard":
            sd = X.std(axis=0)
            self.shift, self.scale = X.mean(axis=0), np.where(sd > 1e-12, sd, 1.0)
        elif self.kind == "minmax":
            rng = X.max(axis=0) - X.min(axis=0)
            self.shift, self.scale = X.min(axis=0), np.where(rng > 1e-12, rng, 1.0)
        else:
            raise ValueError(f"unknown feature scaling {self.kind!r}")
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.shift) / self.scale


@dataclass
class FitInfo:
    converged: bool = False
    iterations: int = 0
    n_fit_points: int = 0
    neg_log_marginal_likelihood: float = float("nan")
    seconds: float = 0.0
    history: list = field(default_factory=list)


class CFGP(RegressorMixin, BaseEstimator):
    """Exact GP regressor on latent vectors, a scikit-learn estimator: ``fit`` returns self, ``get_params`` /
    ``set_params`` and ``sklearn.base.clone`` work, ``score`` is R².

    Parameters
    ----------
    amplitude, length_scale, noise_variance : starting values (or fixed values with optimize=False).
    mean : 'constant' (fitted by marginal likelihood) or 'zero'.
    feature_scaling : 'standard', 'minmax' or None; fitted on the training X.
    optimize : fit the hyper-parameters by maximising the log marginal likelihood.
    fit_noise : fit the noise variance (False keeps it fixed, e.g. the paper's noise-free GP).
    max_fit_points : hyper-parameters are fitted on a seeded subsample of at most this many points.
    method : how the GP conditions on all n points once its hyper-parameters are set — 'exact' (n×n
        Cholesky, O(n³) time, O(n²) memory), 'sparse' (SGPR with ``n_inducing`` inducing inputs,
        :mod:`cfgp.sparse_gp`, O(n·m²) time, O(n·m) memory, on the CPU in NumPy), 'local' (each query
        conditions exactly on its ``n_neighbours`` nearest training points, :mod:`cfgp.local_gp`; O(n·d)
        memory, O(n·d + k³) per query) or 'auto': exact up to ``LOCAL_ABOVE`` points, local above (at
        n = 14,928 local is 1.1 % above exact's test MAE, SGPR with m = 2,000 12.2 % above:
        docs/performance.md). The hyper-parameters are fitted the same way in all of them.
    n_inducing, inducing : the sparse GP's number of inducing inputs and how they are chosen
        ('kmeans', 'greedy' conditional variance or 'random').
    n_neighbours : the local GP's k.
    """

    def __init__(
        self,
        amplitude: float = 1.0,
        length_scale: float = 1.0,
        noise_variance: float = 1e-2,
        mean: Literal["constant", "zero"] = "constant",
        feature_scaling: str | None = "standard",
        optimize: bool = True,
        fit_noise: bool = True,
        max_fit_points: int = 2000,
        max_iter: int = 200,
        tol: float = 1e-7,
        seed: int = 0,
        method: Literal["auto", "exact", "sparse", "local"] = "auto",
        n_inducing: int = N_INDUCING,
        inducing: Literal["kmeans", "greedy", "random"] = "kmeans",
        n_neighbours: int = N_NEIGHBOURS,
    ):
        # stored as given, checked when fitting (scikit-learn's convention: set_params and clone go through here)
        self.amplitude = amplitude
        self.length_scale = length_scale
        self.noise_variance = noise_variance
        self.mean = mean
        self.feature_scaling = feature_scaling
        self.optimize = optimize
        self.fit_noise = fit_noise
        self.max_fit_points = max_fit_points
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed
        self.method = method
        self.n_inducing = n_inducing
        self.inducing = inducing
        self.n_neighbours = n_neighbours

    @classmethod
    def paper(cls, **overrides) -> "CFGP":
        """The paper's choices: zero mean, no noise term, min-max-scaled features, a = l = 1 start."""
        kw = dict(amplitude=1.0, length_scale=1.0, noise_variance=0.0, mean="zero", feature_scaling="minmax",
                  fit_noise=False)
        kw.update(overrides)
        return cls(**kw)

    # ----------------------------------------------------------- parameters
    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, not {self.method!r}")

    def settings(self) -> dict:
        """The settings that define a fit, as saved in gp.json (the scaling-out ones only when not at their
        defaults, so that a fit saved before they existed keeps its key and is reused)."""
        keys = ("amplitude", "length_scale", "noise_variance", "mean", "feature_scaling", "optimize", "fit_noise",
                "max_fit_points", "max_iter", "tol", "seed")
        params = {k: getattr(self, k) for k in keys}
        # the scaling-out settings only when not at their defaults, so that fits saved before they existed
        # (the shipped gp.json) keep the same settings key and are still reused
        for k, default in (("method", "auto"), ("n_inducing", N_INDUCING), ("inducing", "kmeans"),
                           ("n_neighbours", N_NEIGHBOURS)):
            if getattr(self, k) != default:
                params[k] = getattr(self, k)
        return params

    def resolved_method(self, n: int) -> str:
        """'exact', 'sparse' or 'local': what ``method`` means for a GP conditioned on n points."""
        if self.method == "auto":
            return "local" if n > LOCAL_ABOVE else "exact"
        return self.method

    @property
    def approximation_(self) -> "SparseGP | LocalGP | None":
        """The SparseGP or LocalGP that conditions and predicts for this GP, or None when it is exact."""
        return getattr(self, "sparse_", None) or getattr(self, "local_", None)

    @property
    def hyperparameters_(self) -> dict:
        return {"amplitude": self.amplitude_, "length_scale": self.length_scale_,
                "noise_variance": self.noise_variance_, "mean_constant": self.mean_constant_}

    @property
    def device_(self) -> str:
        if self.approximation_ is not None:
            return "/CPU:0"  # the sparse and local GPs condition and predict in NumPy/SciPy
        return tf_device()

    @property
    def n_train_(self) -> int:
        if self.approximation_ is not None:
            return int(self.approximation_.n_)
        return int(self._X.shape[0])

    @property
    def method_(self) -> str:
        """How the GP is conditioned now: 'exact', 'sparse' or 'local'."""
        if getattr(self, "sparse_", None) is not None:
            return "sparse"
        return "local" if getattr(self, "local_", None) is not None else "exact"

    # ------------------------------------------------------------------ fit
    def _nlml_fn(self, X, y):
        """Negative log marginal likelihood per point of (unconstrained params) for L-BFGS."""
        import tensorflow as tf

        n = X.shape[0]
        D = pairwise_distances(X, X)  # fixed during the optimisation
        fit_mean, fit_noise = self.mean == "constant", self.fit_noise
        fixed_noise = tf.constant(float(self.noise_variance), tf.float64)

        @tf.function(reduce_retracing=True)
        def value_and_grad(theta):
            with tf.GradientTape() as tape:
                tape.watch(theta)
                a = tf.exp(theta[0])
                ell = tf.exp(theta[1])
                noise = MIN_NOISE + tf.exp(theta[2]) if fit_noise else fixed_noise
                m = theta[3] if fit_mean else tf.constant(0.0, tf.float64)
                K = a**2 * tf.exp(-D / ell) + (noise + JITTER) * tf.eye(n, dtype=tf.float64)
                L = tf.linalg.cholesky(K)
                r = tf.reshape(y - m, (-1, 1))
                alpha = tf.linalg.triangular_solve(L, r, lower=True)
                nlml = 0.5 * tf.reduce_sum(alpha**2) + tf.reduce_sum(tf.math.log(tf.linalg.diag_part(L)))
                nlml = nlml / n + 0.5 * math.log(2 * math.pi)
            return nlml, tape.gradient(nlml, theta)

        return value_and_grad

    def _nlml_numpy(self, D: np.ndarray, y: np.ndarray):
        """The same objective as ``_nlml_fn`` in NumPy/LAPACK with analytic gradients, for CPUs.

        d(nlml)/dθ = ½ tr((K⁻¹ − ααᵀ) ∂K/∂θ) / n with α = K⁻¹(y − m); ∂K/∂log a = 2a²E,
        ∂K/∂log l = a²E∘D/l, ∂K/∂θ_noise = e^θ I, and d/dm = −Σα / n. One Cholesky and one
        inverse-from-Cholesky (LAPACK potri) per evaluation.
        """
        from scipy.linalg import cho_solve, lapack

        n = len(y)
        fit_mean, fit_noise = self.mean == "constant", self.fit_noise

        def value_and_grad(theta: np.ndarray):
            a2, ell = math.exp(2 * theta[0]), math.exp(theta[1])
            noise = MIN_NOISE + math.exp(theta[2]) if fit_noise else float(self.noise_variance)
            m = theta[3] if fit_mean else 0.0
            E = np.exp(-D / ell)
            K = a2 * E
            K[np.diag_indices(n)] += noise + JITTER
            L, info = lapack.dpotrf(K, lower=1, clean=1, overwrite_a=1)
            if info != 0:
                return np.inf, np.zeros_like(theta)
            r = y - m
            alpha = cho_solve((L, True), r)
            Kinv, info = lapack.dpotri(L, lower=1)
            Kinv = np.tril(Kinv) + np.tril(Kinv, -1).T
            W = Kinv - np.outer(alpha, alpha)
            value = (0.5 * r @ alpha + np.log(np.diag(L)).sum()) / n + 0.5 * math.log(2 * math.pi)
            WE = W * E  # tr(W ∂K) = Σ W∘∂K for symmetric matrices
            grad = np.zeros_like(theta)
            grad[0] = 0.5 * 2 * a2 * WE.sum() / n
            grad[1] = 0.5 * a2 * (WE * D).sum() / ell / n
            if fit_noise:
                grad[2] = 0.5 * math.exp(theta[2]) * np.trace(W) / n
            if fit_mean:
                grad[3] = -alpha.sum() / n
            return value, grad

        return value_and_grad

    def _fit_numpy(self, Xs: np.ndarray, y: np.ndarray, theta0: np.ndarray):
        """L-BFGS-B (SciPy) on the NumPy objective; returns (θ, converged, iterations, objective)."""
        from scipy.optimize import minimize
        from scipy.spatial.distance import cdist

        D = cdist(Xs, Xs)  # exact differences, as pairwise_distances
        res = minimize(self._nlml_numpy(D, y), theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 1e-10})
        return res.x, bool(res.success), int(res.nit), float(res.fun)

    def fit(self, X: np.ndarray, y: np.ndarray, backend: Literal["auto", "numpy", "tensorflow"] = "auto") -> "CFGP":
        """Fit the feature scaling and (if ``optimize``) the hyper-parameters, then condition on all (X, y).

        ``backend`` is where the marginal likelihood is optimised: 'auto' uses TensorFlow/TFP when a GPU is
        visible and NumPy/SciPy (LAPACK, analytic gradients, SciPy's L-BFGS-B) on a CPU, where it is several
        times faster (benchmarks/gp_fit.py); both reach the same optimum (tested).
        """
        import tensorflow as tf
        import tensorflow_probability as tfp

        self._check_params()
        if backend not in ("auto", "numpy", "tensorflow"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'tensorflow', not {backend!r}")
        if backend == "auto":
            backend = "tensorflow" if tf_device() != "/CPU:0" else "numpy"
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
        if len(y) < 2:
            raise ValueError(f"a GP needs at least 2 training points, got n_samples={len(y)}")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError("X and y must be finite (NaN latents mark structures that failed featurisation)")
        self.scaler_ = FeatureScaler(self.feature_scaling).fit(X)
        Xs = self.scaler_.transform(X)
        self.amplitude_ = float(self.amplitude)
        self.length_scale_ = float(self.length_scale)
        self.noise_variance_ = float(self.noise_variance)
        self.mean_constant_ = float(np.mean(y)) if self.mean == "constant" else 0.0
        self.fit_info_ = FitInfo()
        if self.optimize:
            t0 = time.time()
            rng = np.random.default_rng(self.seed)
            idx = np.arange(len(y))
            if len(idx) > self.max_fit_points:
                idx = np.sort(rng.choice(idx, self.max_fit_points, replace=False))
            theta0 = [math.log(self.amplitude_), math.log(self.length_scale_),
                      math.log(max(self.noise_variance_, 1e-6)), self.mean_constant_]
            if backend == "numpy":
                theta, converged, iterations, objective = self._fit_numpy(Xs[idx], y[idx], np.array(theta0))
            else:
                with tf.device(tf_device()):
                    fn = self._nlml_fn(tf.constant(Xs[idx]), tf.constant(y[idx]))
                    res = tfp.optimizer.lbfgs_minimize(
                        fn, initial_position=tf.constant(theta0, tf.float64), tolerance=self.tol,
                        f_relative_tolerance=1e-10, max_iterations=self.max_iter,
                    )
                theta, converged = res.position.numpy(), bool(res.converged.numpy())
                iterations, objective = int(res.num_iterations.numpy()), float(res.objective_value.numpy())
            if not np.all(np.isfinite(theta)):
                raise RuntimeError("hyper-parameter optimisation diverged (non-finite parameters)")
            self.amplitude_ = float(np.exp(theta[0]))
            self.length_scale_ = float(np.exp(theta[1]))
            if self.fit_noise:
                self.noise_variance_ = MIN_NOISE + float(np.exp(theta[2]))
            if self.mean == "constant":
                self.mean_constant_ = float(theta[3])
            self.fit_info_ = FitInfo(
                converged=converged, iterations=iterations, n_fit_points=len(idx),
                neg_log_marginal_likelihood=objective, seconds=round(time.time() - t0, 2),
            )
        self._condition(Xs, y)
        return self

    def fit_held_out(self, X_fit: np.ndarray, y_fit: np.ndarray, X_held: np.ndarray, y_held: np.ndarray) -> "CFGP":
        """Hyper-parameters that best predict materials the featuriser never trained on, then condition on all.

        The marginal likelihood of the training latents tunes σ where MEGNet already fits the labels
        (its training MAE is well below its validation MAE), so σ comes out too small on new materials.
        Here (a, l, noise, mean) minimise the mean negative log predictive density of ``y_held`` given
        the GP conditioned on ``(X_fit, y_fit)`` — ``X_held`` being e.g. MEGNet's early-stopping
        materials — starting from the marginal-likelihood optimum; the GP is then conditioned on
        fit ∪ held. L-BFGS-B with numerical gradients on four parameters (NumPy/LAPACK).
        """
        from scipy.linalg import cho_solve, solve_triangular
        from scipy.optimize import minimize
        from scipy.spatial.distance import cdist

        X_all = np.vstack([X_fit, X_held])
        y_all = np.concatenate([np.ravel(y_fit), np.ravel(y_held)])
        self.fit(X_all, y_all)  # the scaling, and the marginal-likelihood optimum as the starting point
        Xf, Xh = self.scaler_.transform(X_fit), self.scaler_.transform(X_held)
        Dff, Dhf = cdist(Xf, Xf), cdist(Xh, Xf)
        yf, yh = np.ravel(y_fit).astype(float), np.ravel(y_held).astype(float)
        fit_mean, fit_noise = self.mean == "constant", self.fit_noise

        def nlpd(theta: np.ndarray) -> float:
            a2, ell = math.exp(2 * theta[0]), math.exp(theta[1])
            noise = MIN_NOISE + math.exp(theta[2]) if fit_noise else self.noise_variance_
            m = theta[3] if fit_mean else 0.0
            K = a2 * np.exp(-Dff / ell)
            K[np.diag_indices_from(K)] += noise + JITTER
            try:
                L = np.linalg.cholesky(K)
            except np.linalg.LinAlgError:
                return 1e10
            Ks = a2 * np.exp(-Dhf / ell)
            mu = m + Ks @ cho_solve((L, True), yf - m)
            var = np.maximum(a2 + noise - (solve_triangular(L, Ks.T, lower=True) ** 2).sum(axis=0), 1e-300)
            return float(np.mean(0.5 * np.log(2 * math.pi * var) + 0.5 * (yh - mu) ** 2 / var))

        t0 = time.time()
        start = np.array([math.log(self.amplitude_), math.log(self.length_scale_),
                          math.log(max(self.noise_variance_ - MIN_NOISE, 1e-12)), self.mean_constant_])
        res = minimize(nlpd, start, method="L-BFGS-B", options={"maxiter": self.max_iter})
        theta = res.x
        self.amplitude_, self.length_scale_ = float(math.exp(theta[0])), float(math.exp(theta[1]))
        if fit_noise:
            self.noise_variance_ = MIN_NOISE + float(math.exp(theta[2]))
        if fit_mean:
            self.mean_constant_ = float(theta[3])
        self.fit_info_ = FitInfo(converged=bool(res.success), iterations=int(res.nit), n_fit_points=len(yf),
                                 neg_log_marginal_likelihood=float("nan"), seconds=round(time.time() - t0, 2),
                                 history=[{"objective": "held-out NLPD", "n_held": int(len(yh)),
                                           "start": float(nlpd(start)), "end": float(res.fun)}])
        self._condition(self.scaler_.transform(X_all), y_all)
        return self

    def set_hyperparameters(self, amplitude, length_scale, noise_variance, mean_constant, scaler: FeatureScaler):
        """Use saved hyper-parameters (no optimisation); then call ``condition``."""
        self.amplitude_, self.length_scale_ = float(amplitude), float(length_scale)
        self.noise_variance_, self.mean_constant_ = float(noise_variance), float(mean_constant)
        self.scaler_ = scaler
        self.fit_info_ = FitInfo()
        return self

    def condition(self, X: np.ndarray, y: np.ndarray) -> "CFGP":
        """Condition on (X, y) with the current hyper-parameters (O(n³) Cholesky)."""
        self._check_params()
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError("X and y must be finite")
        self._condition(self.scaler_.transform(X), y)
        return self

    def kernel_matrix(self, A, B):
        """k(A, B) at the fitted hyper-parameters, on already-scaled features."""
        import tensorflow as tf

        return self.amplitude_**2 * tf.exp(-pairwise_distances(A, B) / self.length_scale_)

    def _condition(self, Xs: np.ndarray, y: np.ndarray) -> None:
        import tensorflow as tf

        self.sparse_ = self.local_ = None
        if self.resolved_method(len(y)) == "local":
            self.local_ = LocalGP(self.amplitude_, self.length_scale_, self.noise_variance_, self.mean_constant_,
                                  n_neighbours=self.n_neighbours).fit(Xs, y)
            self._X = self._L = self._z = self._y = None  # no n×n factor is kept (nor built)
            return
        if self.resolved_method(len(y)) == "sparse":
            self.sparse_ = SparseGP(self.amplitude_, self.length_scale_, self.noise_variance_, self.mean_constant_,
                                    n_inducing=self.n_inducing, inducing=self.inducing, seed=self.seed).fit(Xs, y)
            self._X = self._L = self._z = self._y = None  # no n×n factor is kept (nor built)
            return
        with tf.device(tf_device()):
            self._X = tf.constant(Xs)
            self._y = tf.constant(y)
            n = Xs.shape[0]
            K = self.kernel_matrix(self._X, self._X) + (self.noise_variance_ + JITTER) * tf.eye(n, dtype=tf.float64)
            self._L = tf.linalg.cholesky(K)
            if not np.isfinite(self._L.numpy()[-1, -1]):
                raise np.linalg.LinAlgError("kernel matrix is not positive definite (duplicate points, no noise?)")
            r = tf.reshape(self._y - self.mean_constant_, (-1, 1))
            self._z = tf.linalg.triangular_solve(self._L, r, lower=True)  # L⁻¹(y − m)

    # --------------------------------------------------------------- update
    def add(self, X_new: np.ndarray, y_new: np.ndarray) -> "CFGP":
        """Condition on extra labelled points by a bordered Cholesky update (O(n²k)), hyper-parameters fixed."""
        import tensorflow as tf

        X_new = self.scaler_.transform(np.atleast_2d(X_new))
        y_new = np.atleast_1d(np.asarray(y_new, dtype=np.float64))
        if len(X_new) != len(y_new) or not (np.isfinite(X_new).all() and np.isfinite(y_new).all()):
            raise ValueError("X_new and y_new must be finite and the same length")
        if self.approximation_ is not None:  # sparse: a rank-k update of the m×m statistics; local: appended
            self.approximation_.add(X_new, y_new)
            return self
        with tf.device(tf_device()):
            Xn = tf.constant(X_new)
            K12 = self.kernel_matrix(self._X, Xn)
            K22 = self.kernel_matrix(Xn, Xn) + (self.noise_variance_ + JITTER) * tf.eye(len(y_new), dtype=tf.float64)
            B = tf.linalg.triangular_solve(self._L, K12, lower=True)  # L⁻¹K12
            L22 = tf.linalg.cholesky(K22 - tf.matmul(B, B, transpose_a=True))
            r2 = tf.reshape(tf.constant(y_new) - self.mean_constant_, (-1, 1)) - tf.matmul(B, self._z, transpose_a=True)
            z2 = tf.linalg.triangular_solve(L22, r2, lower=True)
            n, m = self._L.shape[0], len(y_new)
            top = tf.concat([self._L, tf.zeros((n, m), tf.float64)], axis=1)
            bottom = tf.concat([tf.transpose(B), L22], axis=1)
            self._L = tf.concat([top, bottom], axis=0)
            self._z = tf.concat([self._z, z2], axis=0)
            self._X = tf.concat([self._X, Xn], axis=0)
            self._y = tf.concat([self._y, tf.constant(y_new)], axis=0)
        return self

    # -------------------------------------------------------------- predict
    def predict(self, X: np.ndarray, return_std: bool = False, include_noise: bool = True, batch_size: int = 4096):
        """Posterior mean (eV/atom) and, with ``return_std``, the predictive σ of a DFT label
        (``include_noise=False`` gives the σ of the latent function)."""
        import tensorflow as tf

        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if not np.isfinite(X).all():
            bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
            raise ValueError(f"X must be finite: rows {bad[:5].tolist()} hold NaN or inf (predict only the rows with "
                             "a latent vector)")
        Xs = self.scaler_.transform(X)
        if getattr(self, "sparse_", None) is not None:
            return self.sparse_.predict(Xs, return_std=return_std, include_noise=include_noise, batch_size=batch_size)
        if getattr(self, "local_", None) is not None:
            return self.local_.predict(Xs, return_std=return_std, include_noise=include_noise)
        means, stds = [], []
        with tf.device(tf_device()):
            prior_var = self.amplitude_**2 + (self.noise_variance_ if include_noise else 0.0)
            for start in range(0, len(Xs), batch_size):
                Q = tf.constant(Xs[start : start + batch_size])
                V = tf.linalg.triangular_solve(self._L, self.kernel_matrix(self._X, Q), lower=True)  # L⁻¹K(X, Q)
                means.append((tf.matmul(V, self._z, transpose_a=True)[:, 0] + self.mean_constant_).numpy())
                if return_std:
                    var = prior_var - tf.reduce_sum(V**2, axis=0)
                    stds.append(std_from_variance(var.numpy()))
        return predictive_output(means, stds, return_std)

    def whitened_cross_kernel(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V = L⁻¹K(X_train, X) for the queries X (unscaled) and z = L⁻¹(y − m), L the exact GP's Cholesky
        factor: the posterior mean is m + Vᵀz and the latent variance a² − ΣV². Active learning's
        PoolPosterior keeps V and updates it point by point. Only an exact GP has L: a sparse or local one
        raises ValueError (condition it with method="exact" to drive active learning)."""
        import tensorflow as tf

        if self.approximation_ is not None:
            raise ValueError(f"a {self.method_} GP has no Cholesky factor to update point by point; active "
                             f"learning needs method='exact' (auto is exact up to {LOCAL_ABOVE:,} training points)")
        Q = self.scaler_.transform(np.atleast_2d(X))
        with tf.device(tf_device()):
            V = tf.linalg.triangular_solve(self._L, self.kernel_matrix(self._X, tf.constant(Q)), lower=True)
        return V.numpy(), self._z.numpy()[:, 0]

    def smoother_weights(self, X: np.ndarray) -> np.ndarray:
        """W = K(X, X_train)(K + σ²I)⁻¹, one row per query: the posterior mean is m + W(y − m), a weighted sum of
        the training labels, so W[i, j] is how much training material j's label moves query i's prediction (a
        neighbour that is near in latent space can still weigh little when others near it share the load). Exact
        GP only (ValueError otherwise, as :meth:`whitened_cross_kernel`). Columns follow the conditioning order."""
        import tensorflow as tf

        V, _ = self.whitened_cross_kernel(X)  # L⁻¹K(X_train, X)
        with tf.device(tf_device()):
            W = tf.linalg.triangular_solve(self._L, tf.constant(V), lower=True, adjoint=True)  # L⁻ᵀL⁻¹K
        return W.numpy().T

    def posterior_covariance(self, X: np.ndarray) -> np.ndarray:
        """The latent function's posterior covariance K(X, X) − VᵀV between the queries X (unscaled): the
        correlation it implies says how far two materials' GP errors go together. Exact GP only."""
        import tensorflow as tf

        V, _ = self.whitened_cross_kernel(X)
        Q = tf.constant(self.scaler_.transform(np.atleast_2d(X)))
        with tf.device(tf_device()):
            prior = self.kernel_matrix(Q, Q).numpy()
        return prior - V.T @ V

    def log_marginal_likelihood(self) -> float:
        """Log marginal likelihood of the data the GP is conditioned on, at the current hyper-parameters."""
        import numpy as _np

        if getattr(self, "sparse_", None) is not None:
            raise ValueError("a sparse GP has no exact log marginal likelihood (that needs the n×n Cholesky it "
                             "avoids); its lower bound is gp.sparse_.elbo()")
        if getattr(self, "local_", None) is not None:
            raise ValueError("a local (nearest-neighbour) GP has no exact log marginal likelihood (that needs the "
                             "n×n Cholesky it avoids)")

        z = self._z.numpy()
        n = z.shape[0]
        return float(-0.5 * (z**2).sum() - _np.log(_np.diag(self._L.numpy())).sum() - 0.5 * n * math.log(2 * math.pi))

    # ---------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {
            "params": self.settings(),
            "hyperparameters": self.hyperparameters_,
            "scaler": {"kind": self.scaler_.kind, "shift": self.scaler_.shift.tolist(),
                       "scale": self.scaler_.scale.tolist()},
            "fit_info": asdict(self.fit_info_),
        }

    def with_params(self, **params) -> "CFGP":
        """An unconditioned copy with the same fitted hyper-parameters and feature scaling and some settings
        changed (``method="exact"``, ``n_neighbours=…``): how active learning and the benchmarks re-condition
        a fitted GP another way. Call ``condition(X, y)`` before predicting."""
        d = self.to_dict()
        d["params"] = {**d["params"], **params}
        return type(self).from_dict(d)

    @classmethod
    def from_dict(cls, d: dict) -> "CFGP":
        """Rebuild with saved hyper-parameters; call ``condition(X, y)`` before predicting."""
        gp = cls(**d["params"])
        gp._check_params()
        s = d["scaler"]
        scaler = FeatureScaler(s["kind"], np.asarray(s["shift"]), np.asarray(s["scale"]))
        h = d["hyperparameters"]
        gp.set_hyperparameters(h["amplitude"], h["length_scale"], h["noise_variance"], h["mean_constant"], scaler)
        gp.fit_info_ = FitInfo(**d.get("fit_info", {}))
        return gp
