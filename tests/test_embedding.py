import numpy as np
import pytest

from cfgp.embedding import TSNESettings, place, run_tsne, tsne, tsne_cache_path
from cfgp.pipeline import LATENTS_FILE


def test_run_tsne_is_cached_per_settings(tiny_run):
    calls = []
    s = TSNESettings(perplexity=10, n_iter=100, early_exaggeration_iter=50)
    xy = run_tsne(tiny_run, s, callback=lambda i, kl, emb: calls.append((i, kl)), callback_every=25)
    assert xy.shape == (len(tiny_run.materials), 2) and np.isfinite(xy).all()
    assert len(calls) >= 4 and all(np.isfinite(kl) for _, kl in calls)
    path = tiny_run.dir / s.filename()
    mtime = path.stat().st_mtime_ns
    again = run_tsne(tiny_run, s)
    np.testing.assert_array_equal(again, xy)
    assert path.stat().st_mtime_ns == mtime  # reloaded, not recomputed
    other = run_tsne(tiny_run, TSNESettings(perplexity=10, n_iter=100, early_exaggeration_iter=50, seed=1))
    assert not np.allclose(other, xy)


def test_a_reader_keeps_its_map_in_the_user_cache_not_in_the_run(tiny_run):
    """The dashboard reads a run: a map the run lacks is computed once, kept in the user cache and reloaded from
    there; the run folder gains no file."""
    s = TSNESettings(perplexity=10, n_iter=60, early_exaggeration_iter=20, seed=5)
    before = sorted(p.name for p in tiny_run.dir.rglob("*"))
    xy = run_tsne(tiny_run, s, reader=True)
    assert sorted(p.name for p in tiny_run.dir.rglob("*")) == before
    assert not (tiny_run.dir / s.filename()).exists()
    cached = tsne_cache_path(s, str(np.load(tiny_run.path(LATENTS_FILE))["model_hash"]),
                             tiny_run.materials.ids.astype(str))
    assert cached.exists()
    mtime = cached.stat().st_mtime_ns
    np.testing.assert_array_equal(run_tsne(tiny_run, s, reader=True), xy)  # reloaded from the cache
    assert cached.stat().st_mtime_ns == mtime
    cached.write_bytes(b"PK\x03\x04 torn")  # a torn or foreign cache file: computed anew, not an error
    np.testing.assert_array_equal(run_tsne(tiny_run, s, reader=True), xy)
    # `cfgp tsne` (a writer) puts the map it computes into the run
    run_tsne(tiny_run, s, recompute=True)
    assert (tiny_run.dir / s.filename()).exists()


def test_tsne_keeps_neighbours_close(tiny_run):
    X = tiny_run.latents()
    xy = tsne(X, TSNESettings(perplexity=10, n_iter=150, early_exaggeration_iter=50))
    d_lat = np.linalg.norm(X[:, None] - X[None], axis=2)
    np.fill_diagonal(d_lat, np.inf)
    nn = d_lat.argmin(axis=1)
    d_map = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    # a material's nearest latent neighbour is, on the map, closer than a typical material
    assert np.median(d_map[np.arange(len(X)), nn]) < 0.5 * np.median(d_map)
    with pytest.raises(ValueError, match="too few"):
        tsne(X[:20], TSNESettings(perplexity=30))


def test_place_new_points_near_their_neighbours():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    xy = X[:, :2] * 10
    new = place(X, xy, X[:3] + 1e-6, k=5)
    np.testing.assert_allclose(new, xy[:3], atol=1e-2)
