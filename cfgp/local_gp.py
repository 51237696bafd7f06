"""Nearest-neighbour GP prediction with CFGP's Laplacian kernel: each query conditions exactly on its k
nearest training points (Vecchia 1988; Datta et al. 2016, "NNGP"; Gramacy & Apley 2015, "local approximate GP").

Why this beside SGPR (:mod:`cfgp.sparse_gp`): the hyper-parameters CFGP fits on train + pool make the
Laplacian kernel rough (noise at its floor), so the exact GP leans on each
material's close neighbours in latent space (polymorphs, substitutions). SGPR summarises the data through m
inducing inputs and cannot carry that: at n = 14,928, m = 2,000 its test MAE is 12.2 % above exact. Here the
close neighbours are kept exactly and the far ones, whose weight is small, are dropped: at n = 14,928 with
k = 256 the test MAE is 1.1 % above exact and 2σ coverage within 0.003 (docs/performance.md, shipped latents).

Conditioning is storing the points (O(n·d) memory, nothing n×n); a query costs a distance row to the n
training points (O(n·d)) and one k×k solve (O(k³)). Queries are answered in batches whose k×k systems are
solved together, so a batch of b queries holds b·k² floats (b = 64, k = 256: 34 MB; b shrinks for a large k to
stay near 256 MB of temporaries) besides b·n distances. With k ≥ n every query conditions on all points: the exact GP, to
rounding (tested), with one Cholesky for all queries.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from cfgp.predictive import predictive_output, std_from_variance

N_NEIGHBOURS = 256  # training points each query conditions on (README "Scaling out": 128-2,048 measured)
JITTER = 1e-8  # added to the noise on the k×k diagonal, as the exact GP adds it to the n×n one
MAX_BATCH_FLOATS = 32 * 1024 * 1024  # floats of a batch's k×k temporaries (256 MB; ~6 arrays of b·k² each)


class LocalGP:
    """Nearest-neighbour GP with fixed hyper-parameters on already-scaled inputs (CFGP scales and fits them).

    Parameters
    ----------
    amplitude, length_scale, noise_variance, mean_constant : the GP's hyper-parameters (as CFGP's).
    n_neighbours : k, the training points each query conditions on.
    batch_size : queries answered together (memory b·k² + b·n floats).
    """

    def __init__(self, amplitude: float, length_scale: float, noise_variance: float, mean_constant: float = 0.0,
                 n_neighbours: int = N_NEIGHBOURS, batch_size: int = 64):
        if int(n_neighbours) < 1:
            raise ValueError(f"n_neighbours must be at least 1, got {n_neighbours}")
        self.amplitude, self.length_scale = float(amplitude), float(length_scale)
        self.noise_variance, self.mean_constant = float(noise_variance), float(mean_constant)
        self.n_neighbours, self.batch_size = int(n_neighbours), int(batch_size)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LocalGP":
        """Keep (X, y): a nearest-neighbour GP has nothing to factor before a query arrives."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
        if len(y) < 1 or not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError("X and y must be finite and not empty")
        self.X_, self.y_ = X.copy(), y.copy()
        self._all = None  # the k ≥ n factor, made on first use
        return self

    @property
    def n_(self) -> int:
        """Training points the GP is conditioned on."""
        return len(self.y_)

    def add(self, X_new: np.ndarray, y_new: np.ndarray) -> "LocalGP":
        """More labelled points: later queries see them among their neighbours (equal to a fit on all)."""
        X_new = np.atleast_2d(np.asarray(X_new, dtype=np.float64))
        y_new = np.atleast_1d(np.asarray(y_new, dtype=np.float64))
        if len(X_new) != len(y_new) or not (np.isfinite(X_new).all() and np.isfinite(y_new).all()):
            raise ValueError("X_new and y_new must be finite and the same length")
        self.X_ = np.vstack([self.X_, X_new])
        self.y_ = np.concatenate([self.y_, y_new])
        self._all = None
        return self

    def neighbours(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the k nearest training points of each query (Euclidean, in the scaled space) and their
        distances: two (len(X), k) arrays, nearest first."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        k = min(self.n_neighbours, self.n_)
        D = cdist(X, self.X_)
        idx = np.argpartition(D, k - 1, axis=1)[:, :k] if k < self.n_ else np.broadcast_to(np.arange(k), D.shape)
        d = np.take_along_axis(D, idx, axis=1)
        order = np.argsort(d, axis=1, kind="stable")
        return np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)

    def predict(self, X: np.ndarray, return_std: bool = False, include_noise: bool = True,
                batch_size: int | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Posterior mean and, with ``return_std``, the predictive σ of a label (``include_noise=False``: of the
        latent function) of each query given its k nearest training points, as :meth:`cfgp.gp.CFGP.predict`."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        a2, l, s2 = self.amplitude**2, self.length_scale, self.noise_variance
        if self.n_neighbours >= self.n_:
            return self._predict_all(X, return_std, include_noise)
        k = self.n_neighbours
        # a batch holds ~6 temporaries of b·k² floats (Gram, distances, K, the solver's copy): ≲ 256 MB for
        # k ≤ ~2,300 (one query at a time above that: 6·k² floats)
        b = max(1, min(int(batch_size or self.batch_size), MAX_BATCH_FLOATS // (6 * k * k)))
        means, stds = [], []
        for s in range(0, len(X), b):
            Q = X[s:s + b]
            idx, d = self.neighbours(Q)
            # distances within each neighbourhood, from coordinates centred on its query (the Gram identity on
            # small vectors: no cancellation between large norms)
            C = self.X_[idx] - Q[:, None, :]
            sq = np.einsum("bkd,bkd->bk", C, C)
            D2 = sq[:, :, None] + sq[:, None, :] - 2 * np.einsum("bid,bjd->bij", C, C)
            K = a2 * np.exp(-np.sqrt(np.maximum(D2, 0.0)) / l)
            k = K.shape[1]
            K[:, np.arange(k), np.arange(k)] = a2 + s2 + JITTER
            ks = a2 * np.exp(-d / l)
            rhs = np.stack([self.y_[idx] - self.mean_constant, ks], axis=2)
            sol = np.linalg.solve(K, rhs)
            means.append(self.mean_constant + np.einsum("bk,bk->b", ks, sol[:, :, 0]))
            if return_std:
                var = a2 - np.einsum("bk,bk->b", ks, sol[:, :, 1])
                if include_noise:
                    var = var + s2
                stds.append(std_from_variance(var))
        return predictive_output(means, stds, return_std)

    def _predict_all(self, X: np.ndarray, return_std: bool, include_noise: bool):
        """k ≥ n: every query's neighbourhood is the whole training set, so one n×n Cholesky (made once, kept
        until ``add``) serves them all — the exact GP; n ≤ k keeps it small."""
        from scipy.linalg import cho_factor, cho_solve

        a2, l, s2 = self.amplitude**2, self.length_scale, self.noise_variance
        if getattr(self, "_all", None) is None:
            K = a2 * np.exp(-cdist(self.X_, self.X_) / l)
            K[np.diag_indices_from(K)] = a2 + s2 + JITTER
            c = cho_factor(K, lower=True)
            self._all = (c, cho_solve(c, self.y_ - self.mean_constant))
        c, alpha = self._all
        means, stds = [], []
        for s in range(0, len(X), 1024):
            Ks = a2 * np.exp(-cdist(self.X_, X[s:s + 1024]) / l)
            means.append(self.mean_constant + Ks.T @ alpha)
            if return_std:
                var = a2 - np.einsum("ij,ij->j", Ks, cho_solve(c, Ks)) + (s2 if include_noise else 0.0)
                stds.append(std_from_variance(var))
        return predictive_output(means, stds, return_std)
