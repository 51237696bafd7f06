"""Drawing a never-trained element's embedding row from its periodic-table neighbours instead of from every trained
element: does the GP's mean come closer, and σ_emb narrower yet still covering, on networks that never trained a
family?

The shipped σ_emb (``cfgp.uncertainty.embedding_draws``) draws an unseen element's row from the rows of *all* the
elements its network trained, and keeps the GP's mean where the untrained (random) row puts it. Chemistry says more:
an element resembles its neighbours in the periodic table. Here each unseen element's row is drawn only from the
trained elements nearest to it, by the distance |Δrow| + |Δgroup| (pymatgen's rows and groups: the f-block sits in
group 3), and the prediction is the mean over the draws. Variants:

- ``all``: rows from every trained element (the shipped candidates), prediction the mean over draws;
- ``nearest``: the trained elements at the smallest distance from the unseen one;
- ``group``: the trained elements of the unseen element's own group at the nearest row (the nearest, as above,
  when its group has none);
- ``f_nearest``: the rule the four family networks suggest, shipped since
  (:func:`cfgp.uncertainty.embedding_draws.draw_candidates`) — ``nearest`` for a lanthanoid or actinoid (La–Lu,
  Ac–Lr), every trained element for any other unseen element; a material is predicted by the mean over its draws
  when one of its unseen elements is a lanthanoid or actinoid, by the GP's mean on the untrained row (as shipped)
  otherwise.

σ for the family's members: the Student-t (the fit's ν) of scale sqrt((τ_out·σ_GP)² + σ_emb²), as shipped. The GP,
domain model and σ calibration are :func:`cfgp.uncertainty.family_holdout.hold_out_family`'s (the run's train and
pool without the family). Each family's pool members are the selection data; its test members are read for the
report. The shipped candidates with the untrained row's mean (``shipped``) are in docs/measurements/
embedding_sigma.json. Prints one JSON object.

With ``--shipped RUN`` the same variants are scored on a check that did not suggest them: the run's own pool and
test oxides with an element its network never trained (the shipped default: Ac, Pm and Xe oxides in the pool,
HeSiO2 in test), with the run's GP and σ calibration as shipped, and ``shipped`` (the mean and σ_emb the run's
domain.json holds) beside them.

    .venv/bin/python experiments/family-networks/neighbour_rows.py experiments/family-networks/lanthanides [...] \
        [--variants nearest group all f_nearest] [--shipped data/default]

Read-only. Not shipped: an analysis of the family networks."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from pymatgen.core import Element

from cfgp.family_retrain import converged_family
from cfgp.pipeline import Run, load_gp
from cfgp.uncertainty.applicability import load_applicability, needs_draws, run_checks
from cfgp.uncertainty.domain_model import DomainSettings
from cfgp.uncertainty.embedding_draws import (DRAWS, draw_candidates, draw_means, never_trained, predicted_by_draws,
                                             table_distance, trained_elements, training_counts)
from cfgp.uncertainty.family_holdout import (GOAL_COVERAGE, HELD_OUT_FAMILIES, family_gp, family_rows,
                                              hold_out_family)
from cfgp.uncertainty.sigma_calibration import predictive_metrics

SEED = 0


def candidates(unseen: list[int], trained: np.ndarray, variant: str) -> dict[int, np.ndarray]:
    out = {}
    for z in unseen:
        d = np.array([table_distance(z, int(t)) for t in trained])
        if variant == "f_nearest":  # the shipped rule
            out[z] = draw_candidates([z], trained)[z]
        elif variant == "all":
            out[z] = trained
        elif variant == "nearest":
            out[z] = trained[d == d.min()]
        elif variant == "group":  # the element's own group, nearest row first; none trained there: nearest
            same = np.array([Element.from_Z(int(t)).group == Element.from_Z(z).group for t in trained])
            rows = np.array([abs(Element.from_Z(int(t)).row - Element.from_Z(z).row) for t in trained])
            out[z] = trained[same & (rows == rows[same].min())] if same.any() else trained[d == d.min()]
        else:
            raise ValueError(variant)
    return out


def family_case(folder: Path, variants: list[str]) -> dict:
    key, run = converged_family(folder)
    m = run.materials
    elements = list(m.frame["elements"])
    train = family_rows(run, HELD_OUT_FAMILIES[key][1])["train"]
    gp = family_gp(run, train)
    fit, parts = hold_out_family(run, HELD_OUT_FAMILIES[key][1], gp=gp)  # τ_out, ν and each part's arrays
    rows = {part: parts[part]["rows"] for part in ("selection", "test")}
    counts = training_counts(elements[i] for i in train)
    trained = trained_elements(counts, DomainSettings().rare_count)
    feat = run.featurizer()
    out: dict = {"family": key, "n_train": int(len(train)), "tau_out": fit["tau_out"], "df": fit["df"]}
    all_rows = np.concatenate([rows["selection"], rows["test"]])
    graphs, kept, issues = feat.to_graphs(m.structures(all_rows), progress=False)
    if len(kept) != len(all_rows):
        raise SystemExit(f"{key}: {len(all_rows) - len(kept)} members have no graph ({issues[:3]})")
    unseen = never_trained([elements[i] for i in all_rows], counts)
    out["unseen"] = [Element.from_Z(z).symbol for z in unseen]
    n_sel = len(rows["selection"])
    for variant in variants:
        cand = candidates(unseen, trained, variant)
        t0 = time.perf_counter()
        draws = draw_means(feat, gp, graphs, unseen, cand, DRAWS, SEED)
        secs = time.perf_counter() - t0
        mean, spread = draws.mean(axis=0), draws.std(axis=0)
        if variant == "f_nearest":  # the untrained row's mean unless the material holds an unseen f-block element
            mean = np.where(predicted_by_draws(graphs, unseen), mean, np.concatenate([parts["selection"]["mean"],
                                                                              parts["test"]["mean"]]))
        entry = {"candidates": {Element.from_Z(z).symbol: [Element.from_Z(int(t)).symbol for t in c]
                                for z, c in cand.items()} if variant != "all" else "every trained element",
                 "seconds": round(secs, 1)}
        for part, sl in (("pool", slice(0, n_sel)), ("test", slice(n_sel, None))):
            p = parts["selection" if part == "pool" else "test"]
            new = p["new_chemistry"]
            scale = np.where(new, np.sqrt((fit["tau_out"] * p["sigma_raw"]) ** 2 + spread[sl] ** 2), p["scale"])
            mt = predictive_metrics(mean[sl], scale, p["y"], fit["df"])
            mt_untrained = predictive_metrics(p["mean"], scale, p["y"], fit["df"])
            entry[part] = {"n": int(len(p["y"])), "mae": round(mt["mae"], 3),
                           "coverage_2sigma": round(mt["coverage_2sigma"], 3), "nll": round(mt["nll"], 3),
                           "mean_sigma_emb": round(float(spread[sl].mean()), 3),
                           "corr_abs_error_sigma_emb": round(float(np.corrcoef(np.abs(mean[sl] - p["y"]),
                                                                               spread[sl])[0, 1]), 3),
                           "untrained_row_mean": {"mae": round(mt_untrained["mae"], 3),
                                                  "coverage_2sigma": round(mt_untrained["coverage_2sigma"], 3),
                                                  "nll": round(mt_untrained["nll"], 3)}}
        out[variant] = entry
        print(json.dumps({key: {variant: entry}}), flush=True)
    return out


def shipped_case(folder: Path, variants: list[str]) -> dict:
    """The variants on the run's own oxides with an element its network never trained, pool and test, with the
    run's GP, domain model and σ calibration; ``shipped``: the mean and σ_emb its domain.json holds."""
    run = Run(folder)
    m, sp, X = run.materials, run.split, run.latents()
    elements = list(m.frame["elements"])
    gp = load_gp(run)
    app = load_applicability(run, gp=gp, cache=False)
    check = run_checks(run, app)
    need = needs_draws(check)
    test = set(sp.test.tolist())
    rows = np.array([i for i in np.concatenate([sp.pool, sp.test]) if need[i]])
    in_test = np.array([i in test for i in rows])
    sub, y = check.take(rows), m.y[rows]
    mean0, sigma_raw = gp.predict(X[rows], return_std=True)
    counts = app.domain.element_counts_
    trained = trained_elements(counts, app.domain.settings.rare_count)
    unseen = never_trained([elements[i] for i in rows], counts)
    feat = run.featurizer()
    graphs, kept, issues = feat.to_graphs(m.structures(rows), progress=False)
    if len(kept) != len(rows):
        raise SystemExit(f"{len(rows) - len(kept)} materials have no graph ({issues[:3]})")
    out: dict = {"run": str(folder), "unseen": [Element.from_Z(z).symbol for z in unseen],
                 "materials": [{"id": str(m.ids[i]), "formula": str(m.frame["formula"].iloc[i]),
                                "split": "test" if t else "pool", "dft": round(float(m.y[i]), 3)}
                               for i, t in zip(rows, in_test)]}

    def score(name: str, mean: np.ndarray, spread: np.ndarray, extra: dict) -> None:
        scale = app.calibrated(sigma_raw, sub, spread)[1]
        entry = dict(extra)
        for part, sel in (("pool", ~in_test), ("test", in_test)):
            if sel.any():
                mt = predictive_metrics(mean[sel], scale[sel], y[sel], app.sigma.df)
                entry[part] = {"n": int(sel.sum()), "mae": round(mt["mae"], 3),
                               "coverage_2sigma": round(mt["coverage_2sigma"], 3), "nll": round(mt["nll"], 3)}
        entry["per_material"] = [{"abs_error": round(float(abs(a - b)), 3),
                                  "sigma": round(float(s * app.sigma.two_sigma_factor), 3)}
                                 for a, b, s in zip(mean, y, scale)]
        out[name] = entry
        print(json.dumps({"shipped_network": {name: {k: v for k, v in entry.items() if k != "per_material"}}}),
              flush=True)

    score("shipped", app.material_mean(m.ids[rows], mean0), app.material_spread(m.ids[rows]),
          {"candidates": "as the run's domain.json holds them"})
    for variant in variants:
        cand = candidates(unseen, trained, variant)
        t0 = time.perf_counter()
        draws = draw_means(feat, gp, graphs, unseen, cand, DRAWS, SEED)
        mean, spread = draws.mean(axis=0), draws.std(axis=0)
        if variant == "f_nearest":
            mean = np.where(predicted_by_draws(graphs, unseen), mean, mean0)
        score(variant, mean, spread, {"candidates": {Element.from_Z(z).symbol: [Element.from_Z(int(t)).symbol
                                                                                 for t in c]
                                                     for z, c in cand.items()} if variant != "all"
                                      else "every trained element", "seconds": round(time.perf_counter() - t0, 1)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="*", type=Path)
    ap.add_argument("--variants", nargs="+", default=["nearest", "group", "all", "f_nearest"])
    ap.add_argument("--shipped", type=Path, default=None, help="also score the variants on this run's own oxides "
                    "with a never-trained element")
    a = ap.parse_args()
    out = {"draws": DRAWS, "seed": SEED, "goal": list(GOAL_COVERAGE), "families": {}}
    for folder in a.folders:
        case = family_case(folder, a.variants)
        out["families"][case["family"]] = case
    if a.shipped is not None:
        out["shipped_network"] = shipped_case(a.shipped, a.variants)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
