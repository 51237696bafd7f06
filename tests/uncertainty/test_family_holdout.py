"""Leave-one-family-out on the tiny real run: the family leaves training and calibration (its elements become
unseen, so every member is flagged), the scores are those of the family's own materials, and the cross-fitted
new-chemistry scale for one family never uses that family's residuals."""

import numpy as np
import pytest

from cfgp.uncertainty.family_holdout import family_gp, family_report, family_rows, hold_out_family, members


def test_p_oxides_held_out(tiny_run):
    m, sp = tiny_run.materials, tiny_run.split
    fam = members(list(m.frame["elements"]), ("P",))
    out, parts = hold_out_family(tiny_run, ("P",))
    assert out["n_train"] == int((~fam[sp.train]).sum())  # the GP never saw a P-containing oxide
    assert out["selection"]["n"] == int(fam[sp.pool].sum()) > 0 and out["test"]["n"] == int(fam[sp.test].sum())
    sel = parts["selection"]
    assert sel["check"].flags["unseen_elements"].all() and out["selection"]["flagged"] == 1.0
    for part, split in (("selection", sp.pool), ("test", sp.test)):  # the rows: the family's members, in order
        rows = parts[part]["rows"]
        assert list(rows) == [i for i in split if fam[i]]
        np.testing.assert_array_equal(parts[part]["y"], m.y[rows])
    split_rows = family_rows(tiny_run, ("P",))
    assert len(split_rows["train"]) == out["n_train"] and not fam[split_rows["train"]].any()
    assert len(split_rows["calibration"]) == out["n_calibration"] and not fam[split_rows["calibration"]].any()
    for part in ("selection", "test"):
        np.testing.assert_array_equal(split_rows[part], parts[part]["rows"])
    assert out["selection"]["mae"] == pytest.approx(float(np.mean(np.abs(sel["mean"] - sel["y"]))))
    # a caller's GP fitted on the hold-out's train rows gives the same scores; one fitted on other rows does not
    again, _ = hold_out_family(tiny_run, ("P",), gp=family_gp(tiny_run, split_rows["train"]))
    assert again["selection"] == out["selection"] and again["test"] == out["test"]
    other, _ = hold_out_family(tiny_run, ("P",), gp=family_gp(tiny_run, split_rows["train"][::2]))
    assert other["selection"]["mae"] != out["selection"]["mae"]


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
    # the scales that meet the coverage goal: per family as each family's own entry says, and where they meet
    goal = rep["scales_for_goal"]
    for shape in ("floor", "tau"):
        per = goal[shape]["pool"]["families"]
        assert per == {k: f[k]["selection_for_goal"][shape] for k in fams}
        if all(per.values()):
            lo, hi = max(v[0] for v in per.values()), min(v[1] for v in per.values())
            assert goal[shape]["pool"]["common"] == ([lo, hi] if lo <= hi else None)
        else:
            assert goal[shape]["pool"]["common"] is None


def test_the_fitted_floor_is_the_other_familys_residual_scale(tiny_run):
    """s_new (eV/atom) for one family is the Student-t scale of the *other* family's residuals: recomputed here
    from the other's own hold-out, and the family's coverage with it recomputed from its residuals."""
    from scipy import stats

    from cfgp.uncertainty.sigma_calibration import scale_mle

    fams = {"p": ("P oxides", ("P",)), "tm": ("3d metals", ("Mn", "Fe", "Co", "Ni", "Cu", "Ti", "V", "Cr"))}
    rep = family_report(tiny_run, fams)
    for key, other in (("p", "tm"), ("tm", "p")):
        fit, parts = hold_out_family(tiny_run, fams[other][1])
        sel = parts["selection"]
        r = (sel["mean"] - sel["y"])[sel["new_chemistry"]]
        f = rep["families"][key]
        assert f["s_new_crossfit"] == pytest.approx(scale_mle(r, f["df"]))  # in the family's own t (its ν)
        own = hold_out_family(tiny_run, fams[key][1])[1]["selection"]
        scale = np.where(own["new_chemistry"], np.maximum(f["tau_out"] * own["sigma_raw"], f["s_new_crossfit"]),
                         own["scale"])
        q = 0.5 + 0.954499736103642 / 2
        half = (stats.norm.ppf(q) if f["df"] is None else stats.t.ppf(q, f["df"])) * scale
        assert f["selection_fitted_floor"]["coverage_2sigma"] == pytest.approx(
            float(np.mean(np.abs(own["mean"] - own["y"]) <= half)))
    assert min(rep["families"][k]["s_new_crossfit"] for k in fams) <= rep["s_new"] <= \
        max(rep["families"][k]["s_new_crossfit"] for k in fams)


def test_floors_meeting_the_goal_bracket_coverage_on_the_family_itself(tiny_run):
    """The interval of floors that put a held-out family's ±2σ coverage inside the goal: scored back with the
    shipped rule, its ends give coverage within the goal and a floor just outside gives coverage outside it."""
    from cfgp.uncertainty.family_holdout import GOAL_COVERAGE, floors_meeting, score_with_new_chemistry_floor

    fit, parts = hold_out_family(tiny_run, ("Mn", "Fe", "Co", "Ni", "Cu", "Ti", "V", "Cr"))
    sel, tau_out, df = parts["selection"], fit["tau_out"], fit["df"]

    def coverage(floor):
        return score_with_new_chemistry_floor(sel, floor, tau_out, df, 1.0)["coverage_2sigma"]

    lo, hi = floors_meeting(sel, tau_out, df)
    assert 0 <= lo <= hi
    for floor in (lo, hi):
        assert GOAL_COVERAGE[0] <= coverage(floor) <= GOAL_COVERAGE[1]
    if lo > 0:
        assert coverage(lo * (1 - 1e-6)) < GOAL_COVERAGE[0]
    assert coverage(hi * (1 + 1e-6) + 1e-12) > GOAL_COVERAGE[1]
    # a goal no floor can meet: τ_out·σ_GP alone covers more than an upper bound of 0
    assert floors_meeting(sel, tau_out, df, goal=(0.0, 0.0)) is None or coverage(0.0) == 0.0
    empty = {k: (v[:0] if isinstance(v, np.ndarray) else v) for k, v in sel.items()}
    assert floors_meeting(empty, tau_out, df) is None


def test_taus_meeting_the_goal_bracket_coverage_of_tau_sigma(tiny_run):
    from cfgp.uncertainty.family_holdout import GOAL_COVERAGE, score_with_new_chemistry_scale, taus_meeting

    fit, parts = hold_out_family(tiny_run, ("Mn", "Fe", "Co", "Ni", "Cu", "Ti", "V", "Cr"))
    sel, df = parts["selection"], fit["df"]

    def coverage(tau):
        return score_with_new_chemistry_scale(sel, tau, df, 1.0)["coverage_2sigma"]

    lo, hi = taus_meeting(sel, df)
    assert 0 < lo <= hi
    assert GOAL_COVERAGE[0] <= coverage(lo) <= coverage(hi) <= GOAL_COVERAGE[1]
    assert coverage(lo * (1 - 1e-6)) < GOAL_COVERAGE[0] and coverage(hi * (1 + 1e-6)) > GOAL_COVERAGE[1]


def test_common_interval_is_where_every_familys_floors_meet():
    from cfgp.uncertainty.family_holdout import common_interval

    assert common_interval([[0.1, 0.5], [0.3, 0.9]]) == [0.3, 0.5]
    assert common_interval([[0.1, 0.2], [0.3, 0.9]]) is None
    assert common_interval([[0.1, None], [0.3, 0.9]]) == [0.3, 0.9]
    assert common_interval([[0.1, 0.5], None]) is None and common_interval([]) is None
