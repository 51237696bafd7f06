"""The Laplacian-kernel GP on real MEGNet latents: scikit-learn cross-check, updates, fitting."""

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from cfgp.gp import JITTER, CFGP, device_label


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
    h = fitted.hyperparameters_
    assert h["amplitude"] > 0 and h["length_scale"] > 0 and h["noise_variance"] > 0


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
    assert gp.device_ in ("/CPU:0", "/GPU:0") and device_label().split()[0] in ("CPU", "GPU")


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
