"""A σ from not knowing an element: resample the never-trained elements' embeddings and watch the prediction move.

A network trained without a family never updated the embedding rows of the family's elements: they keep their
random initial values, and the material's latent (and so the GP's mean) rests on them. What the model does not know
is which element this is. So, for each family member, draw ``--samples`` times an embedding for each never-trained
element from the rows of the elements the network did train (those in ≥ ``--min-count`` training materials),
recompute the latent and the GP's mean, and take the spread of those means, σ_emb. The candidate σ for new
chemistry is the Student-t (the run's ν) of scale

    sqrt((τ_out·σ_GP)² + (κ·σ_emb)²)

with κ = 1 (nothing fitted: ``emb``) or κ fitted by maximum likelihood on the *other* families' pool members
(``emb/ml``). Each family's pool members are the selection data; its test members are read for the report.
Printed as one JSON object: per family the MAE (the shipped mean and the mean over the draws), the correlation of
|error| with σ_emb, and per candidate the ±2σ coverage and mean NLL of pool and test members, beside the shipped
rule (``floor``: max(τ_out·σ_GP, s₀)).

    .venv/bin/python experiments/family-networks/embedding_sigma.py experiments/family-networks/lanthanides \
        experiments/family-networks/s_oxides [...] [--samples 16] [--cache /tmp/embedding-sigma] \
        [--shipped data/default]

With ``--shipped RUN`` also the run's own pool and test oxides that contain an element its network never trained
(the shipped default: Ac, Pm and Xe oxides in the pool, HeSiO2 in test), scored with the shipped σ and with
sqrt((τ_out·σ_GP)² + σ_emb²).

The GP, domain model and σ calibration are those of :func:`cfgp.uncertainty.family_holdout.hold_out_family` (the
GP is fitted again here, with the same settings, and its means are checked against those). Read-only apart from
the cache (one ``.npz`` per family and setting). Not shipped: an analysis of the family networks."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from cfgp.artefacts import read_json
from cfgp.gp import CFGP
from cfgp.pipeline import Run, load_gp
from cfgp.uncertainty.applicability import load_applicability, run_checks
from cfgp.uncertainty.embedding_draws import (DRAWS, draw_means, draw_settings, never_trained, trained_elements,
                                              training_counts)
from cfgp.uncertainty.family_holdout import (GOAL_COVERAGE, HELD_OUT_FAMILIES, hold_out_family, members,
                                             within_goal)
from cfgp.uncertainty.sigma_calibration import predictive_metrics, two_sigma_half_width


def run_draws(run: Run, gp, train: np.ndarray, rows: np.ndarray, samples: int, min_count: int, seed: int,
              check_mean: np.ndarray | None = None) -> np.ndarray:
    """(samples, len(rows)) GP means of the run's materials ``rows`` with the elements no ``train`` material contains
    drawn from those in ≥ ``min_count`` of them; with ``check_mean``, first checks the network's latents give it."""
    elements = list(run.materials.frame["elements"])
    counts = training_counts(elements[i] for i in train)
    trained = trained_elements(counts, min_count - 1)
    unseen = never_trained((elements[i] for i in rows), counts)
    feat = run.featurizer()
    graphs, kept, _ = feat.to_graphs(run.materials.structures(rows), progress=False)
    if len(kept) != len(rows):
        raise SystemExit(f"{run.dir}: {len(rows) - len(kept)} materials have no crystal graph")
    if check_mean is not None and not np.allclose(gp.predict(feat.transform_graphs(graphs)), check_mean, atol=1e-4):
        raise SystemExit(f"{run.dir}: the network's latents are not the run's")
    return draw_means(feat, gp, graphs, unseen, trained, samples, seed)


def draws(folder: Path, samples: int, min_count: int, seed: int, cache: Path) -> dict:
    """The family's members (pool, then test) with the shipped arrays and the GP means under ``samples`` draws of
    the never-trained elements' embeddings."""
    res = read_json(folder / "family.json")
    if not res.get("converged"):
        raise SystemExit(f"{folder}: not converged by its rule; no figure from it")
    key = res["family"]
    path = cache / f"{key}-k{samples}-min{min_count}-s{seed}-{draw_settings()['scheme']}.npz"
    fit, parts = hold_out_family(Run(folder), HELD_OUT_FAMILIES[key][1])
    out = {"family": key, "df": fit["df"], "tau_out": fit["tau_out"],
           "n": {p: len(parts[p]["y"]) for p in ("selection", "test")}}
    for name in ("mean", "y", "sigma_raw", "scale", "new_chemistry"):
        out[name] = np.concatenate([parts["selection"][name], parts["test"][name]])
    if path.exists():
        out["means"] = np.load(path)["means"]
        return out
    run = Run(folder)
    m, sp = run.materials, run.split
    X, y = run.latents(), m.y
    elements = list(m.frame["elements"])
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    fam = members(elements, HELD_OUT_FAMILIES[key][1])
    train = sp.train[ok[sp.train] & ~fam[sp.train]]
    rows = np.concatenate([sp.pool[ok[sp.pool] & fam[sp.pool]], sp.test[ok[sp.test] & fam[sp.test]]])
    gp = CFGP(seed=run.settings["split"]["seed"], method="exact").fit(X[train], y[train])
    if not np.allclose(gp.predict(X[rows]), out["mean"], atol=1e-6):
        raise SystemExit(f"{folder}: the GP fitted here is not hold_out_family's")
    means = run_draws(run, gp, train, rows, samples, min_count, seed, check_mean=out["mean"])
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, means=means)
    out["means"] = means
    return out


def shipped_case(folder: Path, samples: int, min_count: int, seed: int) -> dict:
    """The run's own pool and test oxides with an element its network never trained (the shipped default: Ac, Pm,
    Xe in the pool, He in test): the shipped σ (the s₀ floor) against sqrt((τ_out·σ_GP)² + σ_emb²)."""
    run = Run(folder)
    m, sp = run.materials, run.split
    gp = load_gp(run)
    app = load_applicability(run, gp=gp, cache=False)
    X = run.latents()
    check = run_checks(run, app)
    test = set(sp.test.tolist())
    rows = np.array([i for i in np.concatenate([sp.pool, sp.test])
                     if check.flags["unseen_elements"][i] and np.isfinite(X[i]).all()])
    mean, sigma_raw = gp.predict(X[rows], return_std=True)
    sig_emb = run_draws(run, gp, sp.train, rows, samples, min_count, seed).std(axis=0)
    cal, y = app.sigma, m.y[rows]
    shipped = app.calibrated(sigma_raw, check.take(rows))[0] / cal.two_sigma_factor
    emb = np.sqrt((cal.tau_out_ * sigma_raw) ** 2 + sig_emb**2)
    in_test = np.array([i in test for i in rows])
    out = {"materials": [{"id": str(m.ids[i]), "formula": str(m.frame["formula"].iloc[i]),
                          "split": "test" if t else "pool", "abs_error": round(float(abs(a - b)), 3),
                          "sigma_shipped": round(float(s1 * cal.two_sigma_factor), 3),
                          "sigma_emb_rule": round(float(s2 * cal.two_sigma_factor), 3)}
                         for i, t, a, b, s1, s2 in zip(rows, in_test, mean, y, shipped, emb)]}
    for name, scale in (("floor", shipped), ("emb", emb)):
        for part, sel in (("pool", ~in_test), ("test", in_test)):
            if sel.any():
                mt = predictive_metrics(mean[sel], scale[sel], y[sel], cal.df)
                out[f"{name} {part}"] = {"n": int(sel.sum()), "coverage_2sigma": round(mt["coverage_2sigma"], 3),
                                         "nll": round(mt["nll"], 3)}
    return out


def scale_of(f: dict, kappa: float) -> np.ndarray:
    s = np.sqrt((f["tau_out"] * f["sigma_raw"]) ** 2 + (kappa * f["means"].std(axis=0)) ** 2)
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
    ap.add_argument("--samples", type=int, default=DRAWS)
    ap.add_argument("--min-count", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/embedding-sigma"))
    ap.add_argument("--shipped", type=Path, default=None,
                    help="also the run's own oxides with elements its network never trained (e.g. data/default)")
    a = ap.parse_args()
    fams = [draws(p, a.samples, a.min_count, a.seed, a.cache) for p in a.folders]
    out: dict = {"samples": a.samples, "min_count": a.min_count, "seed": a.seed, "goal": list(GOAL_COVERAGE),
                 "families": {}}
    for f in fams:
        others = [g for g in fams if g is not f]
        kappa = fit_kappa(others) if others else None
        sig_emb = f["means"].std(axis=0)
        err = np.abs(f["mean"] - f["y"])
        row = {"n_pool": f["n"]["selection"], "n_test": f["n"]["test"], "kappa_crossfit": kappa,
               "mean_sigma_emb_pool": round(float(sig_emb[_sel(f)].mean()), 3),
               "corr_abs_error_sigma_emb_pool": round(float(np.corrcoef(err[_sel(f)], sig_emb[_sel(f)])[0, 1]), 3),
               "mae_pool": round(float(err[_sel(f)].mean()), 3),
               "mae_pool_draw_mean": round(float(np.abs(f["means"].mean(axis=0) - f["y"])[_sel(f)].mean()), 3)}
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
        out["shipped_network"] = shipped_case(a.shipped, a.samples, a.min_count, a.seed)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
