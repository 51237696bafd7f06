"""A σ from not knowing an element, on networks that never trained a family: how σ_emb follows the error, and
which σ for new chemistry it makes.

A network trained without a family never updated the embedding rows of the family's elements: they keep their
random initial values, and the material's latent (and so the GP's mean) rests on them. σ_emb, the spread of the GP's
mean when those rows are drawn from the rows of the elements the network did train
(``cfgp.uncertainty.embedding_draws``, as shipped), is what the shipped σ adds for an oxide with a never-trained
element. The candidate σ for new chemistry is the Student-t (the run's ν) of scale

    sqrt((τ_out·σ_GP)² + (κ·σ_emb)²)

with κ = 1 (nothing fitted: ``emb``, the shipped σ) or κ fitted by maximum likelihood on the *other* families' pool
members (``emb/ml``). Each family's pool members are the selection data; its test members are read for the report.
Printed as one JSON object: per family the MAE, the correlation of |error| with σ_emb, and per candidate the ±2σ
coverage and mean NLL of pool and test members, beside the s₀ floor rule (``floor``: max(τ_out·σ_GP, s₀)), and the
values of κ that would put the family's pool members inside the coverage goal.

    CFGP_HOME=/tmp/cfgp-fr .venv/bin/python experiments/family-networks/embedding_sigma.py \
        experiments/family-networks/lanthanides experiments/family-networks/s_oxides [...] [--shipped data/default]

The GP, domain model, σ calibration and σ_emb are :func:`cfgp.uncertainty.family_holdout.hold_out_family`'s with
``draws=True``, as ``cfgp family-report`` scores them (σ_emb is read from the user cache that command leaves, or
drawn). With ``--shipped RUN`` also the run's own pool and test oxides that contain an element its network never
trained (the shipped default: Ac, Pm and Xe oxides in the pool, HeSiO2 in test), with the σ_emb its domain.json
holds, scored with the floor rule and with the shipped σ. Read-only apart from the user cache. Not shipped: an
analysis of the family networks."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from cfgp.family_retrain import converged_family
from cfgp.pipeline import Run, load_gp
from cfgp.uncertainty.applicability import load_applicability, needs_draws, run_checks
from cfgp.uncertainty.family_holdout import GOAL_COVERAGE, HELD_OUT_FAMILIES, hold_out_family, within_goal
from cfgp.uncertainty.sigma_calibration import predictive_metrics, two_sigma_half_width


def family_arrays(folder: Path) -> dict:
    """The family's members (pool, then test) with the arrays of :func:`hold_out_family` and σ_emb."""
    key, run = converged_family(folder)
    fit, parts = hold_out_family(run, HELD_OUT_FAMILIES[key][1], draws=True)
    out = {"family": key, "df": fit["df"], "tau_out": fit["tau_out"],
           "n": {p: len(parts[p]["y"]) for p in ("selection", "test")}}
    for name in ("mean", "y", "sigma_raw", "scale", "new_chemistry", "spread"):
        out[name] = np.concatenate([parts["selection"][name], parts["test"][name]])
    out["sigma_emb"] = np.nan_to_num(out["spread"], nan=0.0)
    return out


def shipped_case(folder: Path) -> dict:
    """The run's own pool and test oxides with an element its network never trained (the shipped default: Ac, Pm,
    Xe in the pool, He in test): the s₀ floor rule against the shipped σ with the σ_emb of its domain.json."""
    run = Run(folder)
    m, sp = run.materials, run.split
    gp = load_gp(run)
    app = load_applicability(run, gp=gp, cache=False)
    X = run.latents()
    check = run_checks(run, app)
    test = set(sp.test.tolist())
    need = needs_draws(check)
    rows = np.array([i for i in np.concatenate([sp.pool, sp.test]) if need[i]])
    mean, sigma_raw = gp.predict(X[rows], return_std=True)
    cal, y, sub = app.sigma, m.y[rows], check.take(rows)
    floor = app.calibrated(sigma_raw, sub)[1]
    emb = app.calibrated(sigma_raw, sub, app.material_spread(m.ids[rows]))[1]
    in_test = np.array([i in test for i in rows])
    out = {"materials": [{"id": str(m.ids[i]), "formula": str(m.frame["formula"].iloc[i]),
                          "split": "test" if t else "pool", "abs_error": round(float(abs(a - b)), 3),
                          "sigma_floor": round(float(s1 * cal.two_sigma_factor), 3),
                          "sigma_shipped": round(float(s2 * cal.two_sigma_factor), 3)}
                         for i, t, a, b, s1, s2 in zip(rows, in_test, mean, y, floor, emb)]}
    for name, scale in (("floor", floor), ("emb", emb)):
        for part, sel in (("pool", ~in_test), ("test", in_test)):
            if sel.any():
                mt = predictive_metrics(mean[sel], scale[sel], y[sel], cal.df)
                out[f"{name} {part}"] = {"n": int(sel.sum()), "coverage_2sigma": round(mt["coverage_2sigma"], 3),
                                         "nll": round(mt["nll"], 3)}
    return out


def scale_of(f: dict, kappa: float) -> np.ndarray:
    s = np.sqrt((f["tau_out"] * f["sigma_raw"]) ** 2 + (kappa * f["sigma_emb"]) ** 2)
    return np.where(f["new_chemistry"], s, f["scale"])


def _sel(f: dict) -> slice:
    return slice(0, f["n"]["selection"])


def fit_kappa(fams: list[dict]) -> float:
    def nll(log_k: float) -> float:
        tot, n = 0.0, 0
        for f in fams:
            s, r = scale_of(f, math.exp(log_k))[_sel(f)], (f["mean"] - f["y"])[_sel(f)]
            tot += float(np.sum(-(stats.t.logpdf(r / s, f["df"]) - np.log(s))))
            n += len(r)
        return tot / n

    return float(math.exp(optimize.minimize_scalar(nll, bounds=(-6, 4), method="bounded").x))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--shipped", type=Path, default=None,
                    help="also the run's own oxides with elements its network never trained (e.g. data/default)")
    a = ap.parse_args()
    fams = [family_arrays(p) for p in a.folders]
    out: dict = {"draws": "as shipped (cfgp.uncertainty.embedding_draws)", "goal": list(GOAL_COVERAGE), "families": {}}
    for f in fams:
        others = [g for g in fams if g is not f]
        kappa = fit_kappa(others) if others else None
        sig_emb = f["sigma_emb"]
        err = np.abs(f["mean"] - f["y"])
        row = {"n_pool": f["n"]["selection"], "n_test": f["n"]["test"], "kappa_crossfit": kappa,
               "mean_sigma_emb_pool": round(float(sig_emb[_sel(f)].mean()), 3),
               "corr_abs_error_sigma_emb_pool": round(float(np.corrcoef(err[_sel(f)], sig_emb[_sel(f)])[0, 1]), 3),
               "mae_pool": round(float(err[_sel(f)].mean()), 3)}
        for cand, scale in (("floor", f["scale"]), ("emb", scale_of(f, 1.0)),
                            ("emb/ml", None if kappa is None else scale_of(f, kappa))):
            if scale is None:
                continue
            for part, sl in (("pool", _sel(f)), ("test", slice(f["n"]["selection"], None))):
                mt = predictive_metrics(f["mean"][sl], scale[sl], f["y"][sl], f["df"])
                row[f"{cand} {part}"] = {"coverage_2sigma": round(mt["coverage_2sigma"], 3),
                                         "nll": round(mt["nll"], 3)}
        # the values of κ that would put this family's pool members inside the goal (each member covered from
        # the κ at which |error| = half-width × scale; members that are not new chemistry keep their own scale)
        q = two_sigma_half_width(f["df"])
        sl, new = _sel(f), f["new_chemistry"][_sel(f)]
        gp_part, e, s_emb = (f["tau_out"] * f["sigma_raw"])[sl], err[sl], sig_emb[sl]
        need = np.sqrt(np.maximum((e / q) ** 2 - gp_part**2, 0.0)) / np.maximum(s_emb, 1e-12)
        row["kappa_within_goal_pool"] = within_goal(np.where(new, need, np.where(e <= q * f["scale"][sl], 0.0,
                                                                                  np.inf)))
        out["families"][f["family"]] = row
    if a.shipped is not None:
        out["shipped_network"] = shipped_case(a.shipped)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
