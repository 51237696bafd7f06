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
  when its group has none).

σ for the family's members: the Student-t (the fit's ν) of scale sqrt((τ_out·σ_GP)² + σ_emb²), as shipped. The GP,
domain model and σ calibration are :func:`cfgp.uncertainty.family_holdout.hold_out_family`'s (the run's train and
pool without the family). Each family's pool members are the selection data; its test members are read for the
report. The shipped candidates with the untrained row's mean (``shipped``) are in docs/measurements/
embedding_sigma.json. Prints one JSON object.

    .venv/bin/python experiments/family-networks/neighbour_rows.py experiments/family-networks/lanthanides [...] \
        [--variants nearest group all]

Read-only. Not shipped: an analysis of the family networks."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from pymatgen.core import Element

from cfgp.family_retrain import converged_family
from cfgp.uncertainty.domain_model import DomainSettings
from cfgp.uncertainty.embedding_draws import DRAWS, draw_means, never_trained, trained_elements, training_counts
from cfgp.uncertainty.family_holdout import (GOAL_COVERAGE, HELD_OUT_FAMILIES, family_gp, family_rows,
                                              hold_out_family)
from cfgp.uncertainty.sigma_calibration import predictive_metrics

SEED = 0


def table_distance(a: int, b: int) -> int:
    ea, eb = Element.from_Z(a), Element.from_Z(b)
    return abs(ea.row - eb.row) + abs(ea.group - eb.group)


def candidates(unseen: list[int], trained: np.ndarray, variant: str) -> dict[int, np.ndarray]:
    out = {}
    for z in unseen:
        d = np.array([table_distance(z, int(t)) for t in trained])
        if variant == "all":
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--variants", nargs="+", default=["nearest", "group", "all"])
    a = ap.parse_args()
    out = {"draws": DRAWS, "seed": SEED, "goal": list(GOAL_COVERAGE), "families": {}}
    for folder in a.folders:
        case = family_case(folder, a.variants)
        out["families"][case["family"]] = case
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
