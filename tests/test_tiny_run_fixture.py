"""The committed tiny run (``tests/fixtures/tiny_run``, which the other tests copy) is what its recipe makes today:
built again from the fixture oxides, the split, the network, its latents and the GP are the committed ones. A change
to the data reading, the training or the featurisation that alters the tests' run fails here; then re-make it with
``python tests/fixtures/make_tiny_run.py``."""

import json

import numpy as np
import pytest

from tests.fixtures.make_tiny_run import TINY_RUN, build_tiny_run, committed_files

pytestmark = pytest.mark.slow


def test_the_committed_tiny_run_is_what_its_recipe_builds(tmp_path):
    built = tmp_path / "tiny_run"
    build_tiny_run(built)
    assert committed_files(built) == committed_files(TINY_RUN)
    for name in ("run.json", "split.json", "megnet.settings.json", "motifs.json"):
        assert json.loads((built / name).read_text()) == json.loads((TINY_RUN / name).read_text()), name
    new, old = np.load(built / "latents.npz"), np.load(TINY_RUN / "latents.npz")
    assert str(new["model_hash"]) == str(old["model_hash"])  # the same trained weights
    assert (new["material_id"] == old["material_id"]).all()
    np.testing.assert_allclose(new["X"], old["X"], rtol=0, atol=1e-6)
    gp_new, gp_old = json.loads((built / "gp.json").read_text()), json.loads((TINY_RUN / "gp.json").read_text())
    assert _close(gp_new, gp_old), (gp_new, gp_old)
    history = [h["val_mae"] for h in json.loads((TINY_RUN / "training" / "train_state.json").read_text())["history"]]
    assert [h["val_mae"] for h in json.loads((built / "training" / "train_state.json").read_text())["history"]] \
        == pytest.approx(history, rel=1e-6)


def _close(a, b) -> bool:
    """Equal JSON values, floats to a relative 1e-6; a timing (``seconds``) only needs to be there."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(k == "seconds" or _close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return b == pytest.approx(a, rel=1e-6)
    return a == b
