"""The Laplacian-kernel GP on real MEGNet latents: scikit-learn cross-check, updates, fitting."""

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from cfgp.gp import JITTER, CFGP, device_label
from tests import reference


@pytest.fixture(scope="module")
def latents(tiny_run):
    X, y = tiny_run.latents(), tiny_run.materials.y
    sp = tiny_run.split
    return X[sp.train], y[sp.train], X[sp.test], y[sp.test], X[sp.pool], y[sp.pool]


def _fixed(**kw):
    base = dict(amplitude=0.8, length_scale=3.0, noise_variance=0.01, optimize=False)
    base.update(kw)
    return CFGP(**base)


def test_equals_sklearn_matern_half(latents):
    Xtr, ytr, Xte, _, _, _ = latents
    gp = _fixed(feature_scaling=None, mean="zero").fit(Xtr, ytr)
    mean, std = gp.predict(Xte, return_std=True)
    kernel = (ConstantKernel(0.8**2, "fixed") * Matern(3.0, "fixed", nu=0.5)
              + WhiteKernel(0.01 + JITTER, "fixed"))
    sk = GaussianProcessRegressor(kernel, optimizer=None, alpha=0.0).fit(Xtr, ytr)
    sk_mean, sk_std = sk.predict(Xte, return_std=True)
    np.testing.assert_allclose(mean, sk_mean, rtol=1e-9, atol=1e-10)
    # sklearn's WhiteKernel also adds the jitter to the predictive variance; ours adds only the noise
    np.testing.assert_allclose(std**2 + JITTER, sk_std**2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gp.log_marginal_likelihood(), sk.log_marginal_likelihood_value_, rtol=1e-9)


def test_hundred_additions_equal_a_fresh_fit(latents):
    Xtr, ytr, Xte, yte, Xpool, ypool = latents
    Xadd, yadd = np.vstack([Xpool, Xte[:10]]), np.concatenate([ypool, yte[:10]])
    Xq = Xte[10:]
    gp = _fixed().fit(Xtr, ytr)
    gp.add(Xadd[:40], yadd[:40])  # a block ...
    for i in range(40, 100):  # ... and one at a time
        gp.add(Xadd[i], yadd[i])
    fresh = _fixed()
    fresh.set_hyperparameters(**gp.hyperparameters_, scaler=gp.scaler_)
    fresh.condition(np.vstack([Xtr, Xadd[:100]]), np.concatenate([ytr, yadd[:100]]))
    m1, s1 = gp.predict(Xq, return_std=True)
    m2, s2 = fresh.predict(Xq, return_std=True)
    assert gp.n_train_ == len(ytr) + 100
    np.testing.assert_allclose(m1, m2, rtol=1e-8)
    np.testing.assert_allclose(s1, s2, rtol=1e-8)


def test_marginal_likelihood_fit_converges_and_improves(latents):
    Xtr, ytr, Xte, yte, _, _ = latents
    start = _fixed(amplitude=1.0, length_scale=1.0, noise_variance=0.01).fit(Xtr, ytr)
    fitted = CFGP(max_fit_points=100, seed=1).fit(Xtr, ytr)
    assert fitted.fit_info_.converged and fitted.fit_info_.n_fit_points == 100
    assert fitted.fit_info_.iterations > 1
    # full-data likelihood at the fitted values beats the a = l = 1 start
    assert fitted.log_marginal_likelihood() > start.log_marginal_likelihood()
    assert fitted.n_train_ == len(ytr)  # conditions on all points, not only the fit subsample
    # the objective it reports is the marginal likelihood of its seeded 100-point subsample (NumPy reference)
    h = fitted.hyperparameters_
    idx = np.sort(np.random.default_rng(1).choice(len(ytr), 100, replace=False))
    Xs = reference.standardise(Xtr)[0][idx]
    ref = reference.neg_log_marginal_likelihood(Xs, ytr[idx], h["amplitude"], h["length_scale"],
                                                h["noise_variance"] + JITTER, h["mean_constant"])
    assert fitted.fit_info_.neg_log_marginal_likelihood == pytest.approx(ref, rel=1e-6)


# a GP with known hyper-parameters: Laplacian kernel on 600 points uniform in [0, 5]³
TRUE = {"amplitude": 0.8, "length_scale": 2.0, "noise_variance": 0.04, "mean_constant": -1.5}


def _draw_known_gp(n=600, d=3, seed=0):
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 5, (n, d))
    K = TRUE["amplitude"] ** 2 * np.exp(-cdist(X, X) / TRUE["length_scale"]) + TRUE["noise_variance"] * np.eye(n)
    return X, TRUE["mean_constant"] + np.linalg.cholesky(K) @ rng.standard_normal(n)


def _fisher_standard_errors(X):
    """Asymptotic standard errors of (log a, log l, log σ²ₙ, m, log a²/l) from the Fisher information at the
    true values: I_ij = ½ tr(K⁻¹ ∂ᵢK K⁻¹ ∂ⱼK) for the kernel parameters, 1ᵀK⁻¹1 for the mean."""
    from scipy.spatial.distance import cdist

    a, ell, noise = TRUE["amplitude"], TRUE["length_scale"], TRUE["noise_variance"]
    D = cdist(X, X)
    E = np.exp(-D / ell)
    Ki = np.linalg.inv(a**2 * E + noise * np.eye(len(X)))
    dK = [2 * a**2 * E, a**2 * E * D / ell, noise * np.eye(len(X))]
    info = np.zeros((4, 4))
    for i in range(3):
        for j in range(3):
            info[i, j] = 0.5 * np.sum((Ki @ dK[i]) * (Ki @ dK[j]).T)
    info[3, 3] = Ki.sum()
    cov = np.linalg.inv(info)
    micro = np.array([2.0, -1.0, 0, 0])  # a²/l: the combination the Laplacian kernel identifies best
    return np.append(np.sqrt(np.diag(cov)), np.sqrt(micro @ cov @ micro))


def test_fit_recovers_known_hyperparameters():
    """Data drawn from a GP with known a, l, σ²ₙ and mean. The maximum-likelihood estimate is asymptotically
    normal around the truth with the inverse Fisher information as covariance, so each estimate must lie within
    4 standard errors (computed here, at the truth). Measured on 20 seeds of this design: |z| ≤ 2.8, rms z
    0.82–0.98 per parameter, i.e. the asymptotic errors are honest at n = 600; the seed is fixed. Beyond the
    tolerance: the estimate must be a likelihood maximum (NumPy reference), at least as likely as the truth."""
    X, y = _draw_known_gp()
    gp = CFGP(feature_scaling=None, max_fit_points=len(y), seed=0).fit(X, y)
    assert gp.fit_info_.converged and gp.fit_info_.n_fit_points == len(y)
    h = gp.hyperparameters_
    est = np.array([np.log(h["amplitude"]), np.log(h["length_scale"]), np.log(h["noise_variance"]),
                    h["mean_constant"], np.log(h["amplitude"] ** 2 / h["length_scale"])])
    true = np.array([np.log(TRUE["amplitude"]), np.log(TRUE["length_scale"]), np.log(TRUE["noise_variance"]),
                     TRUE["mean_constant"], np.log(TRUE["amplitude"] ** 2 / TRUE["length_scale"])])
    se = _fisher_standard_errors(X)
    assert np.all(se < [0.2, 0.5, 0.5, 0.4, 0.2])  # the design identifies each parameter
    z = (est - true) / se
    assert np.all(np.abs(z) < 4), dict(zip(["log a", "log l", "log noise", "mean", "log a²/l"], z.round(2)))

    def nlml(theta):
        return reference.neg_log_marginal_likelihood(X, y, np.exp(theta[0]), np.exp(theta[1]),
                                                     np.exp(theta[2]) + JITTER, theta[3])

    theta = est[:4]
    assert nlml(theta) <= nlml(true[:4])
    for i in range(4):  # a maximum: no step of ±1e-3 along any parameter raises the likelihood
        for step in (-1e-3, 1e-3):
            assert nlml(theta + step * np.eye(4)[i]) >= nlml(theta) - 1e-9


def test_paper_mode(latents):
    Xtr, ytr, Xte, yte, _, _ = latents
    gp = CFGP.paper(max_iter=50).fit(Xtr, ytr)
    assert gp.hyperparameters_["noise_variance"] == 0.0 and gp.hyperparameters_["mean_constant"] == 0.0
    assert gp.scaler_.kind == "minmax"
    Z = gp.scaler_.transform(Xtr)
    assert Z.min() >= -1e-12 and Z.max() <= 1 + 1e-12
    mean = gp.predict(Xtr)
    np.testing.assert_allclose(mean, ytr, atol=1e-3)  # noise-free GP interpolates its training data


def test_sigma_small_at_training_points_and_roundtrip(latents):
    Xtr, ytr, Xte, _, _, _ = latents
    gp = CFGP(max_iter=30).fit(Xtr, ytr)
    _, s_train = gp.predict(Xtr, return_std=True, include_noise=False)
    _, s_far = gp.predict(Xtr + 50.0, return_std=True, include_noise=False)
    assert s_train.mean() < 0.5 * s_far.mean()
    np.testing.assert_allclose(s_far, gp.hyperparameters_["amplitude"], rtol=1e-6)  # prior σ far away
    clone = CFGP.from_dict(gp.to_dict()).condition(Xtr, ytr)
    np.testing.assert_array_equal(clone.predict(Xte), gp.predict(Xte))
    # with_params: the same hyper-parameters conditioned another way; the original is left as it was
    local = gp.with_params(method="local", n_neighbours=len(Xtr)).condition(Xtr, ytr)
    assert local.method_ == "local" and gp.method_ == "exact" and gp.get_params().get("method", "auto") == "auto"
    assert local.hyperparameters_ == gp.hyperparameters_
    np.testing.assert_allclose(local.predict(Xte, return_std=True), gp.predict(Xte, return_std=True), rtol=1e-6,
                               atol=1e-9)  # k ≥ n neighbours is the exact GP
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert gp.device_ == ("/GPU:0" if gpu else "/CPU:0")
    assert device_label().startswith("GPU (" if gpu else "CPU")
    assert gp._L.device.endswith("GPU:0" if gpu else "CPU:0")  # the factor really lives there


def test_bad_input(latents):
    Xtr, ytr, *_ = latents
    with pytest.raises(ValueError, match="finite"):
        _fixed().fit(np.where(np.arange(Xtr.size).reshape(Xtr.shape) == 5, np.nan, Xtr), ytr)
    with pytest.raises(ValueError, match="at least 2"):
        _fixed().fit(Xtr[:1], ytr[:1])
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        _fixed().fit(Xtr, ytr[:-1])


def test_kernel_is_tfp_matern_one_half(latents):
    from cfgp.gp import laplacian_kernel, pairwise_distances

    Xtr = latents[0][:60]
    gp = _fixed().fit(Xtr, latents[1][:60])
    Z = gp.scaler_.transform(Xtr)
    ours = gp.kernel_matrix(Z, Z).numpy()
    tfp_exact = laplacian_kernel(np.float64(0.8), np.float64(3.0)).apply(Z[:, None, :], Z[None, :, :],
                                                                         example_ndims=2).numpy()
    np.testing.assert_allclose(ours, tfp_exact, rtol=1e-12)
    np.testing.assert_array_equal(np.diag(ours), 0.8**2)  # exact zero self-distance
    assert np.all(np.diag(pairwise_distances(Z, Z).numpy()) == 0)


@pytest.mark.parametrize("mean,fit_noise", [("constant", True), ("zero", False)])
def test_numpy_and_tensorflow_fits_reach_the_same_optimum(latents, mean, fit_noise):
    """The CPU path (NumPy/SciPy, analytic gradients) and the GPU path (TFP) optimise one objective."""
    Xtr, ytr, _, _, Xpool, ypool = latents
    X, y = np.vstack([Xtr, Xpool]), np.concatenate([ytr, ypool])
    kw = dict(mean=mean, fit_noise=fit_noise, noise_variance=0.01 if fit_noise else 1e-3)
    a = CFGP(**kw).fit(X, y, backend="numpy")
    b = CFGP(**kw).fit(X, y, backend="tensorflow")
    assert a.fit_info_.converged and b.fit_info_.converged
    np.testing.assert_allclose(a.fit_info_.neg_log_marginal_likelihood, b.fit_info_.neg_log_marginal_likelihood,
                               rtol=1e-6)
    for k in ("amplitude", "length_scale", "noise_variance", "mean_constant"):
        np.testing.assert_allclose(a.hyperparameters_[k], b.hyperparameters_[k], rtol=2e-3, atol=1e-6, err_msg=k)
    # the fitted objective is the GP's own log marginal likelihood per point
    np.testing.assert_allclose(-a.log_marginal_likelihood() / len(y), a.fit_info_.neg_log_marginal_likelihood,
                               rtol=1e-6)


def test_numpy_gradient_matches_finite_differences(latents):
    from scipy.spatial.distance import cdist

    Xtr, ytr, *_ = latents
    gp = CFGP()
    Xs = (Xtr - Xtr.mean(0)) / Xtr.std(0).clip(1e-12)
    f = gp._nlml_numpy(cdist(Xs, Xs), ytr)
    theta = np.array([0.3, 1.2, np.log(0.02), -1.5])
    _, g = f(theta)
    for i in range(4):
        h = np.zeros(4)
        h[i] = 1e-6
        fd = (f(theta + h)[0] - f(theta - h)[0]) / 2e-6
        np.testing.assert_allclose(g[i], fd, rtol=1e-4, atol=1e-8, err_msg=f"θ[{i}]")


def test_unknown_backend_is_refused(latents):
    Xtr, ytr, *_ = latents
    with pytest.raises(ValueError, match="backend"):
        CFGP().fit(Xtr, ytr, backend="torch")


def test_held_out_fit_predicts_the_held_out_materials_better(latents):
    """Fitted to predict held-out materials, the GP's held-out density beats the marginal-likelihood fit's."""
    from scipy.stats import norm

    Xtr, ytr, _, _, Xpool, ypool = latents
    Xf, yf, Xh, yh = Xtr, ytr, Xpool[:60], ypool[:60]
    held = CFGP().fit_held_out(Xf, yf, Xh, yh)
    info = held.fit_info_.history[0]
    assert info["end"] < info["start"] and info["n_held"] == 60
    assert held.n_train_ == len(yf) + len(yh)  # conditioned on both afterwards

    def held_nlpd(gp):
        g = CFGP.from_dict(gp.to_dict()).condition(Xf, yf)
        mu, sd = g.predict(Xh, return_std=True)
        return -norm.logpdf(yh, mu, sd).mean()

    ml = CFGP().fit(np.vstack([Xf, Xh]), np.concatenate([yf, yh]))
    assert held_nlpd(held) == pytest.approx(info["end"], rel=1e-6)
    assert held_nlpd(held) < held_nlpd(ml)


def test_pipeline_held_out_fit_uses_only_megnet_validation_and_train(tiny_run, monkeypatch, tmp_path):
    """The held-out fit sees the train split only: MEGNet's early-stopping materials as the held-out part."""
    import json

    from cfgp.pipeline import Run, fit_gp

    seen = {}
    real = CFGP.fit_held_out

    def spy(self, X_fit, y_fit, X_held, y_held):
        seen["fit"], seen["held"] = X_fit, X_held
        return real(self, X_fit, y_fit, X_held, y_held)

    monkeypatch.setattr(CFGP, "fit_held_out", spy)
    run = Run(tiny_run.dir, write_dir=tmp_path)  # the fit goes to a scratch folder, not the shared fixture's gp.json
    gp = fit_gp(run, held_out=True)
    X = run.latents()
    rows = {tuple(np.round(x, 10)) for x in X}
    as_rows = lambda A: [int(np.flatnonzero((np.abs(X - a) < 1e-10).all(axis=1))[0]) for a in A]  # noqa: E731
    held, fit = as_rows(seen["held"]), as_rows(seen["fit"])
    val_ids = json.loads((tiny_run.dir / "training" / "summary.json").read_text())["val_ids"]
    assert sorted(run.materials.ids[held]) == sorted(val_ids)
    assert set(fit) | set(held) == set(run.split.train) and not set(fit) & set(held)
    assert not set(fit + held) & set(run.split.test)
    assert len(rows) == len(X)
    saved = json.loads((tmp_path / "gp.json").read_text())
    assert "held-out" in saved["key"]["objective"] and saved["gp"]["hyperparameters"] == gp.hyperparameters_


def test_cfgp_is_a_scikit_learn_estimator():
    """clone, get_params(deep)/set_params and a subset of scikit-learn's own estimator checks; a cloned GP fits
    to the same hyper-parameters as the original on real latents."""
    from sklearn.base import clone
    from sklearn.utils import estimator_checks as ec

    gp = CFGP(length_scale=2.0, max_iter=30, method="exact", n_neighbours=7)
    params = gp.get_params(deep=True)
    assert params["length_scale"] == 2.0 and params["n_neighbours"] == 7 and params["method"] == "exact"
    twin = clone(gp)
    assert twin is not gp and twin.get_params() == params
    assert gp.set_params(max_iter=40, seed=3) is gp and gp.max_iter == 40 and gp.seed == 3
    with pytest.raises(ValueError, match="Invalid parameter"):
        gp.set_params(lengthscale=1.0)
    # the subset: construction, parameters and fit's contract (each fits a real GP on scikit-learn's data)
    for check in (ec.check_parameters_default_constructible, ec.check_no_attributes_set_in_init,
                  ec.check_get_params_invariance, ec.check_set_params, ec.check_dont_overwrite_parameters,
                  ec.check_estimators_fit_returns_self, ec.check_fit2d_1sample, ec.check_estimators_nan_inf,
                  ec.check_fit_score_takes_y, ec.check_regressors_train):
        check(type(gp).__name__, CFGP(max_iter=20, method="exact"))
    # the seeded fit is reproducible through clone
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=60)
    a, b = CFGP(max_iter=30).fit(X, y), clone(CFGP(max_iter=30)).fit(X, y)
    assert a.hyperparameters_ == pytest.approx(b.hyperparameters_)
    assert 0.5 < a.score(X, y) <= 1.0


def test_smoother_weights_and_posterior_covariance_equal_a_direct_solve(latents):
    """W = k_xᵀ(K + σ²I)⁻¹ and K** − k_xᵀ(K + σ²I)⁻¹k_x against numpy's dense solve on the tiny run's latents; the
    weights reproduce the posterior mean."""
    Xtr, ytr, Xte, _, _, _ = latents
    gp = _fixed().fit(Xtr, ytr)
    S, Q = gp.scaler_.transform(Xtr), gp.scaler_.transform(Xte[:5])

    def k(A, B):
        d = np.sqrt(np.maximum(((A[:, None, :] - B[None, :, :]) ** 2).sum(-1), 0))
        return 0.8**2 * np.exp(-d / 3.0)

    K = k(S, S) + (0.01 + JITTER) * np.eye(len(S))
    Ks = k(Q, S)
    W = gp.smoother_weights(Xte[:5])
    np.testing.assert_allclose(W, np.linalg.solve(K, Ks.T).T, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(gp.mean_constant_ + W @ (ytr - gp.mean_constant_), gp.predict(Xte[:5]), atol=1e-9)
    cov = gp.posterior_covariance(Xte[:5])
    np.testing.assert_allclose(cov, k(Q, Q) - Ks @ np.linalg.solve(K, Ks.T), rtol=1e-6, atol=1e-10)
    _, std = gp.predict(Xte[:5], return_std=True, include_noise=False)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), std, rtol=1e-6)
