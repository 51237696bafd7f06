"""Choose the σ model on pool data only: Student-t against Gaussian recalibration of the GP's σ, by 2-fold
cross-fitting on the pool split (never the test split).

    python benchmarks/sigma_model.py [--run data/default] [--seed 0]

The GP conditioned on the train split predicts every pool material; z = (GP − DFT)/σ_GP. Each half of a seeded
2-fold split of the pool fits the model (Student-t: ν and scale τ by maximum likelihood; Gaussian: τ = RMS of z)
and the other half scores it by its mean negative log-likelihood in eV/atom units. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import stats

from cfgp.pipeline import Run, load_gp, predict_rows


def crossfit_nll(r: np.ndarray, s: np.ndarray, seed: int = 0) -> dict:
    """Held-out mean NLL of residuals ``r`` with GP σ ``s`` under each σ model, 2-fold cross-fitted."""
    z = r / s
    fold = np.random.default_rng(seed).permutation(len(z)) % 2
    nll: dict[str, list[float]] = {"student_t": [], "gaussian": []}
    fits = []
    for k in (0, 1):
        a, b = fold != k, fold == k
        df, _, tau = stats.t.fit(z[a], floc=0)
        nll["student_t"].append(float(np.mean(-stats.t.logpdf(r[b] / (tau * s[b]), df) + np.log(tau * s[b]))))
        g = float(np.sqrt(np.mean(z[a] ** 2)))
        nll["gaussian"].append(float(np.mean(-stats.norm.logpdf(r[b] / (g * s[b])) + np.log(g * s[b]))))
        fits.append({"df": round(float(df), 3), "tau_t": round(float(tau), 4), "tau_gaussian": round(g, 4)})
    return {"nll": {k: round(float(np.mean(v)), 4) for k, v in nll.items()}, "folds": fits, "n": int(len(z))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run = Run(args.run) if args.run else Run()
    X, y, pool = run.latents(), run.materials.y, run.split.pool
    mean, sd = predict_rows(load_gp(run), X[pool])
    ok = np.isfinite(mean)
    out = crossfit_nll((mean - y[pool])[ok], sd[ok], args.seed)
    print(json.dumps({"benchmark": "sigma_model", "data": "pool split", **out}))


if __name__ == "__main__":
    main()
