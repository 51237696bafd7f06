"""The committed tiny run (``tests/fixtures/tiny_run``, which the other tests copy) is what its recipe makes today:
built again from the fixture oxides, the split, the network, its latents, the GP and the domain model are the committed ones. A change
to the data reading, the training or the featurisation that alters the tests' run fails here; then re-make it with
``python tests/fixtures/make_tiny_run.py``.

"The same" is up to floating-point round-off, which differs between CPUs (oneDNN picks its kernels by instruction
set) and grows over 15 epochs of training: between the machine that committed the run and an AMD EPYC with AVX-512,
the weights differ by up to 1.1e-4 of each tensor's largest value, the latents by 1.9e-6 of theirs, the GP's numbers
by 1.8e-5 relative and the validation MAEs by 1e-6 relative. The hashes of the exact bytes (the weights' hash, and
the GP's key that names it) therefore differ between machines and are not compared; a change of recipe moves these
numbers by orders of magnitude more than the tolerances below."""

import json

import numpy as np
import pytest

from tests.fixtures.make_tiny_run import TINY_RUN, build_tiny_run, committed_files

pytestmark = pytest.mark.slow
ROUNDOFF = 1e-3  # relative: ~10x the largest round-off difference measured between two CPUs (docstring)
BYTE_HASHES = {"latents_hash", "seconds"}  # a hash of exact bytes, and a timing: present, not compared


def test_the_committed_tiny_run_is_what_its_recipe_builds(tmp_path):
    built = tmp_path / "tiny_run"
    build_tiny_run(built)
    assert committed_files(built) == committed_files(TINY_RUN)
    for name in ("run.json", "split.json", "megnet.settings.json", "motifs.json"):
        assert json.loads((built / name).read_text()) == json.loads((TINY_RUN / name).read_text()), name
    w_new, w_old = _weights(built), _weights(TINY_RUN)
    assert [w.shape for w in w_new] == [w.shape for w in w_old]
    for k, w in enumerate(w_old):  # the same trained weights
        np.testing.assert_allclose(w_new[k], w, rtol=0, atol=ROUNDOFF * np.abs(w).max(), err_msg=f"weight {k}")
    new, old = np.load(built / "latents.npz"), np.load(TINY_RUN / "latents.npz")
    assert (new["material_id"] == old["material_id"]).all()
    np.testing.assert_allclose(new["X"], old["X"], rtol=0, atol=ROUNDOFF * np.abs(old["X"]).max())
    gp_new, gp_old = json.loads((built / "gp.json").read_text()), json.loads((TINY_RUN / "gp.json").read_text())
    assert _close(gp_new, gp_old), (gp_new, gp_old)
    dom_new, dom_old = (json.loads((d / "domain.json").read_text()) for d in (built, TINY_RUN))
    assert _close(dom_new, dom_old), (dom_new, dom_old)  # threshold, calibration, σ_emb of its 10 drawn oxides
    history = [h["val_mae"] for h in json.loads((TINY_RUN / "training" / "train_state.json").read_text())["history"]]
    assert [h["val_mae"] for h in json.loads((built / "training" / "train_state.json").read_text())["history"]] \
        == pytest.approx(history, rel=ROUNDOFF)


def _weights(run_dir) -> list[np.ndarray]:
    """The network's weight arrays as the run loads them (the arrays ``weights_hash`` hashes)."""
    from cfgp.featurize import MEGNetFeaturizer

    return MEGNetFeaturizer.load(run_dir).model.model.get_weights()


def _close(a, b) -> bool:
    """Equal JSON values, floats to ``ROUNDOFF`` relative; a hash of exact bytes or a timing only needs to be there."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(k in BYTE_HASHES or _close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return b == pytest.approx(a, rel=ROUNDOFF, abs=1e-9)
    return a == b
