"""Measure the choices behind cfgp.uncertainty.domain_model and cfgp.uncertainty.sigma_calibration on the embedded default (README, "Domain of
applicability"): which latent detector, at which percentile, and which σ treatment.

    python benchmarks/domain_options.py --check-set /work/shared/data/mp_nonoxides.json.gz

Prints JSON lines: one per latent detector (fitted on the MEGNet-fit part of train, thresholds from the held-out
early-stopping part) and one per σ option (fitted on the pool split, scored on the test split and the check set).
The check set is featurised once and cached in the user folder (~5 min the first time on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import stats


def detectors(Xf: np.ndarray) -> dict:
    """name → () → score function (larger = farther from the training latents)."""
    from sklearn.covariance import EmpiricalCovariance
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

    def knn(k):
        nn = NearestNeighbors(n_neighbors=k).fit(Xf)
        return lambda Q: nn.kneighbors(Q)[0].mean(axis=1)

    def maha():
        c = EmpiricalCovariance().fit(Xf)
        return c.mahalanobis

    def gmm(n):
        g = GaussianMixture(n, covariance_type="full", random_state=0, reg_covar=1e-3).fit(Xf)
        return lambda Q: -g.score_samples(Q)

    def iso():
        f = IsolationForest(n_estimators=300, random_state=0).fit(Xf)
        return lambda Q: -f.score_samples(Q)

    def lof(k):
        f = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(Xf)
        return lambda Q: -f.score_samples(Q)

    return {"kNN k=1 (shipped)": lambda: knn(1), "kNN k=5": lambda: knn(5), "kNN k=10": lambda: knn(10),
            "Mahalanobis": maha, "Gaussian mixture, 4": lambda: gmm(4), "Gaussian mixture, 8": lambda: gmm(8),
            "isolation forest": iso, "local outlier factor, k=20": lambda: lof(20)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check-set", required=True, help="materials the model was not made for (non-oxides)")
    p.add_argument("--run", default=None, help="run folder (default: the shipped data/default)")
    args = p.parse_args()

    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    from cfgp.uncertainty.applicability import fit_applicability
    from cfgp.uncertainty.check_sets import check_set
    from cfgp.pipeline import Run, held_out_positions, load_gp, predict_rows, predictions
    from cfgp.uncertainty.sigma_calibration import P2, predictive_metrics

    run = Run(args.run) if args.run else Run()
    gp = load_gp(run)
    pred = predictions(run, gp)
    m, sp = run.materials, run.split
    X, y = run.latents(), m.y
    cs = check_set(run, args.check_set, progress=True)
    ok = np.isfinite(cs.X).all(axis=1)
    n_mean, n_sigma = predict_rows(gp, cs.X[ok])
    n_y = cs.y[ok]
    n_elements = [cs.elements[i] for i in np.flatnonzero(ok)]

    # ---------------------------------------------------------------- latent detectors
    tr, po, te = sp.train, sp.pool, sp.test
    held = np.isin(tr, held_out_positions(run))
    mu, sd = X[tr].mean(axis=0), X[tr].std(axis=0)
    S = lambda A: (A - mu) / sd  # noqa: E731
    Xf, Xv = S(X[tr][~held]), S(X[tr][held])
    z_test = np.abs(pred["mean"][te] - y[te]) / pred["std"][te]
    for name, make in detectors(Xf).items():
        t0 = time.perf_counter()
        f = make()
        fit_s = time.perf_counter() - t0
        sv, st, sp_, sn = f(Xv), f(S(X[te])), f(S(X[po])), f(S(cs.X[ok]))
        row = {"detector": name, "fit_s": round(fit_s, 3),
               "auroc_nonoxide_vs_test": roc_auc_score(np.r_[np.zeros(len(st)), np.ones(len(sn))], np.r_[st, sn]),
               "auroc_test_outside_2sigma": roc_auc_score(z_test > 2, st)}
        for q in (95, 97.5, 99):
            thr = np.percentile(sv, q)
            row[f"p{q:g}"] = {"test": float(np.mean(st > thr)), "pool": float(np.mean(sp_ > thr)),
                              "nonoxides_latent_only": float(np.mean(sn > thr))}
        print(json.dumps(row), flush=True)
    print(json.dumps({"detector": "GP σ itself (no threshold)",
                      "auroc_nonoxide_vs_test": roc_auc_score(np.r_[np.zeros(len(te)), np.ones(len(n_sigma))],
                                                              np.r_[pred["std"][te], n_sigma]),
                      "auroc_test_outside_2sigma": roc_auc_score(z_test > 2, pred["std"][te])}), flush=True)

    # ---------------------------------------------------------------- σ options
    app = fit_applicability(run, gp, pred)
    pool = po[np.isfinite(pred["mean"][po])]
    cp = app.check(X[pool], [m.frame["elements"].iat[i] for i in pool])
    ct = app.check(X[te], [m.frame["elements"].iat[i] for i in te])
    cn = app.check(cs.X[ok], n_elements)
    rp, sp_raw = pred["mean"][pool] - y[pool], pred["std"][pool]
    zp = np.abs(rp) / sp_raw
    ip, it = cp.in_domain, ct.in_domain
    newt = ct.flags["composition"] | ct.flags["unseen_elements"]
    newn = cn.flags["composition"] | cn.flags["unseen_elements"]
    st_raw = pred["std"][te]
    q_in, q_out = np.quantile(zp[ip], P2) / 2, np.quantile(zp[~ip], P2) / 2
    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(sp_raw[ip], rp[ip] ** 2)
    iso_sigma = lambda s: np.sqrt(np.maximum(iso.predict(s), 1e-8))  # noqa: E731
    c_iso = np.quantile(np.abs(rp[ip]) / iso_sigma(sp_raw[ip]), P2) / 2
    cal = app.sigma
    options = {
        "GP σ (raw)": (st_raw, n_sigma, None),
        "Gaussian, one scale (2σ quantile on pool)": (st_raw * np.quantile(zp, P2) / 2, n_sigma * np.quantile(zp, P2) / 2,
                                                      None),
        "Gaussian, scale in domain / flagged": (np.where(it, q_in, q_out) * st_raw, n_sigma * q_out, None),
        "isotonic σ → rms residual (× 2σ quantile) / flagged scale": (
            np.where(it, c_iso * iso_sigma(st_raw), q_out * st_raw), n_sigma * q_out, None),
        "Student-t, scale in domain / flagged": (np.where(it, cal.tau_in_, cal.tau_out_) * st_raw,
                                                n_sigma * cal.tau_out_, cal.df),
        "Student-t + floor for new chemistry (shipped)": (cal.scale(st_raw, it, newt),
                                                          cal.scale(n_sigma, cn.in_domain, newn), cal.df),
    }
    rt = pred["mean"][te] - y[te]
    for name, (scale_t, scale_n, df) in options.items():
        row = {"sigma_option": name, "df": df,
               "test_in_domain": predictive_metrics(pred["mean"][te][it], scale_t[it], y[te][it], df),
               "test_flagged": predictive_metrics(pred["mean"][te][~it], scale_t[~it], y[te][~it], df),
               "test_all": predictive_metrics(pred["mean"][te], scale_t, y[te], df),
               "nonoxides": predictive_metrics(n_mean, scale_n, n_y, df)}
        print(json.dumps(row), flush=True)
    df_t, _, tau_t = stats.t.fit(rt[it] / st_raw[it], floc=0)
    print(json.dumps({"note": "Student-t fitted on the test split itself, for reference only (not used)",
                      "df": df_t, "tau": tau_t, "pool_fit": {"df": cal.df, "tau_in": cal.tau_in_,
                                                             "tau_out": cal.tau_out_, "floor": cal.floor_}}))


if __name__ == "__main__":
    main()
