"""The real megnet MEGNet: training with checkpoints and resume, latents, save/load round trip."""

import json
import logging
import warnings

import numpy as np
import pytest

from cfgp.featurize import MEGNetFeaturizer, MEGNetSettings, training_seconds
from cfgp.pipeline import LATENTS_FILE, featurize
from tests.conftest import FIXTURES


def test_latents_shape_and_reload_identical(tiny_run, tmp_path):
    feat = tiny_run.featurizer()
    structures = tiny_run.materials.structures(range(12))
    X = feat.transform(structures)
    assert X.shape == (12, 32) and np.isfinite(X).all()
    assert X.std(axis=0).max() > 0  # not a constant vector
    feat.save(tmp_path)
    again = MEGNetFeaturizer.load(tmp_path)
    np.testing.assert_array_equal(again.transform(structures), X)
    assert again.weights_hash() == feat.weights_hash()
    # the cached latents of the run are these latents
    np.testing.assert_allclose(tiny_run.latents()[:12], X, rtol=1e-5, atol=1e-6)


def test_loading_a_trained_model_logs_nothing_about_state_it_replaces(tiny_run, caplog):
    """A trained run's weights file carries Adam's slots (for resuming): loading it for inference used to log
    tf-keras's "Skipping variable loading for optimizer" and megnet's unseeded-initialiser warning into every
    server log. Neither is logged now, and the filter is gone afterwards (other absl warnings still show)."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        feat = tiny_run.featurizer()
    assert feat.weights_hash()
    assert [r.getMessage() for r in caplog.records if "Skipping variable loading" in r.getMessage()] == []
    assert [str(w.message) for w in caught if "unseeded" in str(w.message)] == []
    assert logging.getLogger("absl").filters == []


def test_latent_cache_is_reused_and_keyed_by_model(tiny_run):
    path = tiny_run.dir / LATENTS_FILE
    before = path.stat().st_mtime_ns
    featurize(tiny_run, progress=False)
    assert path.stat().st_mtime_ns == before  # same model hash: reloaded, not recomputed
    z = np.load(path)
    assert str(z["model_hash"]) == tiny_run.featurizer().weights_hash()


@pytest.mark.slow
def test_training_resumes_where_it_stopped(tiny_run, tmp_path):
    m, sp = tiny_run.materials, tiny_run.split
    tr, va = sp.train[:60], sp.train[60:80]
    s, vs = m.structures(tr), m.structures(va)
    settings = MEGNetSettings(seed=5)
    ckpt = tmp_path / "ckpt"
    first = MEGNetFeaturizer(settings).fit(s, m.y[tr], val_structures=vs, val_y=m.y[va], epochs=2,
                                           checkpoint_dir=ckpt, progress=False)
    assert first.train_state_.epoch == 2
    state = json.loads((ckpt / "train_state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    resumed = MEGNetFeaturizer(settings).fit(s, m.y[tr], val_structures=vs, val_y=m.y[va], epochs=3,
                                             checkpoint_dir=ckpt, progress=False)
    # one more epoch, not three: history continues without repeats
    assert [h["epoch"] for h in resumed.train_state_.history] == [1, 2, 3]
    # the time of both sittings is counted, although each sitting's epoch log restarts at zero
    h = resumed.train_state_.history
    assert h[1]["seconds"] > 0.2
    assert training_seconds(h) == pytest.approx(h[1]["seconds"] + h[2]["seconds"], abs=0.11)
    assert training_seconds(h, "cpu_seconds") == pytest.approx(h[1]["cpu_seconds"] + h[2]["cpu_seconds"], abs=0.11)
    assert h[1]["cpu_seconds"] > 0.2
    # asking a finished run again returns its state (no retraining, no AttributeError)
    again = MEGNetFeaturizer(settings).fit(s, m.y[tr], val_structures=vs, val_y=m.y[va], epochs=3,
                                           checkpoint_dir=ckpt, progress=False)
    assert again.train_state_.epoch == 3 and again.train_state_.finished
    with pytest.raises(ValueError, match="other settings"):
        MEGNetFeaturizer(MEGNetSettings(seed=6)).fit(s, m.y[tr], val_structures=vs, val_y=m.y[va], epochs=3,
                                                     checkpoint_dir=ckpt, progress=False)


def test_megnet_learns_something(tiny_run):
    """After 15 epochs on 135 materials the network beats predicting a constant on held-out materials."""
    feat = tiny_run.featurizer()
    m, sp = tiny_run.materials, tiny_run.split
    test = sp.test[:40]
    pred = feat.predict(m.structures(test))
    y = m.y[test]
    assert np.mean(np.abs(pred - y)) < np.mean(np.abs(y - np.median(m.y[sp.train])))


@pytest.mark.slow
def test_early_stopping_counts_only_meaningful_progress(tiny_run, tmp_path):
    """With min_rel_improvement, an improvement smaller than that share does not reset the patience."""
    m, sp = tiny_run.materials, tiny_run.split
    tr, va = sp.train[:40], sp.train[40:60]
    feat = MEGNetFeaturizer(MEGNetSettings(seed=7)).fit(
        m.structures(tr), m.y[tr], val_structures=m.structures(va), val_y=m.y[va], epochs=20, patience=2,
        min_rel_improvement=0.99, checkpoint_dir=tmp_path / "ckpt", progress=False)
    state = feat.train_state_
    assert state.epoch == 3 and state.plateau_epoch == 1  # only the first epoch counted as progress
    assert state.reason == "early stop: no improvement by 99 % for 2 epochs"


def test_a_crystal_without_bonds_is_reported_with_the_cut_off():
    """Cs metal (mp-1, bcc, nearest neighbours 5.29 Å): no two atoms within a 4 Å cut-off, so there is no crystal
    graph. The record is skipped with a message that says so and names the cut-off — megnet's own error spoke of a
    cut-off 'too small' — and with on_error='raise' it is a DataError with the same text."""
    from pymatgen.core import Structure

    from cfgp.data import DataError

    cs = Structure.from_file(FIXTURES / "mp-1_Cs.cif")
    feat = MEGNetFeaturizer(MEGNetSettings(cutoff=4.0))
    graphs, kept, issues = feat.to_graphs([cs], names=["mp-1"])
    assert graphs == [] and len(kept) == 0
    assert [i.record for i in issues] == ["mp-1"]
    assert "no two atoms within this MEGNet's 4 Å cut-off" in issues[0].reason
    with pytest.raises(DataError, match="mp-1: no two atoms within this MEGNet's 4 Å cut-off"):
        feat.to_graphs([cs], names=["mp-1"], on_error="raise")


def test_the_forward_pass_is_traced_once_for_every_graph_size_and_sees_new_weights(tiny_run, small_records):
    """Latents come from one tf.function with the graph dimensions free: batches of 1, 2 and 9 crystals trace it
    once (Keras's predict_on_batch traced twice before relaxing the shapes), give Keras's numbers, and weights
    set on the network afterwards (a rejected fine-tuning round puts the old ones back) change what it gives."""
    from cfgp.data import parse_cif

    feat = MEGNetFeaturizer.load(tiny_run.dir)
    graphs, _, _ = feat.to_graphs([parse_cif(r["cif"]) for r in small_records[:12]], checked=True)
    batches = [feat.graph_inputs(graphs[a:b]) for a, b in ((0, 1), (1, 3), (3, 12))]
    ours = [feat.transform_inputs([b]) for b in batches]
    fn, _ = feat._forward()
    assert fn.experimental_get_tracing_count() == 1
    keras = [np.asarray(feat.latent_model.predict_on_batch(b))[0] for b in batches]
    for a, b in zip(ours, keras):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    weights = feat.model.model.get_weights()
    feat.model.model.set_weights([w * 0.9 for w in weights])
    scaled = feat.transform_inputs(batches[2:])
    assert np.abs(scaled - ours[2]).max() > 1e-3
    np.testing.assert_allclose(scaled, np.asarray(feat.latent_model.predict_on_batch(batches[2]))[0],
                               rtol=1e-5, atol=1e-6)
    feat.model.model.set_weights(weights)
    np.testing.assert_allclose(feat.transform_inputs(batches[2:]), ours[2], rtol=1e-6, atol=1e-7)
    assert fn.experimental_get_tracing_count() == 1


def test_network_inputs_are_megnets_batch_arrays_bit_for_bit(tiny_run, small_records):
    """graph_inputs (in-place Gaussian expansion, index offsets with NumPy) makes exactly the arrays megnet's
    batch generator makes (cast to float32 as the network does), so the latents cannot change with it."""
    from cfgp.data import parse_cif
    from cfgp.featurize import _single_precision

    feat = tiny_run.featurizer()
    structures = [parse_cif(r["cif"]) for r in small_records[:60]]
    graphs, kept, _ = feat.to_graphs(structures, checked=True)
    ours = feat.graph_inputs(graphs)
    megnet = _single_precision(feat._generator(graphs, None, shuffle=False, batch_size=len(graphs))[0])
    assert len(ours) == len(megnet) == 7
    for a, b in zip(ours, megnet):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    assert np.array_equal(feat.transform_inputs([ours]), feat.transform_graphs(graphs, batch_size=len(graphs)))
    # the in-place bond expansion (inputs and every training batch) is megnet's own, bit for bit
    from megnet.data.graph import GaussianDistance

    converter = feat.model.graph_converter.bond_converter
    assert type(converter).__name__ == "InPlaceGaussianDistance"
    distances = np.concatenate([g["bond"] for g in graphs])
    original = GaussianDistance(converter.centers, converter.width).convert(distances)
    assert original.dtype == converter.convert(distances).dtype and np.array_equal(original, converter.convert(distances))


def test_training_seconds_add_up_every_sitting_of_a_resumed_run():
    # three sittings (the epoch log restarts at each): 30 + 25 + 12 s; a single sitting is its last value
    history = [{"epoch": e, "seconds": s} for e, s in enumerate([10, 20, 30, 5, 25, 12], start=1)]
    assert training_seconds(history) == 67.0
    assert training_seconds(history[:3]) == 30.0
    assert training_seconds([]) == 0.0
    # CPU time is summed the same way; an epoch log from before it was logged gives no CPU figure, not a wrong one
    assert training_seconds([{**h, "cpu_seconds": h["seconds"] / 2} for h in history], "cpu_seconds") == 33.5
    assert training_seconds(history, "cpu_seconds") is None


def test_training_progress_says_when_the_rule_can_stop_a_run_and_nothing_once_finished():
    from cfgp.featurize import training_progress

    state = {"epoch": 120, "best_epoch": 90, "best_val_mae": 0.07, "plateau_epoch": 80, "finished": False,
             "reason": ""}
    p = training_progress(state, patience=100)
    assert p["earliest_stop"] == 180 and p["epoch"] == 120 and p["best_val_mae"] == 0.07
    assert training_progress({**state, "finished": True, "reason": "early stop"}, 100)["earliest_stop"] is None
    assert training_progress({"epoch": 0}, 100)["earliest_stop"] is None


def test_training_keeps_the_memory_it_frees_and_gives_it_back_afterwards():
    """Inside freed_memory_kept (what fit_graphs trains in), allocating, writing and freeing the same 64 MB block 30
    times faults its pages in about once; under glibc's defaults, before and after, each time (a block that large
    gets its own mapping, unmapped when freed). malloc itself, as TensorFlow's CPU allocator calls it (NumPy's large
    arrays ask for huge pages, which hide the faults). In a fresh process: the setting is process-wide."""
    import subprocess
    import sys

    from cfgp.featurize import libc

    if libc() is None:
        pytest.skip("no glibc: freed_memory_kept does nothing here")
    code = (
        "import ctypes, resource\n"
        "from cfgp.featurize import freed_memory_kept, libc\n"
        "lib = libc()\n"
        "lib.malloc.restype, lib.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]\n"
        "lib.free.argtypes = [ctypes.c_void_p]\n"
        "def faults():\n"
        "    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    for _ in range(30):\n"
        "        p = lib.malloc(64 << 20)\n"
        "        ctypes.memset(p, 1, 64 << 20)\n"
        "        lib.free(p)\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0\n"
        "before = faults()\n"
        "with freed_memory_kept():\n"
        "    kept = faults()\n"
        "print(before, kept, faults())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    before, kept, after = map(int, out.stdout.split())
    pages = (64 << 20) // 4096  # one touch of the array
    assert before > 20 * pages and after > 20 * pages, (before, after)  # faulted in again each time
    assert kept < 3 * pages, (kept, pages)  # the freed block reused
