"""How many embedding draws σ_emb needs: its Monte Carlo spread across seeds, and the time per material.

    python benchmarks/embedding_draws.py [--run data/default] [--draws 16 64] [--seeds 5]

On the run's pool oxides with an element no training material contains (pool only: the data σ may be chosen on; on
the default, 15 Ac, Pm and Xe oxides), σ_emb (:func:`cfgp.uncertainty.embedding_draws.embedding_spread`) is drawn
with each number of draws under ``--seeds`` seeds. Prints one JSON object: per number of draws the relative standard
deviation of σ_emb across seeds (mean and largest over the materials) and the seconds per material per seed.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cfgp.pipeline import Run, load_gp
from cfgp.uncertainty.applicability import load_applicability
from cfgp.uncertainty.embedding_draws import embedding_spread, never_trained, trained_elements


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
    unseen = never_trained((e.split() if isinstance(e, str) else e for e in elements), counts)
    trained = trained_elements(counts, app.domain.rare_count)
    out: dict = {"run": str(run.dir), "n_materials": int(len(rows)), "seeds": a.seeds, "draws": {}}
    for draws in a.draws:
        t0 = time.perf_counter()
        s = np.array([embedding_spread(feat, gp, graphs, unseen, trained, draws, seed) for seed in range(a.seeds)])
        rel = s.std(axis=0) / s.mean(axis=0)
        out["draws"][str(draws)] = {"rel_sd_mean": round(float(rel.mean()), 4), "rel_sd_max": round(float(rel.max()), 4),
                                    "seconds_per_material": round((time.perf_counter() - t0) / a.seeds / len(rows), 4)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
