"""Time the GP hyper-parameter fit on a run's train latents: CFGP's NumPy/SciPy path (used on CPUs), its
TensorFlow/TFP path (used on GPUs) and scikit-learn's GaussianProcessRegressor with the same model
(ConstantKernel × Matern(ν=½) + WhiteKernel, standardised latents, centred targets), one JSON line.

    python benchmarks/gp_fit.py [--run data/default] [--repeat 1]

Pause other work on the machine first: the numbers are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from cfgp.gp import CFGP
from cfgp.pipeline import Run


def sklearn_fit(Xs: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(1.0, (1e-3, 1e5), nu=0.5) + WhiteKernel(1e-2, (1e-6, 1.0))
    t0 = time.perf_counter()
    gpr = GaussianProcessRegressor(kernel, normalize_y=False, random_state=0).fit(Xs, y - y.mean())
    seconds = time.perf_counter() - t0
    k = gpr.kernel_
    return seconds, {"amplitude": float(np.sqrt(k.k1.k1.constant_value)), "length_scale": float(k.k1.k2.length_scale),
                     "noise_variance": float(k.k2.noise_level)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None)
    ap.add_argument("--repeat", type=int, default=1, help="fits per backend; the fastest is reported")
    args = ap.parse_args()
    run = Run(args.run) if args.run else Run()
    X, y = run.latents()[run.split.train], run.materials.y[run.split.train]
    out: dict = {"run": str(run.dir), "n": int(len(y)), "machine": f"{os.cpu_count()} cores"}
    for backend in ("numpy", "tensorflow"):
        best = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            gp = CFGP(seed=0).fit(X, y, backend=backend)
            s = time.perf_counter() - t0
            best = s if best is None else min(best, s)
        out[f"cfgp_{backend}_s"] = round(best, 2)
        out[f"cfgp_{backend}_iterations"] = gp.fit_info_.iterations
        out[f"cfgp_{backend}_hyperparameters"] = {k: round(v, 6) for k, v in gp.hyperparameters_.items()}
    Xs = gp.scaler_.transform(X)
    out["sklearn_s"], hp = sklearn_fit(Xs, y)
    out["sklearn_s"] = round(min([out["sklearn_s"]] + [sklearn_fit(Xs, y)[0] for _ in range(args.repeat - 1)]), 2)
    out["sklearn_hyperparameters"] = {k: round(v, 6) for k, v in hp.items()}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
