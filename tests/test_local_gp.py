"""The local (nearest-neighbour) GP (cfgp/local_gp.py) on the shipped run's real latents: exact when every
training point is a neighbour, the right neighbours, the prior far from the data, growing by add(), and what
method="auto" picks above LOCAL_ABOVE."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from cfgp.gp import LOCAL_ABOVE, CFGP
from cfgp.local_gp import LocalGP
from tests import reference


@pytest.fixture(scope="module")
def default(shipped_latents):
    return shipped_latents


def _local(h, **kw) -> LocalGP:
    return LocalGP(h["amplitude"], h["length_scale"], h["noise_variance"], h["mean_constant"], **kw)


def test_every_point_a_neighbour_reproduces_the_exact_gp(default):
    """k ≥ n at the shipped hyper-parameters, through CFGP's own local path: the exact posterior (NumPy
    reference) for every query, mean and σ, with and without the noise."""
    d, h = default, default["h"]
    gp = CFGP.from_dict(d["saved"])
    gp.method, gp.n_neighbours = "local", 5000
    gp.condition(d["Xtr"], d["ytr"])
    assert gp.method_ == "local" and gp.n_train_ == 1800 and gp._L is None
    q = slice(0, 96)
    mean, std = gp.predict(d["Xte"][q], return_std=True)
    ref_mean, ref_std = reference.posterior(d["Str"], d["ytr"], d["Ste"][q], h["amplitude"], h["length_scale"],
                                            h["noise_variance"], h["mean_constant"])
    # the reference has no 1e-8 jitter on the diagonal: CFGP's exact GP agrees with the local one to 6e-12
    np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(std, ref_std, rtol=1e-5)
    _, std_f = gp.predict(d["Xte"][q], return_std=True, include_noise=False)
    np.testing.assert_allclose(std_f**2 + h["noise_variance"], std**2, rtol=1e-12)
    with pytest.raises(ValueError, match="no exact log marginal likelihood"):
        gp.log_marginal_likelihood()


def test_each_query_conditions_on_its_nearest_points_only(default):
    """The neighbours are the k nearest by Euclidean distance, nearest first, and the prediction is the exact
    GP on those k points alone (the reference GP on the subset), not on the rest."""
    d, h = default, default["h"]
    lg = _local(h, n_neighbours=40).fit(d["Str"], d["ytr"])
    Q = d["Ste"][:7]
    idx, dist = lg.neighbours(Q)
    D = cdist(Q, d["Str"])
    for i in range(len(Q)):
        np.testing.assert_array_equal(np.sort(idx[i]), np.sort(np.argsort(D[i])[:40]))
        assert np.all(np.diff(dist[i]) >= 0) and dist[i, 0] == D[i].min()
    mean, std = lg.predict(Q, return_std=True)
    for i in range(len(Q)):
        m, s = reference.posterior(d["Str"][idx[i]], d["ytr"][idx[i]], Q[i:i + 1], h["amplitude"],
                                   h["length_scale"], h["noise_variance"], h["mean_constant"])
        assert mean[i] == pytest.approx(m[0], abs=1e-6) and std[i] == pytest.approx(s[0], rel=1e-5)
    far_mean, far_std = lg.predict(Q[:3] + 1e4, return_std=True)  # no data nearby: the prior
    np.testing.assert_allclose(far_std, np.sqrt(h["amplitude"] ** 2 + h["noise_variance"]), rtol=1e-6)
    np.testing.assert_allclose(far_mean, h["mean_constant"], atol=1e-3)
    assert lg.predict(Q[:5]).shape == (5,)


def test_adding_points_equals_a_fit_on_all(default):
    d, h = default, default["h"]
    grown = _local(h, n_neighbours=64).fit(d["Str"][:1500], d["ytr"][:1500])
    grown.add(d["Str"][1500:1790], d["ytr"][1500:1790])
    grown.add(d["Str"][1790], d["ytr"][1790])
    fresh = _local(h, n_neighbours=64).fit(d["Str"][:1791], d["ytr"][:1791])
    assert grown.n_ == 1791
    for a, b in zip(grown.predict(d["Ste"][:200], return_std=True), fresh.predict(d["Ste"][:200], return_std=True)):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    with pytest.raises(ValueError, match="finite"):
        grown.add(d["Str"][:2], [0.0, np.nan])


def test_auto_is_exact_below_the_threshold_and_local_above_and_settings_survive_saving(default):
    d = default
    gp = CFGP(method="auto")
    assert gp.resolved_method(LOCAL_ABOVE) == "exact" and gp.resolved_method(LOCAL_ABOVE + 1) == "local"
    assert CFGP(method="local").resolved_method(10) == "local"
    assert "n_neighbours" not in CFGP().settings()  # the shipped gp.json's settings key is unchanged
    # above the threshold: real latents of train + pool, n = LOCAL_ABOVE + 1, no hyper-parameter fit
    run = d["run"]
    X = run.latents()
    rows = np.concatenate([run.split.train, run.split.pool])
    rows = rows[np.isfinite(X[rows]).all(axis=1)][: LOCAL_ABOVE + 1]
    big = CFGP.from_dict(d["saved"])
    big.condition(X[rows], run.materials.y[rows])
    assert big.method_ == "local" and big.n_train_ == LOCAL_ABOVE + 1 and big._L is None and big.device_ == "/CPU:0"
    mean, std = big.predict(d["Xte"], return_std=True)
    # more labels than the shipped 1,800-point GP: better on the same test materials
    shipped = CFGP.from_dict(d["saved"]).condition(d["Xtr"], d["ytr"]).predict(d["Xte"])
    assert np.abs(mean - d["yte"]).mean() < np.abs(shipped - d["yte"]).mean()
    from cfgp.al import PoolPosterior  # active learning updates an exact GP's Cholesky factor: said, not an AttributeError

    with pytest.raises(ValueError, match="active learning needs method='exact'"):
        PoolPosterior(big, d["Xte"][:10])
    small = CFGP(method="local", n_neighbours=99, optimize=False, **{k: d["h"][k] for k in
                 ("amplitude", "length_scale", "noise_variance")}).fit(d["Xtr"], d["ytr"])
    clone = CFGP.from_dict(small.to_dict()).condition(d["Xtr"], d["ytr"])
    assert clone.method_ == "local" and clone.get_params()["n_neighbours"] == 99
    np.testing.assert_array_equal(clone.predict(d["Xte"][:50]), small.predict(d["Xte"][:50]))
    with pytest.raises(ValueError, match="n_neighbours"):
        LocalGP(1.0, 1.0, 0.1, n_neighbours=0)


@pytest.mark.slow
def test_cli_fit_with_the_local_method(default, tmp_path, capsys):
    """`cfgp fit --method local` on a copy of the shipped run saves the setting in gp.json, and the saved GP then
    conditions on nearest neighbours wherever it is loaded (`cfgp evaluate`, the app)."""
    import json
    import shutil

    from cfgp.artefacts import DEFAULT_RUN, read_json
    from cfgp.cli import main
    from cfgp.pipeline import Run, evaluate, load_gp

    run_dir = tmp_path / "run"
    shutil.copytree(DEFAULT_RUN, run_dir, ignore=shutil.ignore_patterns("al", "tsne-*", "manifest.json"))
    capsys.readouterr()
    assert main(["fit", "--run", str(run_dir), "--method", "local", "--n-neighbours", "128", "--refit"]) == 0
    fit = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fit["method"] == "local" and fit["device"] == "/CPU:0"
    saved = read_json(run_dir / "gp.json")["gp"]
    assert saved["params"]["method"] == "local" and saved["params"]["n_neighbours"] == 128
    gp = load_gp(Run(run_dir))
    assert gp.method_ == "local" and gp.local_.n_neighbours == 128 and gp.n_train_ == 1800
    scores = evaluate(Run(run_dir))
    exact = CFGP.from_dict(default["saved"]).condition(default["Xtr"], default["ytr"]).predict(default["Xte"])
    exact_mae = float(np.abs(exact - default["yte"]).mean())  # the shipped exact GP's test MAE (README)
    assert scores["mae"] < 1.05 * exact_mae and 0.85 < scores["coverage_2sigma"] < 0.99
    # active learning on that run conditions exactly: the refit found the shipped hyper-parameters, so its first
    # cycles are the committed entropy run's, pick for pick
    from cfgp.al import ALSettings, History
    from cfgp.pipeline import active_learner

    learner = active_learner(Run(run_dir), ALSettings(strategy="entropy", cycles=3, batch_size=1, seed=0))
    assert learner.gp.method_ == "exact"
    _, committed = History(DEFAULT_RUN / "al" / "entropy-b1-pool7195-s0.jsonl.gz").read()
    for rec, ref in zip(learner.steps(), committed[1:4]):
        assert rec["picked"] == ref["picked"] and rec["mae"] == pytest.approx(ref["mae"], rel=1e-6)
