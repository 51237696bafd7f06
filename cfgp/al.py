"""Active learning with the CFGP: one generator of steps shared by the CLI, notebooks and the app.

Each cycle: select from the pool → reveal the DFT label → update the GP → predict the pool →
score the fixed test set (never in the pool). Hyper-parameters stay fixed (as in the paper);
each labelled point enters by a bordered Cholesky update of the posterior over the query set
Q = pool ∪ test, in O(n·|Q|) instead of an O(n³) refit: TensorFlow ops on a GPU, NumPy/BLAS on a CPU.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
from scipy import stats

from cfgp.artefacts import refuse_shipped_write
from cfgp.data import DataError
from cfgp.gp import JITTER, CFGP, tf_device
from cfgp.predictive import std_from_variance
from cfgp.record_streams import BoundedBytes

CHUNK_ROWS = 512
#: integration points of the integrated-variance and EPIG strategies: a seeded subsample of the run's candidate
#: pool (memory |points| × |query|: 1,000 × 8,655 doubles = 69 MB on the default)
INTEGRATION_POINTS = 1000
#: the paper's candidate pool: the materials an AL run draws from, a seeded subsample of the run's pool split
PAPER_POOL_SIZE = 7195


class PoolPosterior:
    """GP posterior over a fixed query set, updated point by point.

    With L the Cholesky factor of K(X, X) + σ²I and V = L⁻¹K(X, Q), the posterior mean is
    m + Vᵀz and the variance a² − Σ V² (+ σ² for a label). Adding query point j as a label:
    b = V[:, j], l = √var_y[j], new row v = (k(x_j, Q) − bᵀV)/l, z_new = (y − mean[j])/l; then
    mean += v z_new and var −= v² — O(n·|Q|), no refit.

    ``backend='auto'`` runs these updates in TensorFlow on a GPU when TensorFlow sees one, and
    in NumPy/BLAS on a CPU, where it measured 2–5× faster than TensorFlow's CPU kernels for this
    memory-bound matrix-vector work. Both are tested equal to a from-scratch fit.
    """

    def __init__(self, gp: CFGP, X_query: np.ndarray, backend: str = "auto", capacity: int | None = None):
        import tensorflow as tf

        if backend == "auto":
            backend = "tensorflow" if tf_device().startswith("/GPU") else "numpy"
        if backend not in ("numpy", "tensorflow"):
            raise ValueError("backend must be 'auto', 'numpy' or 'tensorflow'")
        self.backend = backend
        self.device = tf_device() if backend == "tensorflow" else "/CPU:0"
        self.gp = gp
        self.noise = gp.noise_variance_ + JITTER
        self.a2, self.ell = gp.amplitude_**2, gp.length_scale_
        Q = gp.scaler_.transform(X_query)
        V, z = gp.whitened_cross_kernel(X_query)
        self.n = V.shape[0]
        mean = V.T @ z + gp.mean_constant_
        var_f = self.a2 - np.sum(V**2, axis=0)
        self.n_added = 0
        self.Q_np = Q
        self._tracked: tuple[np.ndarray, np.ndarray] | None = None  # (rows, cov_f(Q[rows], Q)), see covariance_with
        if backend == "numpy":
            cap = max(capacity or 0, self.n + CHUNK_ROWS)
            self._V = np.zeros((cap, Q.shape[0]))
            self._V[: self.n] = V
            self._mean, self._var_f = mean, var_f
        else:
            with tf.device(self.device):
                self.Q = tf.constant(Q)
                self._mean, self._var_f = tf.Variable(mean), tf.Variable(var_f)
                pad = -self.n % CHUNK_ROWS  # zero rows contribute nothing to bᵀV
                V = np.vstack([V, np.zeros((pad, V.shape[1]))])
                self._chunks = [tf.Variable(V[i:i + CHUNK_ROWS]) for i in range(0, len(V), CHUNK_ROWS)]
                self._fill = self.n - CHUNK_ROWS * (len(self._chunks) - 1)

    @property
    def mean(self) -> np.ndarray:
        """Posterior mean (eV/atom) at every query point."""
        return self._mean if self.backend == "numpy" else self._mean.numpy()

    @property
    def var_f(self) -> np.ndarray:
        return self._var_f if self.backend == "numpy" else self._var_f.numpy()

    @property
    def std(self) -> np.ndarray:
        """Predictive σ of a DFT label at every query point."""
        return std_from_variance(self.var_f + self.noise - JITTER)

    def _rows_V(self) -> np.ndarray:
        """V = L⁻¹K(X, Q) as a NumPy array (n × |Q|)."""
        if self.backend == "numpy":
            return self._V[: self.n]
        return np.vstack([c.numpy() for c in self._chunks])[: self.n]

    def covariance_with(self, rows: np.ndarray) -> np.ndarray:
        """cov_f(Q[rows], Q) under the current posterior (|rows| × |Q|).

        Computed once (k(Q[rows], Q) − V[:, rows]ᵀV), then kept current by :meth:`add` with a rank-one update
        (cov −= v[rows] vᵀ, O(|rows|·|Q|) per label), so strategies that integrate over many points stay cheap.
        The returned array is the posterior's own: read it, do not modify it.
        """
        rows = np.asarray(rows, dtype=int)
        if self._tracked is None or not np.array_equal(self._tracked[0], rows):
            from scipy.spatial.distance import cdist

            V = self._rows_V()
            cov = self.a2 * np.exp(-cdist(self.Q_np[rows], self.Q_np) / self.ell) - V[:, rows].T @ V
            self._tracked = (rows, cov)
        return self._tracked[1]

    def _kernel_row(self, j: int):
        if self.backend == "numpy":
            d = np.sqrt(np.sum((self.Q_np - self.Q_np[j]) ** 2, axis=1))
            return self.a2 * np.exp(-d / self.ell)
        import tensorflow as tf

        d = tf.sqrt(tf.reduce_sum(tf.square(self.Q - self.Q[j]), axis=1))
        return self.a2 * tf.exp(-d / self.ell)

    def _new_row(self, j: int, extra_rows: list | None = None):
        """(v, l): the row V would gain if query point j were labelled (label-independent)."""
        kq = self._kernel_row(j)
        if self.backend == "numpy":
            V = self._V[: self.n]
            acc = kq - V[:, j] @ V
            var_y = self._var_f[j] + self.noise
        else:
            import tensorflow as tf

            acc = kq
            for c in self._chunks:
                acc = acc - tf.linalg.matvec(c, c[:, j], transpose_a=True)
            var_y = self._var_f[j] + self.noise
        for v_prev in extra_rows or ():
            acc = acc - v_prev[j] * v_prev
            var_y = var_y - v_prev[j] ** 2
        ell = var_y**0.5
        return acc / ell, ell

    def add(self, j: int, y: float) -> None:
        """Condition on the label y of query point j (O(n·|Q|))."""
        if self.backend == "numpy":
            v, ell = self._new_row(j)
            z_new = (float(y) - self._mean[j]) / ell
            self._mean += v * z_new
            self._var_f -= v * v
            self._update_tracked(v)
            if self.n == len(self._V):  # grow the row buffer geometrically (rare)
                self._V = np.vstack([self._V, np.zeros_like(self._V)])
            self._V[self.n] = v
        else:
            import tensorflow as tf

            with tf.device(self.device):
                v, ell = self._new_row(j)
                z_new = (float(y) - self._mean[j]) / ell
                self._mean.assign_add(v * z_new)
                self._var_f.assign_sub(v * v)
                if self._fill == CHUNK_ROWS:
                    self._chunks.append(tf.Variable(tf.zeros((CHUNK_ROWS, self.Q.shape[0]), tf.float64)))
                    self._fill = 0
                self._chunks[-1][self._fill].assign(v)
                self._fill += 1
                if self._tracked is not None:
                    self._update_tracked(v.numpy())
        self.n += 1
        self.n_added += 1

    def _update_tracked(self, v: np.ndarray) -> None:
        if self._tracked is not None:
            rows, cov = self._tracked
            cov -= np.outer(v[rows], v)

    def greedy_batch(self, candidates: np.ndarray, k: int, score: Callable) -> np.ndarray:
        """k picks greedily by ``score(var_f, cov) -> scores of candidates``: take the best, condition on it as if
        labelled (variances and covariances do not depend on the label), repeat. Leaves the posterior unchanged.
        ``cov`` is the tracked :meth:`covariance_with` (None if none is tracked)."""
        var = self.var_f.copy()
        tracked = self._tracked
        cov = tracked[1] if tracked is not None else None
        picks, rows = [], []
        avail = np.ones(len(candidates), bool)
        for step in range(min(k, len(candidates))):
            scores = np.where(avail, score(var, cov, candidates), -np.inf)
            i = int(np.argmax(scores))
            j = int(candidates[i])
            picks.append(j)
            avail[i] = False
            if step + 1 == k:
                break
            v, _ = self._new_row(j, rows)
            v = np.asarray(v)
            rows.append(v)
            var = var - v**2
            if cov is not None:
                cov = cov - np.outer(v[tracked[0]], v)
        return np.asarray(picks, dtype=int)

    def greedy_variance_batch(self, candidates: np.ndarray, k: int) -> np.ndarray:
        """k picks by greedy conditional variance: take the largest σ, condition on it as if
        labelled (σ does not depend on the label), repeat. Leaves the posterior unchanged."""
        return self.greedy_batch(candidates, k, lambda var, cov, cand: var[cand])


# ---------------------------------------------------------------- strategies
# A strategy is f(posterior, candidates, k, rng, state) -> k positions into the query set.
Strategy = Callable[[PoolPosterior, np.ndarray, int, np.random.Generator, dict], np.ndarray]


def _top_k(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(candidates))
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return candidates[idx]


def entropy(post: PoolPosterior, candidates: np.ndarray, k: int, rng: np.random.Generator,
            state: dict) -> np.ndarray:
    """Maximum entropy: the Gaussian entropy ½log(2πeσ²) is largest where σ is (the paper's rule)."""
    return _top_k(post.std[candidates], candidates, k)


def random(post: PoolPosterior, candidates: np.ndarray, k: int, rng: np.random.Generator,
           state: dict) -> np.ndarray:
    """Uniform picks without replacement: the baseline every strategy is paired with."""
    return rng.choice(candidates, size=min(k, len(candidates)), replace=False)


def batch_diverse(post: PoolPosterior, candidates: np.ndarray, k: int, rng: np.random.Generator,
                  state: dict) -> np.ndarray:
    """Greedy conditional variance: a batch that does not spend labels on near-duplicates."""
    return post.greedy_variance_batch(candidates, k)


def batch_distance(post: PoolPosterior, candidates: np.ndarray, k: int, rng: np.random.Generator,
                   state: dict) -> np.ndarray:
    """The paper's suggestion: largest σ first, skipping candidates closer than one kernel length
    to a pick (in scaled latent space); the cut-off halves until k picks fit.

    Each pass keeps every candidate's distance to its nearest pick (O(k·|candidates|·d)); once the
    cut-off falls below 1e-9 kernel lengths only coincident points are being told apart, so it drops
    to zero and the batch is completed in σ order (duplicated latents once made ~1,000 halvings).
    """
    order = candidates[np.argsort(-post.std[candidates], kind="stable")]
    Q = post.Q_np[order]
    length = cutoff = float(post.gp.length_scale_)
    k = min(k, len(candidates))
    while True:
        picks: list[int] = []
        nearest = np.full(len(order), np.inf)
        free = np.ones(len(order), bool)
        while len(picks) < k:
            ok = np.flatnonzero(free & (nearest >= cutoff))
            if not len(ok):
                break
            i = int(ok[0])  # the largest σ among those far enough from every pick
            picks.append(i)
            free[i] = False
            nearest = np.minimum(nearest, np.sqrt(np.sum((Q - Q[i]) ** 2, axis=1)))
        if len(picks) == k:
            return order[np.asarray(picks, dtype=int)].astype(int)
        cutoff = cutoff / 2 if cutoff > 1e-9 * length else 0.0


def ucb(post: PoolPosterior, candidates: np.ndarray, k: int, rng: np.random.Generator, state: dict,
        kappa: float = 2.0) -> np.ndarray:
    """Lowest formation energy by optimism: minimise μ − κσ."""
    mean = post.mean[candidates]
    return _top_k(-(mean - kappa * post.std[candidates]), candidates, k)


def expected_improvement(post: PoolPosterior, candidates: np.ndarray, k: int, rng: np.random.Generator,
                         state: dict) -> np.ndarray:
    """Expected improvement below the lowest formation energy labelled so far."""
    mean, std = post.mean[candidates], post.std[candidates]
    z = (state["best_found"] - mean) / std
    ei = (state["best_found"] - mean) * stats.norm.cdf(z) + std * stats.norm.pdf(z)
    return _top_k(ei, candidates, k)


def integration_rows(n_pool: int, seed: int, size: int = INTEGRATION_POINTS) -> np.ndarray:
    """The seeded integration points of a run: ``size`` positions of its candidate pool (all if fewer), fixed for the
    whole run (labelled ones stay in: their variance is the noise's, so they add nothing to a reduction)."""
    if n_pool <= size:
        return np.arange(n_pool)
    return np.sort(np.random.default_rng([seed, 7]).choice(n_pool, size, replace=False))


def integrated_variance(post: PoolPosterior, candidates: np.ndarray, k: int, rng: np.random.Generator,
                        state: dict) -> np.ndarray:
    """Largest reduction of the posterior variance integrated over the pool's inputs (Cohn's ALC; BoTorch's
    ``qNegIntegratedPosteriorVariance``): labelling x lowers Σⱼ var(xⱼ) by Σⱼ cov(xⱼ, x)² / (σ²(x) + noise), exactly,
    over a seeded subsample of the candidate pool. Unlike entropy it favours inputs that inform many others —
    dense regions of the pool, which the test set shares — over isolated outliers."""
    rows = state["integration_rows"]
    post.covariance_with(rows)
    noise = post.noise

    def score(var, cov, cand):
        return np.sum(cov[:, cand] ** 2, axis=0) / (var[cand] + noise)
    return post.greedy_batch(candidates, k, score)


def epig(post: PoolPosterior, candidates: np.ndarray, k: int, rng: np.random.Generator,
         state: dict) -> np.ndarray:
    """Expected predictive information gain (Bickford Smith et al., AISTATS 2023) about the labels of the pool's
    inputs: for jointly Gaussian labels, EPIG(x) = mean over x* of −½ log(1 − ρ²(x, x*)), ρ the posterior
    correlation of the two labels (noise included), over a seeded subsample of the candidate pool."""
    rows = state["integration_rows"]
    post.covariance_with(rows)
    noise = post.noise

    def score(var, cov, cand):
        vy = var + noise
        rho2 = cov[:, cand] ** 2 / (vy[rows][:, None] * vy[cand][None, :])
        return -0.5 * np.mean(np.log1p(-np.minimum(rho2, 1 - 1e-12)), axis=0)
    return post.greedy_batch(candidates, k, score)


STRATEGIES: dict[str, Strategy] = {
    "entropy": entropy,
    "random": random,
    "batch-diverse": batch_diverse,
    "batch-distance": batch_distance,
    "ucb": ucb,
    "ei": expected_improvement,
    "integrated-variance": integrated_variance,
    "epig": epig,
}


# ------------------------------------------------------------------- the loop
@dataclass(frozen=True)
class ALSettings:
    strategy: str = "entropy"
    cycles: int = 1500
    batch_size: int = 1
    seed: int = 0
    pool_size: int | None = PAPER_POOL_SIZE  # drawn per seed from the run's pool split (None: all of it)
    refit_every: int | None = None  # optional periodic hyper-parameter refit (the paper keeps them fixed)
    #: MEGNet fine-tuned and every material re-featurised every this many picks (`cfgp al-finetune`, which records
    #: it in its history's "finetune" block); a saved history's setting only: an ActiveLearner keeps the network
    #: frozen and refuses it
    finetune_every: int | None = None

    def __post_init__(self):
        # the one place a setting is checked: the CLI, the notebooks, the dashboard and saved histories all build one
        if self.strategy not in STRATEGIES:
            raise ValueError(f"active learning: unknown strategy {str(self.strategy)[:40]!r}; "
                             f"choose from {', '.join(sorted(STRATEGIES))}")
        # a batch size of 0 made _top_k return every candidate at once; say so instead
        for name, low in (("cycles", 0), ("batch_size", 1), ("pool_size", 1), ("refit_every", 1),
                          ("finetune_every", 1)):
            value = getattr(self, name)
            if value is None and name in ("pool_size", "refit_every", "finetune_every"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"active learning: {name} must be an integer ≥ {low}, got {value!r}")

    def to_dict(self) -> dict:
        # a frozen network's settings are written without finetune_every, as every history before it was: a header
        # written now stays equal to theirs (same_run), so they resume and answer as before
        d = asdict(self)
        if d["finetune_every"] is None:
            del d["finetune_every"]
        return d


def pool_positions(n_pool: int, settings: "ALSettings") -> np.ndarray:
    """Positions (sorted) of the seeded pool subsample an AL run of ``settings`` draws from a pool of
    ``n_pool`` materials (all of them when ``pool_size`` is None or not smaller)."""
    pos = np.arange(n_pool)
    if settings.pool_size is not None and settings.pool_size < n_pool:
        pos = np.sort(np.random.default_rng(settings.seed).choice(pos, settings.pool_size, replace=False))
    return pos


class ActiveLearner:
    """Holds the state of one active-learning run; ``steps()`` is the generator of cycle records."""

    def __init__(self, gp: CFGP, X_train, y_train, X_pool, y_pool, X_test, y_test,
                 settings: ALSettings = ALSettings(), pool_ids=None):
        if settings.finetune_every is not None:
            raise ValueError(f"active learning: finetune_every={settings.finetune_every} needs the network fine-tuned "
                             "during the run (cfgp al-finetune); this learner keeps it frozen")
        self.settings = settings
        self.strategy = STRATEGIES[settings.strategy]
        pool_pos = pool_positions(len(y_pool), settings)
        self.pool_positions = pool_pos  # into the caller's pool arrays
        self.pool_ids = np.asarray(pool_ids)[pool_pos] if pool_ids is not None else pool_pos.astype(str)
        # the posterior is updated through the exact GP's Cholesky factor (PoolPosterior): whatever method the
        # run's GP was saved with, active learning conditions exactly (its train set is small: 1,800 to ~3,300)
        self.gp = gp.with_params(method="exact").condition(X_train, y_train)
        self._X_train, self._y_train = np.asarray(X_train), np.asarray(y_train)
        self.X_query = np.vstack([np.asarray(X_pool)[pool_pos], X_test])
        self.y_query = np.concatenate([np.asarray(y_pool)[pool_pos], y_test])
        self.n_pool = len(pool_pos)
        self.test_slice = slice(self.n_pool, len(self.y_query))
        self.available = np.ones(self.n_pool, bool)
        self.posterior = PoolPosterior(self.gp, self.X_query)
        self.cycle = 0
        self.n_train = len(y_train)
        self.best_found = float(np.min(y_train))
        self.picked: list[int] = []  # positions into the pool, in order
        # query positions the integrating strategies average over (fixed per seed, drawn from the candidate pool)
        self.integration_rows = integration_rows(self.n_pool, settings.seed)

    def record(self, picks=(), seconds: float = 0.0) -> dict:
        mean = self.posterior.mean
        std = self.posterior.std
        te = self.test_slice
        err = mean[te] - self.y_query[te]
        pool_std = std[: self.n_pool][self.available]
        left = np.flatnonzero(self.available)
        return {
            "cycle": self.cycle,
            "picked": [str(self.pool_ids[p]) for p in picks],
            "n_train": self.n_train,
            "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "coverage_2sigma": float(np.mean(np.abs(err) <= 2 * std[te])),
            # the paper's score: MAE over the candidates still unlabelled (falls as the worst ones are picked,
            # whether or not the model improved; not comparable with the fixed test's ``mae``)
            "pool_mae": float(np.mean(np.abs(mean[left] - self.y_query[left]))) if len(left) else float("nan"),
            "pool_sigma_mean": float(pool_std.mean()) if len(pool_std) else float("nan"),
            "pool_sigma_max": float(pool_std.max()) if len(pool_std) else float("nan"),
            "best_found": self.best_found,
            "seconds": round(seconds, 5),
        }

    def select(self) -> np.ndarray:
        candidates = np.flatnonzero(self.available)
        rng = np.random.default_rng([self.settings.seed, self.cycle])  # per-cycle: replays identically
        state = {"best_found": self.best_found, "integration_rows": self.integration_rows}
        return np.asarray(self.strategy(self.posterior, candidates, self.settings.batch_size, rng, state), dtype=int)

    def apply(self, picks: np.ndarray) -> None:
        """Reveal the known DFT labels of the picks and condition the GP on them."""
        for p in picks:
            if not self.available[p]:
                raise ValueError(f"pool material {self.pool_ids[p]} was already labelled")
            self.posterior.add(int(p), self.y_query[p])
            self.available[p] = False
            self.picked.append(int(p))
            self.best_found = min(self.best_found, float(self.y_query[p]))
        self.n_train += len(picks)
        self.cycle += 1
        every = self.settings.refit_every
        if every and self.cycle % every == 0:
            self._refit()

    def _refit(self) -> None:
        """Periodic hyper-parameter refit on the labelled set, then a fresh posterior."""
        X = np.vstack([self._X_train, self.X_query[self.picked]])
        y = np.concatenate([self._y_train, self.y_query[self.picked]])
        params = dict(self.gp.get_params(), amplitude=self.gp.amplitude_, length_scale=self.gp.length_scale_,
                      noise_variance=self.gp.noise_variance_, optimize=True, method="exact")
        self.gp = CFGP(**params).fit(X, y)
        self.posterior = PoolPosterior(self.gp, self.X_query)

    def step(self) -> dict:
        """One cycle: select, reveal, update, predict, score; ``seconds`` covers all of it."""
        t0 = time.perf_counter()
        picks = self.select()
        self.apply(picks)
        rec = self.record(picks)
        rec["seconds"] = round(time.perf_counter() - t0, 5)
        return rec

    def replay(self, records: list[dict], source: str | Path = "the history") -> Iterator[dict]:
        """Put a saved run back into this fresh learner: yields each record of ``records`` once the learner is in
        the state it describes (cycle 0 first, then the saved picks applied cycle by cycle, no selection). The one
        way a saved run re-enters a learner: resuming it (:func:`run_history`) and re-scoring it
        (:func:`cfgp.al_metrics.pool_scored_mae`)."""
        if self.cycle != 0:
            raise ValueError("a replay needs a fresh learner (cycle 0)")
        lookup = {str(pid): i for i, pid in enumerate(self.pool_ids)}
        for n, rec in enumerate(records):
            if n:
                picked = rec.get("picked", [])
                unknown = [p for p in picked if p not in lookup]
                if unknown:
                    raise HistoryError(f"{source}: record of cycle {rec.get('cycle', n)} picks {unknown[:3]}, which "
                                       "are not in this learner's pool; the file belongs to another run")
                self.apply(np.array([lookup[p] for p in picked], dtype=int))
            yield rec

    def steps(self, cycles: int | None = None) -> Iterator[dict]:
        """Generator of cycle records; stops early if the pool runs out."""
        cycles = self.settings.cycles if cycles is None else cycles
        for _ in range(cycles):
            if not self.available.any():
                return
            yield self.step()


# ------------------------------------------------------------- persistence
class HistoryError(ValueError):
    """A history file that cannot be read as written by :class:`History`; the message names file and line."""


#: the most bytes a history's header line may take: a header is ~400 bytes, and the bound keeps a listing of a
#: folder cheap (headers only) whatever else lies in it
HEADER_MAX_BYTES = 64 * 1024


#: the most bytes a history may hold (decompressed): a 6,000-cycle run takes ~2 MB, so this only stops a file that is
#: not a history (or a gzip bomb) from filling memory
HISTORY_MAX_BYTES = 64 * 2**20
#: the suffix of a gzipped history (the shipped default's): the same run as the plain file of the name without it
GZIP_SUFFIX = ".gz"


def history_name(path: str | Path) -> str:
    """The name a history is known by, gzipped or not (``x.jsonl.gz`` → ``x.jsonl``): one run, whichever file holds
    it (listings, the shipped copy an extension starts from, a retrain's record of its history)."""
    return str(path).removesuffix(GZIP_SUFFIX)


class History:
    """An append-only JSON-lines file: a header with the settings, then one record per cycle.

    Each record is written with one O_APPEND write and fsync, so a kill leaves at most a torn last
    line. Readers never write: :meth:`read` ignores a torn last line (a writer may be mid-write) and
    reports a garbled line elsewhere as an error. Only the run that owns the file repairs it
    (:meth:`repair`, under an exclusive lock held for the whole run, see :func:`run_history`).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def compressed(self) -> bool:
        """A gzipped history (``.jsonl.gz``, as the shipped default holds them): read-only, a finished record."""
        return self.path.name.endswith(GZIP_SUFFIX)

    def open_binary(self):
        """The file as bytes (decompressed when gzipped), for reading or copying."""
        return gzip.open(self.path, "rb") if self.compressed else open(self.path, "rb")

    def _refuse_write(self) -> None:
        refuse_shipped_write(self.path)
        if self.compressed:
            raise HistoryError(f"{self.path} is gzipped, a finished record that is not written to; extend a copy "
                               "(`cfgp al` does so in the user's folder)")

    def _parse(self) -> tuple[dict | None, list[dict], int, bytes]:
        """(header, records, bytes of complete good lines, the torn tail); nothing yet if there is no file (a
        reader may poll a run's history before the writer has made it; a command given a path checks it exists)."""
        if not self.path.exists():
            return None, [], 0, b""
        try:  # the project's bounded reader: a regular file, gunzipped if named .gz, never more than the limit
            with BoundedBytes(self.path, HISTORY_MAX_BYTES) as fh:
                data = b"".join(iter(lambda: fh.read(1 << 20), b""))
        except DataError as exc:
            raise HistoryError(str(exc)) from None
        lines = data.split(b"\n")
        tail = lines.pop()  # text after the last newline: empty, or a write in flight / torn by a kill
        header, records, good = None, [], 0
        for n, raw in enumerate(lines, start=1):
            if raw.strip():
                try:
                    obj = json.loads(raw)
                except (json.JSONDecodeError, RecursionError, UnicodeDecodeError) as exc:
                    if n == len(lines) and not tail:  # a last line that ends in a newline but is torn
                        return header, records, good, raw + b"\n"
                    raise HistoryError(f"{self.path}, line {n}: not a JSON record ({str(exc)[:80]}); the file "
                                       "was edited or corrupted, remove the line or the file") from None
                if not isinstance(obj, dict):
                    raise HistoryError(f"{self.path}, line {n}: expected a JSON object, got {type(obj).__name__}")
                if header is None:
                    header = obj
                else:
                    records.append(obj)
            good += len(raw) + 1
        return header, records, good, tail

    def read(self) -> tuple[dict | None, list[dict]]:
        """Header and complete records (None and [] while there is no file or no complete header); never modifies
        the file."""
        header, records, _, _ = self._parse()
        return header, records

    def read_header(self) -> dict | None:
        """The header alone, from at most :data:`HEADER_MAX_BYTES` bytes (for listings); None for an empty file
        or a header still being written, as :meth:`read` says."""
        with self.open_binary() as fh:
            first = fh.readline(HEADER_MAX_BYTES + 1)
            while first.endswith(b"\n") and not first.strip() and fh.tell() <= HEADER_MAX_BYTES:
                first = fh.readline(HEADER_MAX_BYTES + 1)  # blank lines before the header, skipped as read() does
            last = not fh.read(1)
        if not first.endswith(b"\n"):
            if len(first) > HEADER_MAX_BYTES:
                raise HistoryError(f"{self.path}, line 1: over {HEADER_MAX_BYTES:,} bytes, not a history header")
            return None  # empty, or the header's write is in flight or was torn by a kill
        try:
            header = json.loads(first)
        except (json.JSONDecodeError, RecursionError, UnicodeDecodeError) as exc:
            if last:
                return None  # a lone torn line, as read() treats it
            raise HistoryError(f"{self.path}, line 1: not a JSON record ({str(exc)[:80]}); the file was edited or "
                               "corrupted, remove it") from None
        if not isinstance(header, dict):
            raise HistoryError(f"{self.path}, line 1: expected a JSON object, got {type(header).__name__}")
        return header

    def settings(self) -> "ALSettings | None":
        """The settings the header records (never the file name), checked by :class:`ALSettings`; None while
        the file has no complete header."""
        header = self.read_header()
        return None if header is None else header_settings(header, self.path)

    def repair(self) -> str | None:
        """Cut a torn last line (for the writer that owns the file); returns what was dropped, or None."""
        _, records, good, tail = self._parse()
        if not tail:
            return None
        self._refuse_write()
        with open(self.path, "r+b") as fh:
            fh.truncate(good)
            os.fsync(fh.fileno())
        return (f"{self.path}: dropped an incomplete last line ({len(tail)} bytes, a record cut by a kill) after "
                f"{len(records)} complete records")

    def lock(self):
        """An exclusive, non-blocking lock on the history (one writer per file); raises if another run holds it."""
        import fcntl

        self._refuse_write()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path.with_name(self.path.name + ".lock"), "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise HistoryError(f"{self.path} is being written by another run; wait for it or choose another folder")\
                from None
        return fh

    def append(self, obj: dict) -> None:
        self._refuse_write()
        data = (json.dumps(obj, default=float) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def header_settings(header: dict, path: str | Path) -> ALSettings:
    """The :class:`ALSettings` of a history header; a :class:`HistoryError` naming ``path`` if they are not valid."""
    saved = header.get("settings")
    if not isinstance(saved, dict):
        raise HistoryError(f"{path}, line 1: the header holds no settings; not an active-learning history")
    finetune = header.get("finetune")
    try:
        if finetune is not None:  # `cfgp al-finetune` records how often the network was updated in a block of its own
            if not isinstance(finetune, dict):
                raise ValueError(f"finetune is a {type(finetune).__name__}, not an object")
            saved = {**saved, "finetune_every": finetune.get("every")}
        return ALSettings(**saved)
    except (TypeError, ValueError) as exc:
        raise HistoryError(f"{path}, line 1: the header's settings are not valid ({str(exc)[:160]})") from None


def same_run(header: dict, other: dict) -> bool:
    """Two history headers describe the same run if they agree on everything but the cycle count:
    each cycle depends only on those before it, so a shorter run is a prefix of a longer one."""
    def strip(h):
        return {**h, "settings": {k: v for k, v in (h.get("settings") or {}).items() if k != "cycles"}}

    return strip(header) == strip(other)


def run_history(learner: ActiveLearner, path: str | Path, header: dict, cycles: int | None = None,
                progress: bool = False, log: Callable[[str], None] | None = None) -> list[dict]:
    """Run (or resume) an active-learning run into a history file; returns all its records.

    Holds the history's lock while it runs; a resumed run produces exactly the records an
    uninterrupted run would (cycle 0 included, nothing duplicated). A saved history of the same run
    (:func:`same_run`) that is longer than asked answers with its first ``cycles`` cycles; a shorter
    one is extended.
    """
    hist = History(path)
    hist.path.parent.mkdir(parents=True, exist_ok=True)
    lock = hist.lock()
    try:
        dropped = hist.repair()
        if dropped and log is not None:
            log(dropped)
        saved_header, records = hist.read()
        if saved_header is not None and not same_run(saved_header, header):
            raise ValueError(f"{path} holds a run with other settings; remove it or choose another folder")
        total = learner.settings.cycles if cycles is None else cycles
        if len(records) > total:
            return records[: total + 1]
        if saved_header is None:
            hist.append(header)
        if not records:  # new, or killed between the header and the first record
            rec0 = learner.record()
            hist.append(rec0)
            records = [rec0]
        else:
            for _ in learner.replay(records, path):  # the saved picks through the same updates
                pass
        remaining = total - learner.cycle
        bar = None
        if progress and remaining > 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=learner.cycle, desc=f"AL {learner.settings.strategy} seed "
                                                                 f"{learner.settings.seed}", unit="cycle")
        for rec in learner.steps(max(remaining, 0)):
            hist.append(rec)
            records.append(rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(mae=f"{rec['mae']:.4f}")
        if bar is not None:
            bar.close()
        return records
    finally:
        lock.close()


# ------------------------------------------------------------ comparisons
def curves(histories: list[list[dict]], key: str = "mae") -> dict[str, np.ndarray]:
    """Stack MAE-vs-labels curves of several seeds (truncated to the shortest); ``key`` names the score
    (``"pool_mae"``: the paper's pool scoring; NaN where a record lacks it)."""
    n = min(len(h) for h in histories)
    mae = np.array([[r.get(key, np.nan) for r in h[:n]] for h in histories], dtype=float)
    labels = np.array([r["n_train"] for r in histories[0][:n]]) - histories[0][0]["n_train"]
    return {"labels": labels, "mae": mae, "mean": mae.mean(axis=0),
            "std": mae.std(axis=0, ddof=1) if len(mae) > 1 else np.zeros(n)}


def labels_to_reach(curve_mean: np.ndarray, labels: np.ndarray, target: float) -> int | None:
    """Fewest labels after which a curve (``curve_mean`` at each of ``labels``: a mean over seeds, or one seed's
    MAE as :func:`cfgp.al_metrics.reach_baseline` passes it) is at or below ``target`` (None if never)."""
    hit = np.flatnonzero(curve_mean <= target)
    return int(labels[hit[0]]) if len(hit) else None


def compare(results: dict[str, list[list[dict]]], baseline: str = "random",
            against: Mapping[str, str] | None = None) -> dict:
    """Per strategy: final MAE (mean ± std over seeds), labels needed to reach the baseline's final MAE,
    the speed-up over the baseline, and the MAE reduction from the start. ``against`` names another baseline per
    strategy (:func:`cfgp.pipeline.al_baselines`: random under the same settings); ``baseline`` for the rest."""
    out = {}
    for name, hists in results.items():
        b = (against or {}).get(name, baseline)
        base = curves(results[b]) if b in results else None
        target = float(base["mean"][-1]) if base is not None else None
        c = curves(hists)
        entry = {
            "seeds": len(hists),
            "labels": int(c["labels"][-1]),
            "initial_mae": float(c["mean"][0]),
            "final_mae_mean": float(c["mean"][-1]),
            "final_mae_std": float(c["std"][-1]),
            "mae_reduction": float(1 - c["mean"][-1] / c["mean"][0]),
        }
        if target is not None:
            need = labels_to_reach(c["mean"], c["labels"], target)
            entry["baseline"] = b
            entry["labels_to_reach_baseline"] = need
            entry["speedup_vs_baseline"] = (int(base["labels"][-1]) / need) if need else None
        out[name] = entry
    return out
