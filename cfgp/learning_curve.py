"""Test MAE against the number of labelled materials, for the three models a reader compares with the paper.

The paper's headline (0.0277 eV/atom) comes after 1,800 + 6,000 labels and a re-trained MEGNet; this project's
default sits at 1,800 labels with frozen latents. One figure puts them on one axis:

- **frozen-latent CFGP**: the run's MEGNet fixed, the GP (hyper-parameters refitted, as ``cfgp fit`` does)
  on train + a random share of the pool, from the 1,800 up to the whole pool; several seeds;
- **MEGNet's own readout**: the network's prediction, at the sizes it was trained on (the base run, and each
  re-trained run);
- **re-trained CFGP**: ``cfgp retrain`` runs (train + active-learning picks, MEGNet re-trained, GP refitted).

Every point is scored on the run's fixed test split; nothing here reads test energies to choose anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cfgp.artefacts import read_json, write_json
from cfgp.gp import CFGP
from cfgp.pipeline import Run, repo_path
from cfgp.retrain import RESULT_FILE
from cfgp.uncertainty.metrics import coverage

#: the paper's headline: test MAE after re-training MEGNet and the GP on 1,800 + 6,000 entropy picks
PAPER_RETRAINED = (7800, 0.0277)


def _score(mean: np.ndarray, std: np.ndarray | None, y: np.ndarray) -> dict:
    out = {"mae": float(np.mean(np.abs(mean - y)))}
    if std is not None:
        out["coverage_2sigma"] = float(coverage(mean, std, y, 2.0))
    return out


def sizes_up_to_pool(run: Run, steps: Sequence[int] = (0, 700, 1500, 3200, 5200, 8200)) -> list[int]:
    """Label counts from the train split alone to train + the whole pool (``steps`` are extra labels)."""
    n_train, n_pool = len(run.split.train), len(run.split.pool)
    return sorted({n_train + min(s, n_pool) for s in steps} | {n_train + n_pool})


def frozen_cfgp_curve(run: Run, sizes: Iterable[int], seeds: Iterable[int] = (0, 1, 2), gp_params: dict | None = None,
                      progress: bool = False) -> list[dict]:
    """Frozen latents, GP refitted on train + the first ``n − n_train`` of a seeded permutation of the pool.

    The hyper-parameters are fitted as ``cfgp fit`` fits them (on at most ``max_fit_points`` of the labelled
    set), then the GP is conditioned on every labelled material (exact, O(n³)).
    """
    X, y = run.latents(), run.materials.y
    ok = np.isfinite(X).all(axis=1)
    train, pool, test = (p[ok[p]] for p in (run.split.train, run.split.pool, run.split.test))
    out = []
    for seed in seeds:
        order = pool[np.random.default_rng(seed).permutation(len(pool))]
        for n in sorted(set(int(s) for s in sizes)):
            extra = n - len(train)
            if extra < 0 or extra > len(order):
                raise ValueError(f"{n} labels is outside {len(train)}..{len(train) + len(order)} (train .. train + pool)")
            rows = np.concatenate([train, order[:extra]])
            gp = CFGP(seed=seed, **{"method": "exact", **(gp_params or {})}).fit(X[rows], y[rows])
            mean, std = gp.predict(X[test], return_std=True)
            rec = {"model": "frozen-latent CFGP", "run": repo_path(run.dir), "seed": int(seed), "n_labels": int(len(rows)),
                   **_score(mean, std, y[test]), "length_scale": gp.length_scale_,
                   "noise_variance": gp.noise_variance_}
            out.append(rec)
            if progress:
                print(rec, flush=True)
            del gp
    return out


def readout_point(run: Run, n_labels: int | None = None, model: str = "MEGNet readout") -> dict:
    """MEGNet's own test MAE for a run's network (no σ); ``n_labels`` defaults to its train split."""
    test = run.split.test
    feat = run.featurizer()
    pred = feat.predict(run.materials.structures(test))
    n = int(n_labels if n_labels is not None else len(run.split.train))
    return {"model": model, "run": repo_path(run.dir), "n_labels": n, **_score(pred, None, run.materials.y[test])}


def retrained_points(folders: Iterable[str | Path], readout: bool = True) -> list[dict]:
    """The finished ``cfgp retrain`` runs: their CFGP test metrics (and MEGNet readout) at 1,800 + picks labels."""
    out = []
    for folder in folders:
        path = Path(folder) / RESULT_FILE
        if not path.exists():
            continue
        res = read_json(path)
        if not res.get("finished"):
            continue
        common = {"strategy": res["strategy"], "seed": res["seed"], "picks": res["picks"],
                  "warm_start": res["warm_start"], "epochs": res["epochs"]}
        run = Run(folder)
        n = int(len(run.split.train))
        out.append({"model": "re-trained CFGP", "run": repo_path(folder), "n_labels": n, "mae": res["mae"],
                    "coverage_2sigma": res["coverage_2sigma"], **common})
        if readout:
            out.append({**readout_point(run, n, "re-trained MEGNet readout"), **common})
    return out


def learning_curve(run: Run, out: str | Path, sizes: Sequence[int] | None = None, seeds: Sequence[int] = (0, 1, 2),
                   retrain_folders: Sequence[str | Path] = (), progress: bool = False) -> dict:
    """All three curves, saved to ``out`` (JSON) with the settings that made them.

    Resumable: points already in ``out`` under the same settings are kept, the rest computed (a frozen-latent
    point at the whole pool costs a minute or two on 2 cores); re-trained points are re-read every time, since
    those runs finish over several sessions.
    """
    sizes = list(sizes) if sizes else sizes_up_to_pool(run)
    settings = {"run": repo_path(run.dir), "sizes": [int(s) for s in sizes], "seeds": [int(s) for s in seeds],
                "n_test": int(len(run.split.test))}
    out = Path(out)
    saved = read_json(out) if out.exists() else {}
    frozen = [r for r in saved.get("frozen", []) if saved.get("settings") == settings]
    base = saved.get("base_readout") if saved.get("settings") == settings else None
    done = {(r["seed"], r["n_labels"]) for r in frozen}
    for seed in seeds:
        for n in sizes:
            if (seed, n) in done:
                continue
            frozen += frozen_cfgp_curve(run, [n], [seed], progress=progress)
            write_json(out, {"settings": settings, "frozen": frozen, "base_readout": base, "retrained": []})
    if base is None:
        base = readout_point(run)
    result = {"settings": settings, "frozen": frozen, "base_readout": base,
              "retrained": retrained_points(retrain_folders)}
    write_json(out, result)
    return result


def summarise(result: dict) -> list[dict]:
    """One row per curve point of ``result`` (as :func:`learning_curve` returns or saves it): the model, the
    pick strategy (re-trained runs), labelled count, mean / min / max test MAE and 2σ coverage over its seeds or
    runs, and how many there are. What a reader compares: e.g. re-trained entropy vs random at 3,300 labels."""
    points = [{**r, "strategy": ""} for r in result["frozen"]] + [{**result["base_readout"], "strategy": ""}]
    points += list(result.get("retrained", []))
    keys = sorted({(r["model"], r["strategy"], int(r["n_labels"])) for r in points},
                  key=lambda k: (k[2], k[0], k[1]))
    rows = []
    for model, strategy, n in keys:
        group = [r for r in points if (r["model"], r["strategy"], int(r["n_labels"])) == (model, strategy, n)]
        mae = np.array([r["mae"] for r in group], dtype=float)
        cov = [r["coverage_2sigma"] for r in group if r.get("coverage_2sigma") is not None]
        rows.append({"model": model, "strategy": strategy, "n_labels": n, "runs": len(group),
                     "mae": float(mae.mean()), "mae_min": float(mae.min()), "mae_max": float(mae.max()),
                     "coverage_2sigma": float(np.mean(cov)) if cov else None})
    return rows
