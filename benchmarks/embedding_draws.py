"""How many embedding draws σ_emb needs: its Monte Carlo spread across seeds, and the time per material; and what
sharing a forward pass between draws saves.

    python benchmarks/embedding_draws.py [--run data/default] [--draws 16 64] [--seeds 5]

On the run's pool oxides with an element no training material contains (pool only: the data σ may be chosen on; on
the default, 15 Ac, Pm and Xe oxides), σ_emb (:func:`cfgp.uncertainty.embedding_draws.embedding_spread`) is drawn
with each number of draws under ``--seeds`` seeds. Prints one JSON object: per number of draws the relative standard
deviation of σ_emb across seeds (mean and largest over the materials) and the seconds per material per seed; under
"passes", the shipped draws (several draws' copies per forward pass, :func:`draw_means`) against one forward pass per
draw (the element's own row set draw by draw), back to back in this process, for each material alone (what the
Predict tab does) and for all of them in one batch (what a domain model's fit does), with the largest difference of
the GP means they give.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cfgp.pipeline import Run, load_gp
from cfgp.uncertainty.applicability import load_applicability
from cfgp.uncertainty.domain_model import element_sets
from cfgp.uncertainty.embedding_draws import (DRAWS, EMBEDDING_LAYER, draw_means, embedding_spread, never_trained,
                                             trained_elements)


def one_pass_per_draw(feat, gp, graphs: list[dict], unseen: list[int], trained: np.ndarray, draws: int = DRAWS,
                      seed: int = 0) -> np.ndarray:
    """The reference: draw k sets each unseen element's own row (the same generator per (seed, k, Z)) and passes
    all graphs once."""
    layer = feat.model.model.get_layer(EMBEDDING_LAYER)
    w0 = layer.get_weights()[0]
    means = np.empty((draws, len(graphs)))
    for k in range(draws):
        w = w0.copy()
        for z in unseen:
            w[z] = w0[np.random.default_rng([seed, k, z]).choice(trained)]
        layer.set_weights([w])
        try:
            means[k] = gp.predict(feat.transform_graphs(graphs))
        finally:
            layer.set_weights([w0])
    return means


def passes(feat, gp, graphs: list[dict], elements: list, counts: dict, trained: np.ndarray) -> dict:
    """Seconds of :func:`draw_means` against :func:`one_pass_per_draw`, alone and batched, and their difference."""
    def unseen_of(gs_elements):
        return never_trained(element_sets(gs_elements), counts)

    def timed(fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - t0, out

    out, diff = {}, 0.0
    cases = {"alone": [([g], [e]) for g, e in zip(graphs, elements)], "batch": [(graphs, elements)]}
    draw_means(feat, gp, graphs[:1], unseen_of(elements[:1]), trained, 4)  # TensorFlow's tracing, not timed
    one_pass_per_draw(feat, gp, graphs[:1], unseen_of(elements[:1]), trained, 4)
    for name, groups in cases.items():
        shared = ref = 0.0
        for gs, es in groups:
            u = unseen_of(es)
            t1, m1 = timed(draw_means, feat, gp, gs, u, trained)
            t2, m2 = timed(one_pass_per_draw, feat, gp, gs, u, trained)
            shared, ref, diff = shared + t1, ref + t2, max(diff, float(np.abs(m1 - m2).max()))
        out[name] = {"seconds_per_material_shared": round(shared / len(graphs), 4),
                     "seconds_per_material_one_pass_per_draw": round(ref / len(graphs), 4),
                     "speed_up": round(ref / shared, 2)}
    out["max_abs_mean_difference_eV_per_atom"] = diff
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="data/default")
    ap.add_argument("--draws", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--seeds", type=int, default=5)
    a = ap.parse_args()
    run = Run(a.run)
    gp = load_gp(run)
    app = load_applicability(run, gp, cache=False)
    m = run.materials
    pool = set(m.ids[run.split.pool].tolist())
    rows = m.index_of(sorted(i for i in app.spread_ids if i in pool))
    if not len(rows):
        raise SystemExit(f"{run.dir}: no pool oxide with a never-trained element")
    feat = run.featurizer()
    graphs = feat.to_graphs(m.structures(rows), progress=False)[0]
    elements = [m.frame["elements"].iloc[i] for i in rows]
    counts = app.domain.element_counts_
    unseen = never_trained(element_sets(elements), counts)
    trained = trained_elements(counts, app.domain.rare_count)
    out: dict = {"run": str(run.dir), "n_materials": int(len(rows)), "seeds": a.seeds, "draws": {}}
    for draws in a.draws:
        t0 = time.perf_counter()
        s = np.array([embedding_spread(feat, gp, graphs, unseen, trained, draws, seed) for seed in range(a.seeds)])
        rel = s.std(axis=0) / s.mean(axis=0)
        out["draws"][str(draws)] = {"rel_sd_mean": round(float(rel.mean()), 4), "rel_sd_max": round(float(rel.max()), 4),
                                    "seconds_per_material": round((time.perf_counter() - t0) / a.seeds / len(rows), 4)}
    out["passes"] = passes(feat, gp, graphs, elements, counts, trained)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
