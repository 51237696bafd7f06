"""Would a σ that grows with the share of atoms of never-trained elements serve new chemistry better than one floor?

For each converged family network (a folder of ``cfgp family-network``), the family's members are scored as new
chemistry (:func:`cfgp.uncertainty.family_holdout.hold_out_family`) and each member's atomic fraction f of the
family's elements is read from its formula. The candidate σ for new chemistry is a Student-t of scale c·f (the run's
ν). Printed per family, as JSON: the mean fraction, the MAE, the correlation of |error| with f, the interval of c
that gives the family's pool members a ±2σ coverage within the goal (0.90–0.98), and the coverage of its pool and
test members with c fitted (maximum likelihood) on the *other* families' pool members only.

    .venv/bin/python experiments/family-networks/unseen_fraction.py experiments/family-networks/lanthanides \
        experiments/family-networks/s_oxides [...]

Read-only. Not shipped: an analysis of the family networks, whose figures docs/domain.md quotes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from pymatgen.core import Composition

from cfgp.family_retrain import converged_family
from cfgp.uncertainty.family_holdout import GOAL_COVERAGE, HELD_OUT_FAMILIES, hold_out_family, within_goal
from cfgp.uncertainty.sigma_calibration import scale_mle, two_sigma_half_width


def family_parts(folder: Path) -> dict:
    """A converged family network's family members, per part: |error|, residual, f, and the run's ν."""
    key, run = converged_family(folder)
    symbols = HELD_OUT_FAMILIES[key][1]
    fit, parts = hold_out_family(run, symbols)
    m = run.materials
    out = {"family": key, "df": fit["df"]}
    for part in ("selection", "test"):
        a = parts[part]
        comps = [Composition(f) for f in m.frame["formula"].iloc[a["rows"]]]
        frac = np.array([sum(c.get_atomic_fraction(e) for e in c.elements if e.symbol in symbols) for c in comps])
        out[part] = {"resid": a["mean"] - a["y"], "frac": frac}
    return out


def main(argv: list[str]) -> None:
    fams = [family_parts(Path(a)) for a in argv]
    if len(fams) < 2:
        raise SystemExit("give two or more converged family-network folders (c is cross-fitted over families)")
    q = two_sigma_half_width(fams[0]["df"])
    for f in fams:
        sel, test = f["selection"], f["test"]
        others = np.concatenate([g["selection"]["resid"] / g["selection"]["frac"] for g in fams if g is not f])
        c = scale_mle(others, f["df"])
        err = np.abs(sel["resid"])
        print(json.dumps({
            "family": f["family"], "n_pool": len(err), "n_test": len(test["resid"]),
            "mean_fraction": round(float(sel["frac"].mean()), 3), "mae_pool": round(float(err.mean()), 3),
            "corr_abs_error_fraction": round(float(np.corrcoef(err, sel["frac"])[0, 1]), 3),
            "c_within_goal_pool": within_goal(err / (q * sel["frac"]), GOAL_COVERAGE),
            "c_crossfit": round(c, 3),
            "coverage_2sigma_crossfit": {p: round(float(np.mean(np.abs(f[k]["resid"]) <= q * c * f[k]["frac"])), 3)
                                         for p, k in (("pool", "selection"), ("test", "test"))}}))


if __name__ == "__main__":
    main(sys.argv[1:])
