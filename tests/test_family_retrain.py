"""A family held out of the network too, on the tiny real run: MEGNet trained from fresh weights without the
family's training materials (and without them in early stopping), every material re-featurised, the family scored
as new chemistry with the shipped σ and with τ_new·σ_GP; resumable, never redone once finished."""

import json

import numpy as np
import pytest
from pymatgen.core import Element

from cfgp.pipeline import Run
from cfgp.uncertainty.family_holdout import members

FAMILIES = {"p": ("P oxides", ("P",)), "tm": ("3d metals", ("Mn", "Fe", "Co", "Ni", "Cu", "Ti", "V", "Cr"))}


@pytest.fixture(scope="module")
def family_networks(tiny_run, tmp_path_factory) -> dict:
    """Both families of FAMILIES held out of a network of their own (2 epochs each): key → (folder, first result)."""
    from cfgp.family_retrain import retrain_without_family

    root = tmp_path_factory.mktemp("family-networks")
    return {k: (root / f"without-{k}", retrain_without_family(tiny_run, k, root / f"without-{k}", epochs=2, patience=2,
                                                              progress=False, families=FAMILIES))
            for k in FAMILIES}


@pytest.mark.slow
def test_the_family_leaves_the_network_and_is_scored_as_new_chemistry(tiny_run, family_networks, tmp_path, capsys):
    from cfgp.family_retrain import RESULT_FILE, early_stopping_without, family_run, retrain_without_family

    out, res = family_networks["p"]
    run = Run(out)
    m, base_ids = run.materials, tiny_run.materials.ids
    fam = members(list(m.frame["elements"]), ("P",))
    # the split: train lost exactly the family's members; pool and test are the base's
    assert set(m.ids[run.split.train]) == set(base_ids[tiny_run.split.train]) - set(m.ids[fam])
    assert not fam[run.split.train].any() and fam[tiny_run.split.train].any()
    assert list(m.ids[run.split.pool]) == list(base_ids[tiny_run.split.pool])
    assert list(m.ids[run.split.test]) == list(base_ids[tiny_run.split.test])
    # early stopping: the base network's materials less the family's
    summary = json.loads((out / "training" / "summary.json").read_text())
    assert sorted(summary["val_ids"]) == sorted(early_stopping_without(tiny_run, ("P",)))
    assert not set(summary["val_ids"]) & set(m.ids[fam])
    # a new network from fresh weights: other latents; stopped by the cap, so not converged
    assert not np.allclose(run.latents()[run.split.test], tiny_run.latents()[tiny_run.split.test])
    assert res["finished"] and res["epochs"] == 2 and res["converged"] is False and res["reason"] == "reached 2 epochs"
    # the family's pool and test members scored, every one flagged (its elements are new to every model)
    assert res["pool_floor"]["n"] == int(fam[run.split.pool].sum()) > 0
    assert res["pool_floor"]["flagged"] == 1.0 and res["pool_tau_new"]["n"] == res["pool_floor"]["n"]
    assert 0 <= res["pool_tau_new"]["coverage_2sigma"] <= res["pool_floor"]["coverage_2sigma"] <= 1
    # and with the shipped σ: the network never trained P, so its members' σ comes from drawing P's embedding
    assert res["pool_drawn"]["n"] == res["pool_floor"]["n"] and res["pool_drawn"]["nll"] != res["pool_floor"]["nll"]
    assert np.isfinite(res["tau_new_crossfit"]) and res["n_train_without"] == len(run.split.train)
    assert json.loads((out / RESULT_FILE).read_text())["pool_floor"] == res["pool_floor"]
    # finished: read back, never redone; another family in the same folder is refused; the CLI names its families
    from cfgp.cli import main

    with pytest.raises(SystemExit):
        main(["family-network", "--run", str(tiny_run.dir), "--family", "lanthanide", "--out", str(tmp_path / "x")])
    assert "invalid choice: 'lanthanide'" in capsys.readouterr().err and not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="other settings"):
        family_run(tiny_run, "tm", out, families=FAMILIES)
    assert retrain_without_family(tiny_run, "p", out, epochs=2, patience=2, progress=False,
                                  families=FAMILIES) == res


@pytest.mark.slow
def test_the_families_report_scores_each_family_on_its_own_network(family_networks, tmp_path):
    """Two families, each on a network trained without it: τ_new of one is fitted on the other's pool members on
    *the other's* network; a job stopped at its epoch cap is not a result unless asked; bad folders are named."""
    from cfgp.family_retrain import family_networks_report
    from cfgp.uncertainty.family_holdout import hold_out_family, new_chemistry_tau

    dirs = {k: out for k, (out, _) in family_networks.items()}
    (tmp_path / "empty").mkdir()
    report = family_networks_report([*dirs.values(), tmp_path / "empty"], families=FAMILIES)
    assert report["families"] == {} and "2 needed" in report["reason"]
    assert [(r.get("family"), r["reason"][:13]) for r in report["left_out"]] == \
        [("p", "not converged"), ("tm", "not converged"), (None, "no family.jso")]
    report = family_networks_report(dirs.values(), families=FAMILIES, converged_only=False)
    assert sorted(report["families"]) == ["p", "tm"] and report["left_out"] == []
    for key, other in (("p", "tm"), ("tm", "p")):
        fit, arrays = hold_out_family(Run(dirs[other]), FAMILIES[other][1])
        sel = arrays["selection"]
        z = ((sel["mean"] - sel["y"]) / sel["sigma_raw"])[sel["new_chemistry"]]
        assert report["families"][key]["tau_new_crossfit"] == pytest.approx(new_chemistry_tau(z, fit["df"]))
        run = Run(dirs[key])
        fam = members(list(run.materials.frame["elements"]), FAMILIES[key][1])
        f = report["families"][key]
        assert f["pool"]["n"] == f["pool_floor"]["n"] == int(fam[run.split.pool].sum())
        assert f["job"]["epochs"] == 2 and f["job"]["converged"] is False and f["n_train_without"] == len(run.split.train)
        # the shipped σ, recomputed from the arrays: sqrt((τ_out·σ_GP)² + σ_emb²) for every member (all are oxides
        # with an element the family's network never trained), σ_emb > 0
        from cfgp.uncertainty.sigma_calibration import predictive_metrics

        own, parts = hold_out_family(run, FAMILIES[key][1], draws=True)
        sel = parts["selection"]
        drawn = np.isfinite(sel["spread"])
        assert (drawn == sel["new_chemistry"]).all() and drawn.all() and (sel["spread"] > 0).all()
        scale = np.hypot(own["tau_out"] * sel["sigma_raw"], sel["spread"])
        # the shipped prediction: the GP's mean, but the mean over draws for a never-trained lanthanoid or actinoid
        changed = sel["shown_mean"] != sel["mean"]
        f_block = {Element.from_Z(z).symbol for z in (*range(57, 72), *range(89, 104))}
        assert all(set(els) & f_block for els in run.materials.frame["elements"].iloc[sel["rows"][changed]])
        assert f["pool_drawn"]["nll"] == pytest.approx(predictive_metrics(sel["shown_mean"], scale, sel["y"],
                                                                          own["df"])["nll"])
    with pytest.raises(ValueError, match="both hold the family 'p'"):
        family_networks_report([dirs["p"], dirs["p"]], families=FAMILIES, converged_only=False)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        family_networks_report([tmp_path / "nowhere"], families=FAMILIES)


def test_an_analysis_reads_only_a_family_network_that_converged(tmp_path):
    """``converged_family`` says why a folder gives no figure: no result yet, not finished, stopped by the epoch
    limit rather than the rule; an unknown family is an error in the file."""
    from cfgp.data import DataError
    from cfgp.family_retrain import converged_family

    job = tmp_path / "job"
    job.mkdir()
    with pytest.raises(ValueError, match="has not started or finished"):
        converged_family(job, FAMILIES)
    for result, why in (({"family": "p", "finished": False}, "not finished"),
                        ({"family": "p", "finished": True, "converged": False, "reason": "epoch limit"},
                         r"not converged by its rule \(epoch limit\)")):
        (job / "family.json").write_text(json.dumps(result))
        with pytest.raises(ValueError, match=why):
            converged_family(job, FAMILIES)
    (job / "family.json").write_text(json.dumps({"family": "<script>", "finished": True, "converged": True}))
    with pytest.raises(DataError, match="is not a known family"):
        converged_family(job, FAMILIES)
