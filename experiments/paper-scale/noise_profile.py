"""Is a retrain's GP noise variance at its floor a failed fit or a flat likelihood?

For each fixed noise variance the other hyper-parameters are fitted again (same seeded 2,000-point subsample as
`cfgp fit`), and the GP conditioned on the run's train split is scored on its leftover pool (never the test split).

    .venv/bin/python experiments/paper-scale/noise_profile.py experiments/paper-scale/p6000/entropy-s0-warm
"""

import argparse
import json

import numpy as np

from cfgp.gp import CFGP
from cfgp.pipeline import Run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a retrain's run folder")
    ap.add_argument("--noise", type=float, nargs="+", default=[1e-6, 1e-5, 1e-4, 3e-4, 1e-3])
    args = ap.parse_args()
    run = Run(args.run)
    X, y = run.latents(), run.materials.y
    tr, pool = run.split.train, run.split.pool
    rows = []
    for noise in args.noise:
        gp = CFGP(noise_variance=noise, fit_noise=False, seed=0).fit(X[tr], y[tr], backend="numpy")
        mu, sd = gp.predict(X[pool], return_std=True)
        rows.append({"noise_variance": noise,
                     "neg_log_marginal_likelihood": gp.fit_info_.neg_log_marginal_likelihood,
                     "n_fit_points": gp.fit_info_.n_fit_points, "hyperparameters": gp.hyperparameters_,
                     "pool_mae": float(np.mean(np.abs(mu - y[pool]))),
                     "pool_coverage_2sigma": float(np.mean(np.abs(mu - y[pool]) <= 2 * sd)), "n_pool": len(pool)})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
