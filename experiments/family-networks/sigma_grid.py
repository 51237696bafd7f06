"""Can one σ of the shape sqrt((a·σ_GP)² + (κ·σ_emb)²) put every family network's pool members inside the coverage
goal (2σ coverage 0.90–0.98)? A grid over a and κ, scored on the families' pool members only (selection data).

    CFGP_HOME=/tmp/cfgp-fr .venv/bin/python experiments/family-networks/sigma_grid.py

(run after `cfgp family-report` over the same folders with the same CFGP_HOME: σ_emb is read from its cache). Prints
one line per (a, κ): the four families' pool coverage (lanthanides, S oxides, halogens, actinides), their mean pool
NLL, and "ALL IN GOAL" where every coverage is inside the goal. The shipped σ is a = τ_out (1.97), κ = 1."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cfgp.uncertainty.family_holdout import GOAL_COVERAGE
from cfgp.uncertainty.sigma_calibration import predictive_metrics
from embedding_sigma import family_arrays  # the sibling analysis (run from this folder's parent: see above)

FAMILIES = ("lanthanides", "s_oxides", "halogen_oxides", "actinides")


def main() -> None:
    here = Path(__file__).parent
    fams = [family_arrays(here / k) for k in FAMILIES]
    for a in (0.0, 0.5, 0.82, 1.0, 1.5, 1.97):
        for k in (0.25, 0.5, 0.75, 1.0, 1.25):
            cov, nll = [], []
            for f in fams:
                n = f["n"]["selection"]
                s = np.where(f["new_chemistry"], np.hypot(a * f["sigma_raw"], k * f["sigma_emb"]), f["scale"])[:n]
                m = predictive_metrics(f["mean"][:n], s, f["y"][:n], f["df"])
                cov.append(round(m["coverage_2sigma"], 3))
                nll.append(m["nll"])
            inside = all(GOAL_COVERAGE[0] <= c <= GOAL_COVERAGE[1] for c in cov)
            print(f"a={a} k={k} coverage {cov} mean NLL {np.mean(nll):.3f}{'  ALL IN GOAL' if inside else ''}")


if __name__ == "__main__":
    main()
