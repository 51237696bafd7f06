"""2-D maps of the latent space: t-SNE (openTSNE), cached per run and settings; new materials are
placed among their nearest latent neighbours."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cfgp.artefacts import cache_dir, load_npz, save_npz
from cfgp.pipeline import load_gp


@dataclass(frozen=True)
class TSNESettings:
    perplexity: float = 30.0
    seed: int = 0
    n_iter: int = 500
    early_exaggeration_iter: int = 250

    def to_dict(self) -> dict:
        return asdict(self)

    def filename(self) -> str:
        return f"tsne-p{self.perplexity:g}-s{self.seed}-i{self.n_iter}.npz"


def tsne(
    X: np.ndarray,
    settings: TSNESettings = TSNESettings(),
    callback: Callable[[int, float, np.ndarray], bool | None] | None = None,
    callback_every: int = 25,
    n_jobs: int = 2,
) -> np.ndarray:
    """t-SNE of the rows of X. ``callback(iteration, kl_divergence, xy)`` is called every
    ``callback_every`` iterations (for live maps and progress); returning True stops early."""
    from openTSNE import TSNE

    if len(X) < 3 * settings.perplexity + 1:
        raise ValueError(f"{len(X)} points are too few for perplexity {settings.perplexity} (need > 3×perplexity)")
    cb = None
    if callback is not None:
        def cb(iteration, error, embedding):  # noqa: E306
            return callback(int(iteration), float(error), np.asarray(embedding))
    model = TSNE(perplexity=settings.perplexity, random_state=settings.seed, n_iter=settings.n_iter,
                 early_exaggeration_iter=settings.early_exaggeration_iter, n_jobs=n_jobs, verbose=False,
                 callbacks=cb, callbacks_every_iters=callback_every)
    return np.asarray(model.fit(np.asarray(X, dtype=np.float64)))


def run_tsne(run, settings: TSNESettings = TSNESettings(), recompute: bool = False, reader: bool = False,
             **kw) -> np.ndarray:
    """t-SNE of every material of a run (GP-scaled latents), aligned with ``run.materials``;
    saved as tsne-*.npz with the latent hash and reloaded when the settings match.

    ``reader``: the caller only reads the run (the dashboard): a map the run lacks is computed once and kept in the
    user cache (:func:`tsne_cache_path`), never written into the run folder."""
    latent_hash = run.latents_hash()
    ids = run.materials.ids.astype(str)
    cached = tsne_cache_path(settings, latent_hash, ids)
    for path in (run.path(settings.filename()), cached) if not recompute else ():  # the user's map, else the run's
        z = load_npz(path) if path.exists() else None  # None: torn or foreign, computed anew
        if z is not None and str(z.get("latents_hash")) == latent_hash and "xy" in z \
                and np.array_equal(z.get("material_id"), ids):
            return z["xy"]
    X = run.latents()
    ok = np.isfinite(X).all(axis=1)
    Xs = load_gp(run, conditioned=False).scaler_.transform(X[ok])
    xy = np.full((len(X), 2), np.nan)
    xy[ok] = tsne(Xs, settings, **kw)
    out = cached if reader else run.write_dir / settings.filename()
    try:
        save_npz(out, material_id=ids, xy=xy, latents_hash=np.array(latent_hash),
                 settings=np.array(str(settings.to_dict())))
    except OSError:
        if not reader:
            raise  # a reader's cache that cannot be written only costs the computation next time
    return xy


def tsne_cache_path(settings: TSNESettings, latent_hash: str, ids: np.ndarray) -> Path:
    """Where a reader keeps a map its run lacks: the user cache, keyed by the settings, the latents and the ids."""
    key = hashlib.sha256(f"{settings.to_dict()}|{latent_hash}|{'|'.join(map(str, ids))}".encode()).hexdigest()[:20]
    return cache_dir() / f"tsne-{key}.npz"


def place(X_ref: np.ndarray, xy_ref: np.ndarray, X_new: np.ndarray, k: int = 10) -> np.ndarray:
    """Map positions for new latents: inverse-distance-weighted mean of the k nearest reference points."""
    X_ref, X_new = np.asarray(X_ref), np.atleast_2d(X_new)
    out = np.empty((len(X_new), 2))
    for i, x in enumerate(X_new):
        d = np.linalg.norm(X_ref - x, axis=1)
        nn = np.argpartition(d, min(k, len(d) - 1))[:k]
        w = 1.0 / (d[nn] + 1e-9)
        out[i] = (w[:, None] * xy_ref[nn]).sum(axis=0) / w.sum()
    return out

