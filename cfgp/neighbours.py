""""Why is the GP wrong here?" in numbers: a material's nearest training material in the GP's latent space, and
what the GP leaned on.

The GP's prediction is a kernel-weighted blend of the training labels; with the Laplacian kernel
k = a² exp(−d/l) the nearest training latent weighs most. What explains the GP's error is not the kernel's prior
correlation exp(−d/l) (≈ 1 for every pair when l is in the thousands) but the neighbour's weight in the GP's linear
smoother, the GP's posterior correlation between the two (:meth:`cfgp.gp.CFGP.smoother_weights`,
:meth:`~cfgp.gp.CFGP.posterior_covariance`), how unusual the distance is among test materials, and the neighbour's
own residual. Distances are Euclidean on the latents scaled as the GP's kernel sees them (the GP's own feature
scaling), searched with :func:`cfgp.uncertainty.domain_model.k_nearest`, the domain model's search.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cfgp.results import Results
from cfgp.uncertainty.domain_model import k_nearest

#: the largest smoother weights whose share of Σ|w| is reported (how concentrated the GP's blend is)
TOP_WEIGHTS = 10


@dataclass(frozen=True)
class Neighbour:
    """The nearest training material of ``row`` and how close it is."""

    row: int
    neighbour: int
    distance: float
    typical: float      # median nearest-training distance of the test split, for scale
    percentile: float   # the distance's percentile among the test split's nearest-training distances
    n_close: int        # training materials nearer to the material than the test split's median (how crowded)
    weight: float       # the neighbour's weight in the GP's linear smoother k_xᵀ(K + σ²I)⁻¹ (NaN: approximate GP)
    weight_rank: int    # 1 when no training material weighs more (0: unknown)
    top_weight_share: float  # share of Σ|w| that the TOP_WEIGHTS largest weights carry
    posterior_correlation: float  # the GP's posterior correlation between the two latent values
    n_train: int        # training materials searched (those with a latent)


class LatentNeighbours:
    """Nearest training materials of a run's materials, in the GP's scaled latent space (read only)."""

    def __init__(self, gp, X: np.ndarray, train: np.ndarray, test: np.ndarray, ids: np.ndarray | None = None):
        self.gp, self.X = gp, np.asarray(X, dtype=float)
        self.Xs = gp.scaler_.transform(np.nan_to_num(self.X))
        ok = np.isfinite(self.X).all(axis=1)
        self.train = np.asarray(train, dtype=int)[ok[np.asarray(train, dtype=int)]]
        self.test = np.asarray(test, dtype=int)[ok[np.asarray(test, dtype=int)]]
        self.ids = ids

    @classmethod
    def of(cls, results: Results) -> "LatentNeighbours":
        run = results.run
        return cls(results.gp, run.latents(), run.split.train, run.split.test, run.materials.ids)

    def nearest(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each of ``rows``: the nearest training row (itself excluded) and the distance."""
        rows = np.asarray(rows, dtype=int)
        dist, idx = k_nearest(self.Xs[rows], self.Xs[self.train], 2)
        own = self.train[idx[:, 0]] == rows  # a training material is not its own neighbour
        pick = np.where(own, 1, 0) if dist.shape[1] > 1 else np.zeros(len(rows), int)
        at = np.arange(len(rows))
        return self.train[idx[at, pick]], dist[at, pick]

    @cached_property
    def test_distances(self) -> np.ndarray:
        """Sorted distances of the test materials to their nearest training materials (what "near" means in this
        run)."""
        return np.sort(self.nearest(self.test)[1]) if len(self.test) else np.zeros(0)

    @property
    def typical(self) -> float:
        """Median distance of a test material to its nearest training material."""
        d = self.test_distances
        return float(np.median(d)) if len(d) else float("nan")

    def explain(self, row: int) -> Neighbour:
        """The training material whose latent is nearest to ``row``'s and what the GP made of it; ValueError if
        ``row`` has no latent."""
        row = int(row)
        if not np.isfinite(self.X[row]).all():
            name = self.ids[row] if self.ids is not None else f"row {row}"
            raise ValueError(f"{name} has no latent vector (its featurisation failed), so it has no neighbour in "
                             "latent space")
        nb, d = self.nearest(np.array([row]))
        dist, neighbour = float(d[0]), int(nb[0])
        dists, typical = self.test_distances, self.typical
        percentile = 100.0 * np.searchsorted(dists, dist, side="right") / len(dists) if len(dists) else float("nan")
        to_train = np.sqrt(((self.Xs[self.train] - self.Xs[row]) ** 2).sum(1))
        n_close = int(((to_train < typical) & (self.train != row)).sum()) if np.isfinite(typical) else 0
        weight, rank, share, corr = float("nan"), 0, float("nan"), float("nan")
        try:
            w = self.gp.smoother_weights(self.X[[row]])[0]
            weight = float(w[int(np.flatnonzero(self.train == neighbour)[0])])
            rank = int((np.abs(w) > abs(weight)).sum()) + 1
            share = float(np.sort(np.abs(w))[::-1][:TOP_WEIGHTS].sum() / np.abs(w).sum())
            cov = self.gp.posterior_covariance(self.X[[row, neighbour]])
            corr = float(cov[0, 1] / np.sqrt(max(cov[0, 0] * cov[1, 1], 1e-300)))
        except ValueError:  # an approximate (sparse or local) GP has no exact smoother to read
            pass
        return Neighbour(row, neighbour, dist, typical, percentile, n_close, weight, rank, share, corr,
                         len(self.train))
