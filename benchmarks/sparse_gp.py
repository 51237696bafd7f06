"""Sparse (SGPR) and local (nearest-neighbour) against exact GP conditioning as the training set grows, on the
shipped run's real latents.

For each n the GP is trained on the first n of train + pool (the 1,800 train oxides, then the pool in the
run's order; 14,928 = all of them) and scored on the fixed 1,460 test oxides. The GPs are ``CFGP`` with the
same settings but ``method``: the hyper-parameters come from the same seeded ≤ 2,000-point marginal-likelihood
fit, so the numbers compare the conditioning alone (exact n×n Cholesky, m inducing inputs, or each query's k
nearest training points).

    python benchmarks/sparse_gp.py [--sizes 1800 7000 14928] [--n-inducing 2000] [--other-m 1000 3000]
                                   [--n-neighbours 256] [--other-k 128 512] [--all-labelled]

prints one JSON line. ``--all-labelled`` also fits the sparse and the local GP on every labelled material
shipped (the 16,388 oxides and the 19,143 Materials Project non-oxides, whose latents under the default MEGNet
are cached by :func:`cfgp.uncertainty.check_sets.check_set` in the user folder) and records fit time and peak memory.
Wall-clock seconds: say what else ran on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

from cfgp.gp import N_INDUCING, N_NEIGHBOURS, CFGP
from cfgp.pipeline import Run

NONOXIDES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp_nonoxides.json.gz"


class PeakRSS:
    """Peak resident memory of this process during a block (sampled every 20 ms from /proc, in MB); the
    process-wide ``ru_maxrss`` cannot be reset, so a later, smaller step would not show on its own."""

    def __enter__(self):
        self.start_mb = self._rss()
        self.peak_mb = self.start_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    def _watch(self):
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss())

    @property
    def extra_mb(self) -> float:
        """Peak above what the process held when the block started."""
        return round(self.peak_mb - self.start_mb, 1)


def _train_order(run: Run) -> np.ndarray:
    """Rows of train then pool (the run's order), without materials whose featurisation failed."""
    X = run.latents()
    order = np.concatenate([run.split.train, run.split.pool])
    return order[np.isfinite(X[order]).all(axis=1)]


def _score(gp: CFGP, Xq: np.ndarray, yq: np.ndarray) -> tuple[dict, float]:
    t0 = time.perf_counter()
    mean, std = gp.predict(Xq, return_std=True)
    seconds = time.perf_counter() - t0
    err = np.abs(mean - yq)
    return {"mae": float(err.mean()), "cov": float(np.mean(err <= 2 * std))}, seconds


def _fit(method: str, X, y, n_inducing: int, inducing: str, seed: int) -> tuple[CFGP, float, float]:
    """A whole ``CFGP.fit`` (hyper-parameters, then conditioning): the gp, seconds and peak extra MB."""
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        gp = CFGP(seed=seed, method=method, n_inducing=n_inducing, inducing=inducing).fit(X, y)
        seconds = time.perf_counter() - t0
    return gp, seconds, mem.extra_mb


def _condition(fitted: CFGP, method: str, X, y, n_inducing: int | None = None,
               n_neighbours: int | None = None) -> tuple[CFGP, float, float]:
    """Condition a copy of ``fitted`` (same hyper-parameters and scaling) by ``method``: gp, seconds, peak MB."""
    changes = {"n_inducing": n_inducing, "n_neighbours": n_neighbours}
    gp = fitted.with_params(method=method, **{k: v for k, v in changes.items() if v is not None})
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        gp.condition(X, y)
        seconds = time.perf_counter() - t0
    return gp, seconds, mem.extra_mb


def _variants(fitted: CFGP, method: str, setting: str, values, X, y, X_test, y_test) -> list[dict]:
    """The same hyper-parameters conditioned by ``method`` at each value of ``setting`` (``n_inducing`` or
    ``n_neighbours``): test MAE and coverage, and the seconds to condition and to predict."""
    rows = []
    for v in values:
        gp, cond_s, mem_mb = _condition(fitted, method, X, y, **{setting: v})
        scores, pred_s = _score(gp, X_test, y_test)
        row = {setting: v, f"mae_{method}": round(scores["mae"], 5), f"cov_{method}": round(scores["cov"], 4)}
        if method == "sparse":  # a local GP only stores the points: its cost is in predicting
            row.update({"condition_s_sparse": round(cond_s, 2), "condition_peak_mb": mem_mb})
        row[f"predict_s_{method}"] = round(pred_s, 3)
        rows.append(row)
    return rows


def sparse_vs_exact(sizes=(1800, 7000, 14928), n_inducing: int = N_INDUCING, inducing: str = "kmeans",
                    run: Run | None = None, seed: int = 0, exact: bool = True,
                    other_m: tuple[int, ...] = (), n_neighbours: int = N_NEIGHBOURS,
                    other_k: tuple[int, ...] = ()) -> list[dict]:
    """One dict per n: test MAE and 2σ coverage of the exact and sparse GP, their fit and predict seconds
    and the peak memory each fit added (MB), plus the hyper-parameters (identical for both) and m.

    The hyper-parameter stage of ``CFGP.fit`` is the same for both methods (a seeded ≤ 2,000-point
    marginal-likelihood fit, deterministic), so it runs once, inside the sparse GP's whole ``fit``;
    ``fit_s_exact`` is that stage's seconds (``hyper_s``) plus the exact conditioning of a copy with the
    same hyper-parameters (``condition_s_exact``). ``other_m``: at the largest n, also condition with these
    numbers of inducing inputs (``by_m``: MAE, coverage, conditioning seconds).

    The local (nearest-neighbour) GP of :mod:`cfgp.local_gp` is scored the same way (``*_local``: same
    hyper-parameters, ``n_neighbours`` per query; ``other_k``: at the largest n, other k in ``by_k``). Its
    "conditioning" only stores the points, so its cost is in ``predict_s_local``, reported beside the fit.
    """
    run = run if run is not None else Run()
    X, y = run.latents(), run.materials.y
    order, te = _train_order(run), run.split.test
    te = te[np.isfinite(X[te]).all(axis=1)]
    out = []
    for n in sizes:
        if n > len(order):
            raise ValueError(f"n = {n} exceeds the {len(order)} train + pool materials of {run.dir}")
        idx = order[:n]
        row: dict = {"n": int(n), "n_inducing": int(min(n_inducing, n)), "inducing": inducing, "n_test": len(te)}
        gp, fit_s, mem_mb = _fit("sparse", X[idx], y[idx], n_inducing, inducing, seed)
        hyper_s = gp.fit_info_.seconds
        scores, pred_s = _score(gp, X[te], y[te])
        row.update({"hyper_s": hyper_s, "mae_sparse": round(scores["mae"], 5), "cov_sparse": round(scores["cov"], 4),
                    "fit_s_sparse": round(fit_s, 2), "condition_s_sparse": round(fit_s - hyper_s, 2),
                    "predict_s_sparse": round(pred_s, 3), "fit_peak_mb_sparse": mem_mb,
                    "elbo_per_point": round(gp.sparse_.elbo() / n, 5),
                    "hyperparameters": {k: round(v, 6) for k, v in gp.hyperparameters_.items()}})
        loc, cond_s, mem_mb = _condition(gp, "local", X[idx], y[idx], n_neighbours=n_neighbours)
        scores, pred_s = _score(loc, X[te], y[te])
        row.update({"n_neighbours": int(n_neighbours), "mae_local": round(scores["mae"], 5),
                    "cov_local": round(scores["cov"], 4), "fit_s_local": round(hyper_s + cond_s, 2),
                    "predict_s_local": round(pred_s, 3), "fit_peak_mb_local": mem_mb})
        del loc
        if exact:
            ex, cond_s, mem_mb = _condition(gp, "exact", X[idx], y[idx])
            scores, pred_s = _score(ex, X[te], y[te])
            row.update({"mae_exact": round(scores["mae"], 5), "cov_exact": round(scores["cov"], 4),
                        "fit_s_exact": round(hyper_s + cond_s, 2), "condition_s_exact": round(cond_s, 2),
                        "predict_s_exact": round(pred_s, 3), "fit_peak_mb_exact": mem_mb})
            del ex
            row["fit_speedup"] = round(row["fit_s_exact"] / row["fit_s_sparse"], 2)
            row["condition_speedup"] = round(row["condition_s_exact"] / max(row["condition_s_sparse"], 1e-3), 1)
            row["mae_ratio"] = round(row["mae_sparse"] / row["mae_exact"], 4)
            row["cov_diff"] = round(row["cov_sparse"] - row["cov_exact"], 4)
            row["fit_speedup_local"] = round(row["fit_s_exact"] / row["fit_s_local"], 2)
            # the local GP's work is at prediction: fit + predicting the test set, against the exact GP's
            row["fit_predict_speedup_local"] = round((row["fit_s_exact"] + row["predict_s_exact"])
                                                     / (row["fit_s_local"] + row["predict_s_local"]), 2)
            row["mae_ratio_local"] = round(row["mae_local"] / row["mae_exact"], 4)
            row["cov_diff_local"] = round(row["cov_local"] - row["cov_exact"], 4)
        if other_m and n == max(sizes):
            row["by_m"] = _variants(gp, "sparse", "n_inducing", other_m, X[idx], y[idx], X[te], y[te])
        if other_k and n == max(sizes):
            row["by_k"] = _variants(gp, "local", "n_neighbours", other_k, X[idx], y[idx], X[te], y[te])
        del gp
        print(json.dumps(row), file=sys.stderr, flush=True)  # progress: each row as it is measured
        out.append(row)
    return out


def all_labelled(n_inducing: int = N_INDUCING, inducing: str = "kmeans", run: Run | None = None,
                 nonoxides: Path = NONOXIDES, seed: int = 0) -> dict:
    """Fit the sparse GP on every labelled oxide and non-oxide shipped (latents of the non-oxides under the
    run's MEGNet from :func:`cfgp.uncertainty.check_sets.check_set`, featurised once and cached in the user folder)."""
    from cfgp.uncertainty.check_sets import check_set

    run = run if run is not None else Run()
    t0 = time.perf_counter()
    cs = check_set(run, nonoxides)
    load_s = time.perf_counter() - t0
    X = np.vstack([run.latents(), cs.X])
    y = np.concatenate([run.materials.y, cs.y])
    ok = np.isfinite(X).all(axis=1)
    X, y = X[ok], y[ok]
    gp, fit_s, mem_mb = _fit("sparse", X, y, n_inducing, inducing, seed)
    t1 = time.perf_counter()
    mean, std = gp.predict(X[:2000], return_std=True)
    predict_s = time.perf_counter() - t1
    # the local GP with the same hyper-parameters (what method="auto" uses at this n)
    loc, cond_s, loc_mb = _condition(gp, "auto", X, y)
    t2 = time.perf_counter()
    loc.predict(X[:2000], return_std=True)
    local = {"method": loc.method_, "n_neighbours": loc.n_neighbours, "fit_s_local": round(gp.fit_info_.seconds + cond_s, 2),
             "fit_peak_mb_local": loc_mb, "predict_2000_s_local": round(time.perf_counter() - t2, 2)}
    return {"n": int(len(y)), "n_oxides": int(np.isfinite(run.latents()).all(axis=1).sum()),
            "n_nonoxides": int(np.isfinite(cs.X).all(axis=1).sum()), "n_inducing": int(min(n_inducing, len(y))),
            "nonoxide_latents_cached": cs.cached, "nonoxide_latents_s": round(load_s, 1),
            "fit_s_sparse": round(fit_s, 2), "hyper_s": gp.fit_info_.seconds, "fit_peak_mb_sparse": mem_mb,
            "predict_2000_s": round(predict_s, 2), "method": gp.method_, "local": local,
            "exact_kernel_gb": round(len(y) ** 2 * 8 / 1e9, 1),
            "train_mae_first_2000": round(float(np.abs(mean - y[:2000]).mean()), 4),
            "hyperparameters": {k: round(v, 6) for k, v in gp.hyperparameters_.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1800, 7000, 14928], help="none: skip the comparison")
    ap.add_argument("--n-inducing", type=int, default=N_INDUCING)
    ap.add_argument("--inducing", default="kmeans", choices=("kmeans", "greedy", "random"))
    ap.add_argument("--no-exact", action="store_true", help="sparse only (no n×n fits)")
    ap.add_argument("--other-m", type=int, nargs="*", default=[],
                    help="at the largest n, also condition with these numbers of inducing inputs")
    ap.add_argument("--n-neighbours", type=int, default=N_NEIGHBOURS, help="the local GP's k")
    ap.add_argument("--other-k", type=int, nargs="*", default=[],
                    help="at the largest n, also score the local GP with these k")
    ap.add_argument("--nonoxides", type=Path, default=NONOXIDES, help="the non-oxide data set for --all-labelled")
    ap.add_argument("--all-labelled", action="store_true", help="also fit sparse on all ~35,500 labelled materials")
    ap.add_argument("--run", default=None, help="run folder (default: the shipped data/default)")
    args = ap.parse_args()
    run = Run(args.run) if args.run else Run()
    out: dict = {"machine": f"{os.cpu_count()} cores", "load_avg_start": os.getloadavg()[0]}
    out["rows"] = [] if not args.sizes else sparse_vs_exact(
        tuple(args.sizes), args.n_inducing, args.inducing, exact=not args.no_exact, other_m=tuple(args.other_m),
        n_neighbours=args.n_neighbours, other_k=tuple(args.other_k), run=run)
    if args.all_labelled:
        out["all_labelled"] = all_labelled(args.n_inducing, args.inducing, run=run, nonoxides=args.nonoxides)
    out["load_avg_end"] = os.getloadavg()[0]
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
