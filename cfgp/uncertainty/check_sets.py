"""Out-of-domain check sets: materials the model was *not* made for (e.g. the Materials Project non-oxides),
featurised with a run's MEGNet so that the domain model and σ can be checked where they matter most.

Featurising the 19,143 shared non-oxides takes ~5 minutes on 2 cores (measured: 120 s parsing CIFs, 159 s
MEGNet), so the latents are cached in the user's folder (:func:`cfgp.artefacts.cache_dir`), keyed by
the check-set file's sha256, the run's MEGNet hash and the sample drawn — never inside a run folder, which a
reader must not write (the shipped ``data/default`` is read-only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfgp.artefacts import cache_dir, file_sha256, save_npz
from cfgp.data import read_records, validate_records


@dataclass
class CheckSet:
    """Latents and labels of a check set, aligned row by row (NaN latents: featurisation failed)."""

    ids: np.ndarray
    formulas: np.ndarray
    elements: list[tuple[str, ...]]
    y: np.ndarray
    X: np.ndarray
    source: str
    n_in_file: int
    seconds: dict  # how long parsing and featurising took when the cache was made
    cached: bool  # True when read from the cache


def _sample_records(records: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(records):
        return records
    pick = np.sort(np.random.default_rng(seed).choice(len(records), n, replace=False))
    return [records[i] for i in pick]


def check_set(run, path: str | Path, n: int | None = None, seed: int = 0, progress: bool = False,
              refresh: bool = False) -> CheckSet:
    """Latents of (a seeded sample of ``n`` of) the labelled materials in ``path`` under ``run``'s MEGNet.

    Bad records are skipped as everywhere in cfgp (the load report names them). The result is cached in
    :func:`cache_dir` and reloaded when the file, the MEGNet and the sample match.
    """
    path = Path(path)
    data_hash = file_sha256(path)[:16]
    model_hash = run.latents_hash()
    name = f"checkset-{data_hash}-{model_hash}-{'all' if n is None else n}-s{seed}.npz"
    cache = cache_dir() / name
    if cache.exists() and not refresh:
        z = np.load(cache, allow_pickle=False)
        return CheckSet(ids=z["ids"], formulas=z["formulas"], elements=[tuple(e.split()) for e in z["elements"]],
                        y=z["y"], X=z["X"], source=str(path), n_in_file=int(z["n_in_file"]),
                        seconds={"parse": float(z["parse_s"]), "featurise": float(z["featurise_s"])}, cached=True)
    t0 = time.time()
    records = read_records(path)
    sample = _sample_records(records, n, seed)
    materials = validate_records(sample, source=str(path), energy_window=None, on_error="skip")
    parse_s = time.time() - t0
    t1 = time.time()
    X = run.featurizer().transform(materials.structures(), names=materials.ids, on_error="skip",
                                   progress=progress)
    featurise_s = time.time() - t1
    f = materials.frame
    elements = [" ".join(e) for e in f["elements"]]
    save_npz(cache, ids=materials.ids.astype(str), formulas=f["formula"].to_numpy().astype(str),
             elements=np.asarray(elements, dtype=str), y=materials.y, X=X, n_in_file=np.array(len(records)),
             parse_s=np.array(parse_s), featurise_s=np.array(featurise_s))
    return CheckSet(ids=materials.ids.astype(str), formulas=f["formula"].to_numpy().astype(str),
                    elements=[tuple(e) for e in f["elements"]], y=materials.y, X=X, source=str(path),
                    n_in_file=len(records), seconds={"parse": parse_s, "featurise": featurise_s}, cached=False)
