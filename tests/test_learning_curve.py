"""The learning curve (issue 10, item 5) on the tiny real run: frozen-latent CFGP from train to the whole pool,
MEGNet's readout, a re-trained run; resumable JSON and the figure."""

import json

import numpy as np
import pytest

from cfgp.pipeline import evaluate


def test_frozen_curve_starts_at_the_runs_own_gp_and_ends_at_the_whole_pool(tiny_run):
    from cfgp.learning_curve import frozen_cfgp_curve, sizes_up_to_pool

    n_train, n_pool = len(tiny_run.split.train), len(tiny_run.split.pool)
    sizes = sizes_up_to_pool(tiny_run, steps=(0, 40))
    assert sizes == [n_train, n_train + 40, n_train + n_pool]
    seed = tiny_run.settings["split"]["seed"]  # the seed `cfgp fit` used: same fit, same test MAE
    recs = frozen_cfgp_curve(tiny_run, sizes, seeds=[seed])
    assert [r["n_labels"] for r in recs] == sizes
    first = evaluate(tiny_run)
    assert recs[0]["mae"] == pytest.approx(first["mae"], rel=1e-6)
    assert recs[0]["coverage_2sigma"] == pytest.approx(first["coverage_2sigma"])
    # more labels of the same distribution: the whole pool beats the train split alone on this run
    assert recs[-1]["mae"] < recs[0]["mae"]
    with pytest.raises(ValueError, match="outside"):
        frozen_cfgp_curve(tiny_run, [n_train + n_pool + 1], seeds=[0])


@pytest.mark.slow
def test_learning_curve_resumes_adds_retrained_runs_and_draws(tiny_run, warm_retrain, tmp_path, monkeypatch):
    import cfgp.learning_curve as lc
    from cfgp.cli import main
    from cfgp.retrain import RESULT_FILE

    retrained, done = warm_retrain  # train + 20 entropy picks, MEGNet re-trained (conftest)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / RESULT_FILE).write_text(json.dumps({"finished": False}))

    out = tmp_path / "curve.json"
    n_train = len(tiny_run.split.train)
    sizes = [n_train, n_train + 30]
    first = lc.learning_curve(tiny_run, out, sizes=sizes, seeds=[0, 1], retrain_folders=[retrained, unfinished])
    assert len(first["frozen"]) == 4 and {r["seed"] for r in first["frozen"]} == {0, 1}
    assert first["base_readout"]["n_labels"] == n_train and 0 < first["base_readout"]["mae"] < 2
    cfgp_pt, readout_pt = first["retrained"]  # the unfinished run is left out
    assert cfgp_pt["n_labels"] == n_train + 20 and cfgp_pt["mae"] == done["mae"]
    assert cfgp_pt["strategy"] == "entropy" and readout_pt["model"] == "re-trained MEGNet readout"
    assert readout_pt["mae"] != first["base_readout"]["mae"]  # a different network

    # resumed: the saved points are not recomputed when the settings match, and are when they do not
    calls = []
    real = lc.frozen_cfgp_curve
    monkeypatch.setattr(lc, "frozen_cfgp_curve", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = lc.learning_curve(tiny_run, out, sizes=sizes, seeds=[0, 1], retrain_folders=[retrained])
    assert calls == [] and again["frozen"] == first["frozen"]
    lc.learning_curve(tiny_run, out, sizes=sizes, seeds=[2], retrain_folders=[])
    assert len(calls) == 2

    png = tmp_path / "curve.png"
    assert main(["learning-curve", "--run", str(tiny_run.dir), "--out", str(out), "--sizes", *map(str, sizes),
                 "--seeds", "2", "--plot", str(png), "--quiet"]) == 0
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 500 and img.shape[1] > 800 and np.std(img[..., :3]) > 0.05  # drawn, not blank

    # the notebook's summary and interactive figure (notebooks/07) of the same points
    rows = lc.summarise(first)
    frozen = [r for r in rows if r["model"] == "frozen-latent CFGP"]
    assert [r["n_labels"] for r in frozen] == sizes and all(r["runs"] == 2 for r in frozen)
    for r in frozen:
        maes = [q["mae"] for q in first["frozen"] if q["n_labels"] == r["n_labels"]]
        assert r["mae"] == pytest.approx(np.mean(maes)) and (r["mae_min"], r["mae_max"]) == (min(maes), max(maes))
    cfgp_row = next(r for r in rows if r["model"] == "re-trained CFGP")
    assert (cfgp_row["strategy"], cfgp_row["runs"], cfgp_row["mae"]) == ("entropy", 1, done["mae"])
    assert len(rows) == len(sizes) + 1 + 2  # + base readout + the re-trained CFGP and its readout

    import holoviews as hv

    from cfgp import hv_plots

    fig = hv_plots.learning_curve(first)
    labels = [el.label for el in fig if el.label]
    assert labels == ["frozen-latent CFGP, random labels (2 seeds)", "MEGNet readout", "re-trained CFGP, entropy picks",
                      "re-trained MEGNet readout, entropy picks", "paper, re-trained (1,800 + 6,000 entropy)"]
    curve = next(el for el in fig if type(el) is hv.Curve)  # (hv.Area is a Curve too: the min–max band)
    np.testing.assert_allclose(curve.dimension_values(1), [r["mae"] for r in frozen])
    hv.render(fig)
