"""Nearest training materials in the GP's latent space (cfgp.neighbours), checked against a brute-force search and
the GP's own smoother on the tiny real run."""

import numpy as np
import pytest

from cfgp.neighbours import LatentNeighbours
from cfgp.pipeline import load_gp
from cfgp.results import load_results


@pytest.fixture(scope="module")
def nbrs(tiny_run):
    return LatentNeighbours.of(load_results(tiny_run))


def _brute(nbrs, row):
    d = np.linalg.norm(nbrs.Xs[nbrs.train] - nbrs.Xs[row], axis=1)
    d[nbrs.train == row] = np.inf
    return nbrs.train[np.argmin(d)], d.min()


def test_nearest_matches_brute_force_and_never_returns_itself(nbrs):
    rows = np.concatenate([nbrs.train[:5], nbrs.test[:5]])
    got, dist = nbrs.nearest(rows)
    for r, g, d in zip(rows, got, dist):
        want, wd = _brute(nbrs, r)
        assert g != r and d == pytest.approx(wd) and np.linalg.norm(nbrs.Xs[g] - nbrs.Xs[r]) == pytest.approx(wd)
    assert len(nbrs.test_distances) == len(nbrs.test) and np.all(np.diff(nbrs.test_distances) >= 0)


def test_explain_reads_the_gps_smoother_and_posterior(tiny_run, nbrs):
    row = int(nbrs.test[0])
    nb = nbrs.explain(row)
    assert nb.row == row and nb.neighbour in set(nbrs.train) and nb.n_train == len(nbrs.train)
    gp = load_gp(tiny_run)
    w = gp.smoother_weights(nbrs.X[[row]])[0]
    assert nb.weight == pytest.approx(w[list(nbrs.train).index(nb.neighbour)])
    assert nb.weight_rank == int((np.abs(w) > abs(nb.weight)).sum()) + 1
    assert 0 < nb.top_weight_share <= 1 and -1 <= nb.posterior_correlation <= 1
    # the percentile places the distance among the test split's own: the farthest test material is at 100 %
    far = int(nbrs.test[np.argmax(nbrs.nearest(nbrs.test)[1])])
    assert nbrs.explain(far).percentile == pytest.approx(100.0)
    assert 0 < nb.percentile <= 100 and nb.typical == pytest.approx(np.median(nbrs.test_distances))


def test_a_material_without_a_latent_is_named(nbrs):
    X = nbrs.X.copy()
    X[int(nbrs.test[0])] = np.nan
    broken = LatentNeighbours(nbrs.gp, X, nbrs.train, nbrs.test, nbrs.ids)
    with pytest.raises(ValueError, match=str(nbrs.ids[int(nbrs.test[0])])):
        broken.explain(int(nbrs.test[0]))
    assert int(nbrs.test[0]) not in set(broken.test)
