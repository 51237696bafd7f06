"""Leave-one-family-out on the tiny real run: the family leaves training and calibration (its elements become
unseen, so every member is flagged), the scores are those of the family's own materials, and the cross-fitted
new-chemistry scale for one family never uses that family's residuals."""

import numpy as np
import pytest

from cfgp.uncertainty.family_holdout import family_report, hold_out_family, members


def test_p_oxides_held_out(tiny_run):
    m, sp = tiny_run.materials, tiny_run.split
    fam = members(list(m.frame["elements"]), ("P",))
    out, parts = hold_out_family(tiny_run, ("P",))
    assert out["n_train"] == int((~fam[sp.train]).sum())  # the GP never saw a P-containing oxide
    assert out["selection"]["n"] == int(fam[sp.pool].sum()) > 0 and out["test"]["n"] == int(fam[sp.test].sum())
    sel = parts["selection"]
    assert sel["check"].flags["unseen_elements"].all() and out["selection"]["flagged"] == 1.0
    assert out["selection"]["mae"] == pytest.approx(float(np.mean(np.abs(sel["mean"] - sel["y"]))))


def test_cross_fitted_tau_never_sees_its_own_family(tiny_run):
    fams = {"p": ("P oxides", ("P",)), "tm": ("3d metals", ("Mn", "Fe", "Co", "Ni", "Cu", "Ti", "V", "Cr"))}
    rep = family_report(tiny_run, fams)
    f = rep["families"]
    # with two families, each one's τ is the other's fit: different, and both differ from the pooled fit
    assert f["p"]["tau_new_crossfit"] != f["tm"]["tau_new_crossfit"]
    assert min(f["p"]["tau_new_crossfit"], f["tm"]["tau_new_crossfit"]) <= rep["tau_new"] <= \
        max(f["p"]["tau_new_crossfit"], f["tm"]["tau_new_crossfit"])
    for key in fams:
        s = f[key]["selection_fitted_new_chemistry"]
        assert 0 <= s["coverage_2sigma"] <= 1 and np.isfinite(s["nll"])
