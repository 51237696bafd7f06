"""Compare, on the same test split and latents: the default CFGP, the paper's GP settings, and MEGNet's own
readout prediction (no σ). Prints a table, then one JSON line.

    python benchmarks/gp_variants.py [--run data/default]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cfgp.uncertainty.metrics import regression_metrics
from cfgp.gp import CFGP
from cfgp.pipeline import Run, load_gp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None)
    args = ap.parse_args()
    run = Run(args.run) if args.run else Run()
    X, y = run.latents(), run.materials.y
    tr, te = run.split.train, run.split.test
    out = {}
    variants = {"cfgp default (fitted a, l, noise, mean; standardised latents)": load_gp(run),
                "paper settings (zero mean, no noise, min-max latents)": CFGP.paper(seed=0)}
    for name, gp in variants.items():
        t0 = time.time()
        if not hasattr(gp, "_L"):
            gp.fit(X[tr], y[tr])
        mean, std = gp.predict(X[te], return_std=True)
        m = regression_metrics(mean, std, y[te])
        m["hyperparameters"] = gp.hyperparameters_
        m["seconds"] = round(time.time() - t0, 1)
        out[name] = m
    feat = run.featurizer()
    pred = feat.predict(run.materials.structures(te))
    err = pred - y[te]
    out["MEGNet readout (no σ)"] = {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())),
                                    "r2": float(1 - (err**2).sum() / ((y[te] - y[te].mean()) ** 2).sum())}
    print(f"{'model':62s} {'MAE':>7s} {'RMSE':>7s} {'R²':>6s} {'cov2σ':>6s} {'NLL':>7s}")
    for name, m in out.items():
        print(f"{name:62s} {m['mae']:7.4f} {m['rmse']:7.4f} {m['r2']:6.3f} "
              f"{m.get('coverage_2sigma', float('nan')):6.3f} {m.get('nll', float('nan')):7.3f}")
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
