"""What the views read (cfgp.results): the results frame, the outlier verdict, the per-group calibration."""

import numpy as np
import pandas as pd
import pytest

from cfgp import results
from cfgp.uncertainty.applicability import evaluation_groups, run_checks
from cfgp.uncertainty.groups import group_report
from cfgp.results import outlier_summary, phosphate_verdict

#: the columns of the results frame, in order: the dashboard's tabs, its downloads and its tests read them by name
COLUMNS = ["material_id", "formula", "spacegroup_symbol", "nsites", "is_phosphate", "dft", "gp", "sigma", "residual",
           "z", "excess", "split", "row", "band_gap", "efermi", "total_magnetization", "volume_per_atom",
           "spacegroup_number", "in_domain", "domain", "domain_label", "sigma_emb", "mean_from_draws", "sigma_cal"]


@pytest.fixture(scope="module")
def res(tiny_run):
    return results.load_results(tiny_run)


# ------------------------------------------------------------------ outliers (the rule itself: tests/uncertainty/test_groups.py)
def _frame(rows):
    return pd.DataFrame(rows, columns=["split", "is_phosphate", "dft", "gp", "sigma"]).assign(
        excess=lambda f: np.abs(f.gp - f.dft) - 2 * f.sigma)


def test_outlier_summary_counts_scored_materials_outside_two_sigma():
    f = _frame([
        ("test", True, 0.0, 0.5, 0.1),    # outside, phosphate
        ("test", False, 0.0, 0.5, 0.1),   # outside
        ("test", False, 0.0, 0.1, 0.1),   # inside
        ("test", True, 0.0, 0.19, 0.1),   # inside, phosphate
        ("test", True, np.nan, 0.5, 0.1),  # no DFT label: not scored
        ("test", True, 0.0, 0.5, 0.0),    # σ = 0: not scored
        ("pool", True, 0.0, 0.5, 0.1),    # another split
    ])
    s = outlier_summary(f, "test")
    assert s == {"n": 4, "outside": 2, "phosphates_outside": 1, "phosphates": 2}
    assert phosphate_verdict(s) == "about"  # 1/2 of the outliers against 2/4 of the split
    assert outlier_summary(f, "pool") == {"n": 1, "outside": 1, "phosphates_outside": 1, "phosphates": 1}
    assert outlier_summary(f, "train") == {"n": 0, "outside": 0, "phosphates_outside": 0, "phosphates": 0}
    assert phosphate_verdict(outlier_summary(f, "train")) is None


def test_phosphate_verdict_compares_the_two_shares():
    # 20 % of the split are phosphates: 50 % of the outliers is over, 10 % under, 20 % and 25 % (1.25×) about
    assert phosphate_verdict({"n": 100, "outside": 10, "phosphates_outside": 5, "phosphates": 20}) == "over"
    assert phosphate_verdict({"n": 100, "outside": 10, "phosphates_outside": 1, "phosphates": 20}) == "under"
    assert phosphate_verdict({"n": 100, "outside": 10, "phosphates_outside": 2, "phosphates": 20}) == "about"
    assert phosphate_verdict({"n": 100, "outside": 8, "phosphates_outside": 2, "phosphates": 20}) == "about"
    assert phosphate_verdict({"n": 100, "outside": 8, "phosphates_outside": 3, "phosphates": 20}) == "over"
    assert phosphate_verdict({"n": 100, "outside": 0, "phosphates_outside": 0, "phosphates": 20}) is None


# ------------------------------------------------------------------ the results frame
def test_predictions_frame(tiny_run, res):
    m = tiny_run.materials
    shown = res.applicability.material_mean(m.ids, res.pred["mean"])
    frame = results.predictions_frame(m.frame, shown, res.pred["std"], tiny_run.split.labels(len(m)))
    assert len(frame) == len(m) and set(frame.split) == {"train", "pool", "test"}
    np.testing.assert_allclose(frame.excess, np.abs(frame.gp - frame.dft) - 2 * frame.sigma)
    pd.testing.assert_frame_equal(frame, res.frame[frame.columns])


def test_results_frame_columns_and_definitions(tiny_run, res):
    f, m = res.frame, tiny_run.materials
    assert list(f.columns) == COLUMNS
    assert len(f) == len(m) and (f.row.to_numpy() == np.arange(len(m))).all()
    assert (f.material_id.to_numpy() == m.ids).all()
    np.testing.assert_array_equal(f.dft, m.y)
    # the GP's mean, but the mean over draws for a material with a never-trained lanthanoid or actinoid
    drawn = np.isin(m.ids, list(res.applicability.drawn_mean_ids))
    assert drawn.any() and np.all(f.gp.to_numpy()[drawn] != res.pred["mean"][drawn])
    np.testing.assert_array_equal(f.gp.to_numpy()[~drawn], res.pred["mean"][~drawn])
    np.testing.assert_array_equal(f.gp.to_numpy()[drawn],
                                  [res.applicability.drawn_mean_ids[i] for i in m.ids[drawn]])
    np.testing.assert_array_equal(f.mean_from_draws.to_numpy(), drawn)
    np.testing.assert_array_equal(f.sigma, res.pred["std"])
    np.testing.assert_allclose(f.residual, f.gp - f.dft)
    np.testing.assert_allclose(f.z, f.residual / f.sigma)
    assert (f.sigma > 0).all() and np.isfinite(f.z).all()
    np.testing.assert_array_equal(f.split, tiny_run.split.labels(len(m)))
    for col in results.MATERIAL_PROPERTIES:
        expected = m.frame[col].to_numpy(float) if col in m.frame else np.full(len(m), np.nan)
        np.testing.assert_array_equal(f[col].to_numpy(float), expected)


def test_results_frame_domain_and_calibrated_sigma(tiny_run, res):
    f = res.frame
    check = run_checks(tiny_run, res.applicability)  # anew, not the one the frame was built from
    np.testing.assert_array_equal(f.in_domain, check.in_domain)
    assert list(f.domain) == check.reason
    assert ((f.domain == "") == f.in_domain).all()
    labels = f.domain_label.to_numpy(dtype=object)
    assert (labels[f.in_domain] == "yes").all()
    assert all(lab == "NO: " + s for lab, s in zip(labels[~f.in_domain], np.asarray(check.short)[~f.in_domain]))
    np.testing.assert_array_equal(f.sigma_emb, res.applicability.material_spread(f.material_id))
    sigma, scale = res.applicability.calibrated(f.sigma.to_numpy(), check, f.sigma_emb.to_numpy())
    np.testing.assert_allclose(f.sigma_cal, sigma)
    np.testing.assert_allclose(f.sigma_cal, scale * res.applicability.sigma.two_sigma_factor)


# ------------------------------------------------------------------ groups
def test_calibration_groups_are_the_evaluation_groups(tiny_run, res):
    groups = results.calibration_groups(res)
    assert "check_set" not in groups  # a fresh user folder: no `cfgp evaluate --check-set` result yet
    assert groups == evaluation_groups(tiny_run, res.applicability, res.pred)  # its own domain check
    f = res.frame
    test = np.flatnonzero(results.scored(f) & (f.split == "test").to_numpy())
    assert groups["all"]["n"] == len(test) > 0
    # the same numbers from the frame's own columns (what the Calibration tab computed for itself)
    check = res.check.take(test)
    _, scale = res.applicability.calibrated(f.sigma.to_numpy()[test], check, f.sigma_emb.to_numpy()[test])
    from_frame = group_report(f.gp.to_numpy()[test], f.dft.to_numpy()[test], scale, res.applicability.sigma.df,
                              f.sigma.to_numpy()[test], check, list(tiny_run.materials.frame["elements"].iloc[test]),
                              f.is_phosphate.to_numpy()[test], formulas=f.formula.to_numpy()[test])
    assert groups == from_frame
    assert groups["phosphates"]["n"] + groups["other_oxides"]["n"] == groups["all"]["n"]
