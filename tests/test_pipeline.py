"""Run folders' AL histories: names are built from settings, listings read the settings back from each header."""

import json
from pathlib import Path

import pytest

from cfgp.al import HEADER_MAX_BYTES, ALSettings, History, HistoryError
from cfgp.al_metrics import runs_by_seed
from cfgp.pipeline import AL_DIR, RUN_FILE, Run, al_history_name, load_al_histories


def _run(folder: Path, write_dir: Path | None = None) -> Run:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_FILE).write_text("{}")
    return Run(folder, write_dir)


def _history(path: Path, settings: ALSettings, cycles: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h = History(path)
    h.append({"settings": settings.to_dict(), "gp": {}, "latents_hash": "x", "split": {}})
    for c in range(cycles + 1):
        h.append({"cycle": c, "picked": [f"m{c}"] if c else [], "n_train": 10 + c, "mae": 1.0 / (c + 1)})
    return path


def test_the_name_is_built_from_the_settings():
    assert al_history_name(ALSettings(strategy="entropy", seed=0)) == "entropy-b1-pool7195-s0.jsonl"
    assert al_history_name(ALSettings(strategy="random", batch_size=10, seed=3, pool_size=None, refit_every=50)) \
        == "random-b10-poolall-refit50-s3.jsonl"


def test_a_renamed_history_is_listed_with_its_headers_settings(tmp_path):
    """A file name that says something else (strategy, batch, seed) changes nothing: the header decides."""
    run = _run(tmp_path / "run")
    entropy = ALSettings(strategy="entropy", batch_size=10, seed=7)
    _history(run.dir / AL_DIR / "random-b1-pool7195-s0.jsonl", entropy)
    _history(run.dir / AL_DIR / "anything.jsonl", ALSettings(strategy="random", seed=2))
    saved_entropy, saved_random = sorted(run.al_histories(), key=lambda s: s.settings.strategy)
    assert saved_entropy.settings == entropy and saved_entropy.path.name == "random-b1-pool7195-s0.jsonl"
    assert saved_entropy.label == "entropy-b10-pool7195" and saved_entropy.stem == "entropy-b10-pool7195-s7"
    assert saved_random.path.name == "anything.jsonl" and saved_random.stem == "random-b1-pool7195-s2"
    groups = load_al_histories(run)
    assert sorted(groups) == ["entropy-b10-pool7195", "random-b1-pool7195"]
    assert groups["entropy-b10-pool7195"].settings.batch_size == 10 and len(groups["entropy-b10-pool7195"]) == 1
    assert list(runs_by_seed(run)["entropy-b10-pool7195"]) == [7]
    assert list(runs_by_seed(run)["random-b1-pool7195"]) == [2]


def test_a_corrupt_or_foreign_header_is_an_error_naming_the_file(tmp_path):
    run = _run(tmp_path / "run")
    good = _history(run.dir / AL_DIR / "a.jsonl", ALSettings(seed=0))
    bad = run.dir / AL_DIR / "entropy-b1-pool7195-s1.jsonl"
    bad.write_text('{"settings": {"strategy": "entropy", "seed": 1\n{"cycle": 0}\n')
    with pytest.raises(HistoryError, match=f"{bad}, line 1: not a JSON record"):
        run.al_histories()
    bad.write_text(json.dumps({"settings": {"strategy": "entrop", "seed": 1}}) + "\n")
    with pytest.raises(HistoryError, match=f"{bad}, line 1: the header's settings are not valid.*unknown strategy"):
        run.al_histories()
    bad.write_text(json.dumps({"settings": {"strategy": "entropy", "colour": "red"}}) + "\n")
    with pytest.raises(HistoryError, match=f"{bad}, line 1: the header's settings are not valid.*colour"):
        run.al_histories()
    bad.write_text(json.dumps({"cycle": 0, "mae": 0.1}) + "\n")
    with pytest.raises(HistoryError, match=f"{bad}, line 1: the header holds no settings"):
        run.al_histories()
    bad.unlink()
    assert [s.path for s in run.al_histories()] == [good]


def test_two_files_of_the_same_run_are_refused_naming_both(tmp_path):
    run = _run(tmp_path / "run")
    a = _history(run.dir / AL_DIR / "entropy-b1-pool7195-s0.jsonl", ALSettings(seed=0, cycles=10))
    b = _history(run.dir / AL_DIR / "backup.jsonl", ALSettings(seed=0, cycles=20))
    with pytest.raises(HistoryError, match=f"{b} and {a} hold the same run \\(entropy-b1-pool7195-s0\\)"):
        run.al_histories()


def test_the_listing_reads_headers_alone_and_skips_an_unfinished_one(tmp_path):
    """Only the first line is read: a garbled record further down (read() reports it) does not stop a listing;
    a header still being written is left out; a first line past the bound is refused unread."""
    run = _run(tmp_path / "run")
    ok = _history(run.dir / AL_DIR / "x.jsonl", ALSettings(seed=4))
    with open(ok, "ab") as fh:
        fh.write(b"garbled\n{}\n")
    with pytest.raises(HistoryError, match="line 6"):
        History(ok).read()
    (run.dir / AL_DIR / "torn.jsonl").write_bytes(b'{"settings": {"strat')
    (run.dir / AL_DIR / "empty.jsonl").write_bytes(b"")
    assert [(s.path.name, s.settings.seed) for s in run.al_histories()] == [("x.jsonl", 4)]
    big = run.dir / AL_DIR / "big.jsonl"
    big.write_bytes(b"[" * (HEADER_MAX_BYTES + 10))
    with pytest.raises(HistoryError, match=f"{big}, line 1: over"):
        run.al_histories()


def test_the_users_history_of_a_name_takes_the_place_of_the_committed_one(tmp_path):
    """As for the shipped default: the user's folder overlays the run's own; committed_only lists the run's own."""
    run = _run(tmp_path / "run", write_dir=tmp_path / "mine")
    name = al_history_name(ALSettings(strategy="random", seed=1))
    committed = _history(run.dir / AL_DIR / name, ALSettings(strategy="random", seed=1, cycles=3), cycles=3)
    extended = _history(run.write_dir / AL_DIR / name, ALSettings(strategy="random", seed=1, cycles=5), cycles=5)
    assert run.al_history_path(ALSettings(strategy="random", seed=1)) == extended
    assert [s.path for s in run.al_histories()] == [extended]
    assert [s.path for s in run.al_histories(committed_only=True)] == [committed]
    assert [len(h) for h in load_al_histories(run)["random-b1-pool7195"]] == [6]


def test_histories_of_different_lengths_compare_at_the_labels_all_of_them_hold(tmp_path):
    """The default ships entropy and random to 6,000 picks and the other strategies to 1,500: a shorter run is a
    prefix of a longer one, so comparisons cut every history at the same label count and leave out the ones
    that stop before it; the default cut is the most labels every history holds."""
    from cfgp.pipeline import shared_labels, up_to_labels

    run = _run(tmp_path / "run")
    for seed in (0, 1):
        _history(run.dir / AL_DIR / f"r{seed}.jsonl", ALSettings(strategy="random", seed=seed), cycles=8)
        _history(run.dir / AL_DIR / f"e{seed}.jsonl", ALSettings(strategy="entropy", seed=seed), cycles=8)
    _history(run.dir / AL_DIR / "b.jsonl", ALSettings(strategy="entropy", batch_size=2, seed=0), cycles=3)
    assert shared_labels(run) == 3
    full = load_al_histories(run)
    assert [len(h) for h in full["random-b1-pool7195"]] == [9, 9]
    cut = load_al_histories(run, labels=shared_labels(run))
    assert sorted(cut) == ["entropy-b1-pool7195", "entropy-b2-pool7195", "random-b1-pool7195"]
    assert [len(h) for h in cut["random-b1-pool7195"]] == [4, 4] and cut["random-b1-pool7195"][0][-1]["cycle"] == 3
    longer = load_al_histories(run, labels=8)
    assert sorted(longer) == ["entropy-b1-pool7195", "random-b1-pool7195"]  # the 3-label run stops before
    assert list(runs_by_seed(run, labels=8)) == ["entropy-b1-pool7195", "random-b1-pool7195"]
    assert [len(r) for _, r in runs_by_seed(run, labels=5)["random-b1-pool7195"].values()] == [6, 6]
    records = full["random-b1-pool7195"][0]
    assert up_to_labels(records, None) is records and up_to_labels(records, 9) is None
    assert up_to_labels(records, 0) == records[:1]


def test_a_gzipped_history_is_listed_read_and_never_written(tmp_path):
    """The default ships its histories gzipped (the 6,000-pick runs would otherwise take 15 MB): a .jsonl.gz is
    listed and read like a .jsonl, refuses appends, and a plain history of the same name in the user's folder (an
    extended copy) takes its place."""
    import gzip

    run = _run(tmp_path / "run", write_dir=tmp_path / "mine")
    plain = _history(tmp_path / "made.jsonl", ALSettings(strategy="random", seed=1), cycles=4)
    packed = run.dir / AL_DIR / "random-b1-pool7195-s1.jsonl.gz"
    packed.parent.mkdir(parents=True)
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    (saved,) = run.al_histories()
    assert saved.path == packed and saved.settings.seed == 1 and saved.read() == History(plain).read()
    assert [len(h) for h in load_al_histories(run)["random-b1-pool7195"]] == [5]
    with pytest.raises(HistoryError, match="gzipped"):
        History(packed).append({"cycle": 5})
    extended = _history(run.write_dir / AL_DIR / "random-b1-pool7195-s1.jsonl", ALSettings(strategy="random", seed=1),
                        cycles=6)
    assert [s.path for s in run.al_histories()] == [extended]
    assert [s.path for s in run.al_histories(committed_only=True)] == [packed]


def test_a_history_is_read_through_the_bounded_reader(tmp_path):
    """History reads through cfgp.record_streams.BoundedBytes: a file named .gz that is not gzip, or one past the
    size limit, is a HistoryError naming the file, not a crash or a memory blow-up."""
    import cfgp.al

    fake = tmp_path / "x.jsonl.gz"
    fake.write_bytes(b'{"settings": {}}\n')
    with pytest.raises(HistoryError, match=r"x\.jsonl\.gz: named \.gz but it is not gzip-compressed"):
        History(fake).read()
    big = _history(tmp_path / "big.jsonl", ALSettings(seed=0), cycles=50)
    limit, cfgp.al.HISTORY_MAX_BYTES = cfgp.al.HISTORY_MAX_BYTES, big.stat().st_size - 1
    try:
        with pytest.raises(HistoryError, match=r"big\.jsonl: .*the limit"):
            History(big).read()
    finally:
        cfgp.al.HISTORY_MAX_BYTES = limit


@pytest.mark.parametrize("block", ["retrain", "family_network"])
def test_a_derived_run_reads_its_base_runs_motifs_instead_of_computing_them(tiny_run, tmp_path, block):
    """A retrain or family network shares its base's data, so the base's stored motifs serve it (computing them
    took 250 s on the default's oxides); a base stored for other data is not used."""
    import shutil

    from cfgp.pipeline import repo_path

    base = tmp_path / "base"
    shutil.copytree(tiny_run.dir, base)
    saved = json.loads((base / "motifs.json").read_text())
    pid = next(i for i, v in saved["motifs"].items() if v.get("motif") == "PO4")
    saved["motifs"][pid] = {**saved["motifs"][pid], "motif": "HPO3"}  # a value only the base's file holds
    (base / "motifs.json").write_text(json.dumps(saved))
    derived = tmp_path / "derived"
    derived.mkdir()
    (derived / RUN_FILE).write_text(json.dumps({**tiny_run.settings, block: {"base_run": repo_path(base)}}))
    shutil.copy(base / "split.json", derived / "split.json")
    run = Run(derived)
    assert run.base_run_dir == base.resolve()
    assert run.motifs() == saved["motifs"]
    assert run.materials.frame.set_index("material_id").loc[pid, "p_motif"] == "HPO3"
    # the base's file made from other data: computed from the structures (the real motif comes back)
    (base / "motifs.json").write_text(json.dumps({**saved, "data_sha256": "other"}))
    assert Run(derived).motifs()[pid]["motif"] == "PO4"
    assert not (derived / "motifs.json").exists()  # a reader never writes


def test_a_derived_run_folder_holds_its_rows_and_block_and_refuses_other_settings(tiny_run, tmp_path):
    """``derived_run`` (behind ``cfgp retrain`` and ``cfgp family-network``): the new folder's split is the given
    train and pool rows with the base's test split, its settings the base's plus the block; a resume with the same
    block reopens it, another block is refused naming the folder, and nothing is made inside the shipped run."""
    import numpy as np

    from cfgp.artefacts import DEFAULT_RUN, ReadOnlyRunError
    from cfgp.pipeline import derived_run

    sp, ids = tiny_run.split, tiny_run.materials.ids
    train, pool = np.union1d(sp.train, sp.pool[:5]), sp.pool[5:]
    block = {"base_run": str(tiny_run.dir), "seed": 3}
    run = derived_run(tiny_run, tmp_path / "d", "retrain", block, train, pool)
    assert run.settings["retrain"] == block and run.base_run_dir == tiny_run.dir
    assert {k: v for k, v in run.settings.items() if k != "retrain"} == tiny_run.settings
    assert list(ids[run.split.train]) == list(ids[train]) and list(ids[run.split.pool]) == list(ids[pool])
    assert list(ids[run.split.test]) == list(ids[sp.test])
    assert derived_run(tiny_run, tmp_path / "d", "retrain", dict(block), train, pool).dir == run.dir
    with pytest.raises(ValueError, match=r"/d holds a retrain with other settings .*'seed': 3"):
        derived_run(tiny_run, tmp_path / "d", "retrain", {**block, "seed": 4}, train, pool)
    with pytest.raises(ValueError, match="unknown kind"):
        derived_run(tiny_run, tmp_path / "e", "finetune", block, train, pool)
    with pytest.raises(ReadOnlyRunError):
        derived_run(tiny_run, DEFAULT_RUN / "retrain-here", "retrain", block, train, pool)
    assert not (DEFAULT_RUN / "retrain-here").exists() and not (tmp_path / "e").exists()


# ------------------------------------------------------------------ kept predictions
def test_the_saved_gps_predictions_are_kept_and_follow_gp_json(tiny_run, tmp_path, monkeypatch):
    """A writer keeps them in the run folder, a reader in the user cache; reloaded without any GP algebra while
    gp.json, latents, split and labels stay, recomputed (to other numbers) once gp.json changes."""
    import shutil

    import numpy as np

    from cfgp import pipeline
    from cfgp.artefacts import cache_dir, read_json, write_json

    monkeypatch.setenv("CFGP_HOME", str(tmp_path / "home"))  # a user cache no other test has filled
    run = Run(shutil.copytree(tiny_run.dir, tmp_path / "run"))
    cached = cache_dir() / f"predictions-{pipeline.predictions_key(run)}.npz"
    fresh = pipeline.predictions(run, pipeline.load_gp(run))  # another GP object: always computed, never kept
    assert not (run.dir / pipeline.PREDICTIONS_FILE).exists() and not cached.exists()
    read = pipeline.predictions(run)  # a reader: the user cache, never the run folder
    assert cached.exists() and not (run.dir / pipeline.PREDICTIONS_FILE).exists()
    written = pipeline.predictions(run, reader=False)  # a writer (`cfgp fit`): the run folder
    assert (run.dir / pipeline.PREDICTIONS_FILE).exists()
    for p in (read, written):
        np.testing.assert_array_equal(p["mean"], fresh["mean"])
        np.testing.assert_array_equal(p["std"], fresh["std"])

    def no_gp(*_a, **_k):
        raise AssertionError("the kept predictions should have been read")
    with monkeypatch.context() as m:
        m.setattr(pipeline, "load_gp", no_gp)
        m.setattr(pipeline, "_predict_all", no_gp)
        np.testing.assert_array_equal(pipeline.predictions(run)["std"], fresh["std"])

    (run.dir / pipeline.PREDICTIONS_FILE).write_bytes(b"PK\x03\x04 torn")  # a torn file is predicted anew
    cached.unlink()
    np.testing.assert_array_equal(pipeline.predictions(run)["std"], fresh["std"])

    saved = read_json(run.dir / pipeline.GP_FILE)
    saved["gp"]["hyperparameters"]["length_scale"] *= 2
    write_json(run.dir / pipeline.GP_FILE, saved)
    changed = pipeline.predictions(run)
    assert not np.allclose(changed["std"], fresh["std"], equal_nan=True)
    np.testing.assert_array_equal(changed["std"], pipeline.predictions(run, pipeline.load_gp(run))["std"])
