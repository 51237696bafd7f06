"""The committed default (data/default) is what its manifest and README say, and user commands never modify it.

Integrity: every file hashes to its manifest entry; the stored latents are what the shipped MEGNet weights
produce; the split is disjoint, covers the data, is the one its seed makes, and MEGNet's early-stopping set lies
inside the training split; the committed active-learning histories replay to their stored records.
Read-only: the README's commands, run as a user types them (no --run), leave every file of data/default as it was
and write what they make to $CFGP_HOME (a temporary folder here, set in conftest.py).
"""

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cfgp.artefacts import DEFAULT_RUN
from tests import reference

pytestmark = pytest.mark.skipif(not (DEFAULT_RUN / "manifest.json").exists(), reason="the embedded default is not built")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot() -> dict[str, str]:
    """Every file under data/default with its sha256 (lock files included: creating one is a write)."""
    return {str(p.relative_to(DEFAULT_RUN)): _sha256(p) for p in sorted(DEFAULT_RUN.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run():
    from cfgp.pipeline import Run

    return Run(DEFAULT_RUN)


# ------------------------------------------------------------------ integrity
def test_manifest_hashes_match_the_files():
    manifest = json.loads((DEFAULT_RUN / "manifest.json").read_text())
    files = manifest["files"]
    on_disk = _snapshot()
    on_disk.pop("manifest.json")
    assert set(on_disk) == set(files), f"unlisted: {set(on_disk) - set(files)}, missing: {set(files) - set(on_disk)}"
    changed = [f for f, h in files.items() if on_disk[f] != h]
    assert not changed, f"files differ from the manifest: {changed}"
    # the manifest's settings are the run's own, and it names the data file the run was made from
    run_json = json.loads((DEFAULT_RUN / "run.json").read_text())
    assert manifest["settings"] == run_json
    data = DEFAULT_RUN.parent.parent / run_json["data"]
    assert _sha256(data) == run_json["data_sha256"]


def test_split_is_disjoint_fixed_by_its_seed_and_early_stopping_is_inside_train(run):
    from cfgp.splits import SplitSettings, make_split

    saved = json.loads((DEFAULT_RUN / "split.json").read_text())
    train, pool, test = (set(saved[k]) for k in ("train", "pool", "test"))
    assert len(train) == len(saved["train"]) and len(pool) == len(saved["pool"]) and len(test) == len(saved["test"])
    assert not train & pool and not train & test and not pool & test
    ids = run.materials.ids
    assert train | pool | test == set(ids.tolist())  # every material after the energy window, once
    s = saved["settings"]
    assert (len(train), len(test)) == (s["n_train"], s["n_test"]) == (1800, 1460)
    # the test set is the one its seed makes from the data (not hand-picked, not drifted)
    again = make_split(ids, SplitSettings(**s))
    assert set(ids[again.test]) == test and set(ids[again.train]) == train
    summary = json.loads((DEFAULT_RUN / "training" / "summary.json").read_text())
    val = set(summary["val_ids"])
    assert len(val) == summary["n_val"] == 180 and summary["n_fit"] == 1620
    assert val <= train  # early stopping never looked at pool or test materials


def test_stored_latents_are_what_the_shipped_megnet_produces(run):
    """20 materials drawn across the data set, featurised now with the shipped weights."""
    z = np.load(DEFAULT_RUN / "latents.npz", allow_pickle=False)
    feat = run.featurizer()
    assert str(z["model_hash"]) == feat.weights_hash()
    m = run.materials
    idx = np.sort(np.random.default_rng(12).choice(len(m), 20, replace=False))
    stored = run.latents()[idx]
    fresh = feat.transform(m.structures(idx))
    # float32 network: re-batching the graphs changes sums in the last bits (measured ≤ 3e-7 on latents ≤ 2.3)
    np.testing.assert_allclose(fresh, stored, rtol=1e-5, atol=1e-5)
    assert np.abs(stored).max() > 0.1  # a real comparison, not of zeros


def test_gp_json_is_fitted_on_the_train_split(run):
    """The scaler of gp.json is the standardisation of the train latents, and its key names these latents."""
    saved = json.loads((DEFAULT_RUN / "gp.json").read_text())
    X = run.latents()[run.split.train]
    np.testing.assert_allclose(saved["gp"]["scaler"]["shift"], X.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(saved["gp"]["scaler"]["scale"], X.std(axis=0), rtol=1e-9)
    assert saved["key"]["latents_hash"] == str(np.load(DEFAULT_RUN / "latents.npz")["model_hash"])
    assert saved["n_train"] == 1800


@pytest.mark.parametrize("name", ["entropy-b1-pool7195-s0", "random-b1-pool7195-s0"])
def test_committed_histories_replay_to_their_stored_records(run, name):
    """The first 20 cycles of a committed history, recomputed from the shipped latents and GP, pick the same
    materials and score the same test MAE record by record; cycle 0 is the reference GP's test MAE."""
    from cfgp.al import ALSettings, History, same_run
    from cfgp.pipeline import active_learner, al_header, load_gp

    header, records = History(DEFAULT_RUN / "al" / f"{name}.jsonl.gz").read()
    settings = ALSettings(**{**header["settings"], "cycles": 20})
    gp = load_gp(run, conditioned=False)
    assert same_run(header, al_header(run, settings, gp.to_dict()))  # made from these latents, GP and split
    learner = active_learner(run, settings, gp)
    replay = [learner.record()] + list(learner.steps())
    assert len(replay) == 21
    for rec, stored in zip(replay, records[:21]):
        assert rec["cycle"] == stored["cycle"] and rec["picked"] == stored["picked"]
        assert rec["mae"] == pytest.approx(stored["mae"], rel=1e-9)
        assert rec["coverage_2sigma"] == pytest.approx(stored["coverage_2sigma"], abs=1e-12)
    # cycle 0, independently: the saved GP conditioned on the 1,800 (NumPy reference) on the 1,460 test oxides
    X, y = run.latents(), run.materials.y
    tr, te = run.split.train, run.split.test
    mu, _ = reference.gp_posterior_from_saved(gp.to_dict(), X[tr], y[tr], X[te])
    # (cfgp adds a 1e-8 jitter to the noise variance of 4.6e-3; that moves the MAE by ~1e-8 relative)
    assert records[0]["mae"] == pytest.approx(np.mean(np.abs(mu - y[te])), rel=1e-6)


FINETUNE = DEFAULT_RUN.parent.parent / "experiments" / "paper-scale" / "finetune"


def test_the_shipped_fine_tuned_runs_are_the_experiments_and_are_paired_with_fine_tuned_random(run):
    """The four fine-tuned histories in data/default/al are those `experiments/paper-scale/finetune.sh` wrote, byte
    for byte; `cfgp al-compare --fair` pairs fine-tuned entropy with fine-tuned random of the same seed, and its
    difference at 1,500 labels is the one read off the files here."""
    from cfgp.al import History
    from cfgp.al_metrics import fair_report

    mae = {}
    for strategy in ("entropy", "random"):
        for seed in (0, 1):
            shipped = DEFAULT_RUN / "al" / f"{strategy}-b1-pool7195-ft150-s{seed}.jsonl.gz"
            source = FINETUNE / f"{strategy}-s{seed}" / "history.jsonl"
            assert gzip.decompress(shipped.read_bytes()) == source.read_bytes()
            header, records = History(source).read()
            assert header["finetune"]["every"] == 150 and records[1500]["n_train"] - records[0]["n_train"] == 1500
            mae[strategy, seed] = records[1500]["mae"]
    report = fair_report(run, labels=1500, at=(1500,))
    tuned = report["strategies"]["entropy-b1-pool7195-ft150"]
    assert report["baseline"] == "random-b1-pool7195" and tuned["baseline"] == "random-b1-pool7195-ft150"
    assert tuned["seeds"] == [0, 1]
    diff = tuned["paired"]["at"][1500]["difference"]["mean"]
    assert diff == pytest.approx(np.mean([mae["entropy", s] - mae["random", s] for s in (0, 1)]), rel=1e-12)
    assert report["strategies"]["entropy-b1-pool7195"]["baseline"] == "random-b1-pool7195"


# ------------------------------------------------------------------ read-only
def _cfgp(*args, timeout=900):
    """``cfgp ARGS`` typed in the repository folder, in a process of its own (as a user runs it)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "cfgp.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=DEFAULT_RUN.parent.parent)


class _InProcess:
    """``cfgp ARGS`` through the same ``cfgp.cli.main`` in this test's process, from the repository folder: a
    process each costs ~5 s of TensorFlow import, so one command of the test runs as its own process and the
    others here. Returns what ``subprocess.run`` would: returncode, stdout, stderr."""

    def __init__(self, capsys, monkeypatch):
        self.capsys = capsys
        monkeypatch.chdir(DEFAULT_RUN.parent.parent)

    def __call__(self, *args):
        from types import SimpleNamespace

        from cfgp.cli import main

        self.capsys.readouterr()
        code = main([str(a) for a in args])
        out = self.capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def _last_json(out) -> dict:
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_readme_commands_leave_the_shipped_default_untouched(tmp_path, small_records, capsys, monkeypatch):
    """README's command lines on the default (no --run), the issue's `--cycles 50`, a run longer than the
    committed one, and the writing commands: data/default keeps every byte, new results go to $CFGP_HOME."""
    from cfgp.al import History

    home = Path(os.environ["CFGP_HOME"])
    mine = home / "runs" / "default"
    before = _snapshot()
    committed = DEFAULT_RUN / "al"

    cif = tmp_path / "my.cif"
    cif.write_text(small_records[0]["cif"])
    predicted = _cfgp("predict", "--json", cif)  # the console command as typed, in a process of its own
    assert predicted.returncode == 0 and json.loads(predicted.stdout.strip().splitlines()[-1])
    cfgp = _InProcess(capsys, monkeypatch)  # the rest through the same main(), in this process
    out = _last_json(cfgp("evaluate", "--json"))
    assert out["n_test"] == 1460

    # a shorter run than the committed one is its prefix, answered from the committed records
    _, entropy0 = History(committed / "entropy-b1-pool7195-s0.jsonl.gz").read()
    out = _last_json(cfgp("al", "--strategy", "entropy", "--cycles", "50", "--json"))
    assert out["labels"] == 50 and out["final_mae_mean"] == entropy0[50]["mae"]
    out = _last_json(cfgp("al", "--strategy", "entropy", "--cycles", "1500", "--seeds", "4", "--json"))
    finals = [History(committed / f"entropy-b1-pool7195-s{s}.jsonl.gz").read()[1][1500]["mae"] for s in range(4)]
    assert out["labels"] == 1500 and out["final_mae_mean"] == pytest.approx(np.mean(finals), rel=1e-12)
    assert not (mine / "al").exists()  # nothing computed, nothing written

    # a longer one extends it, in the user's folder (also when data/default is named explicitly); the top-10
    # entropy run (150 cycles of 10) is extended by three cycles, the one that writes, in a process of its own
    name = "entropy-b10-pool7195-s0.jsonl"
    out = _last_json(_cfgp("al", "--run", "data/default", "--strategy", "entropy", "--batch-size", "10",
                           "--cycles", "153", "--json"))
    shipped = gzip.decompress((committed / f"{name}.gz").read_bytes())  # the default ships its histories gzipped
    extended = (mine / "al" / name).read_bytes()
    assert extended.startswith(shipped)  # the committed records, byte for byte, then three more cycles
    _, records = History(mine / "al" / name).read()
    assert [r["cycle"] for r in records] == list(range(154)) and out["labels"] == 1530
    picked = [p for r in records for p in r["picked"]]
    assert len(set(picked)) == 1530 and out["final_mae_mean"] == records[-1]["mae"]

    # compared at the labels every history holds (1,500); entropy and random also at the paper's 6,000
    plot = tmp_path / "al.png"
    out = _last_json(cfgp("al-compare", "--json", "--plot", plot))
    assert out["labels"] == 1500 and plot.stat().st_size > 1000
    assert out["strategies"]["random-b1-pool7195"]["seeds"] == 4
    assert {v["labels"] for v in out["strategies"].values()} == {1500}
    out = _last_json(cfgp("al-compare", "--json", "--labels", "6000"))
    assert sorted(out["strategies"]) == ["entropy-b1-pool7195", "random-b1-pool7195"]
    finals = [History(committed / f"random-b1-pool7195-s{s}.jsonl.gz").read()[1][6000]["mae"] for s in range(4)]
    assert out["strategies"]["random-b1-pool7195"]["final_mae_mean"] == pytest.approx(np.mean(finals), rel=1e-12)

    # the other commands: cached artefacts are read, not rewritten; the writing ones are refused with a reason
    assert _last_json(cfgp("featurize", "--quiet"))["n"] == 16388
    fit = _last_json(cfgp("fit"))
    saved = json.loads((DEFAULT_RUN / "gp.json").read_text())["gp"]["hyperparameters"]
    assert fit["length_scale"] == saved["length_scale"]
    assert _last_json(cfgp("tsne", "--quiet"))["n"] == 16388
    for cmd in (("train", "--epochs", "1"), ("train", "--run", "data/default", "--epochs", "1"), ("manifest",)):
        out = cfgp(*cmd)
        assert out.returncode == 2 and "shipped default" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert _last_json(cfgp("manifest", "--check"))["ok"] is True

    assert _snapshot() == before
    assert sorted(p.name for p in (mine / "al").iterdir()) == [name, name + ".lock"]


def test_writes_into_the_shipped_run_are_refused_at_the_lowest_level(run):
    """Whatever code path tries: artefact writes and history appends inside data/default raise, and a Run of
    the default sends fits and maps to the user's folder, where they shadow the shipped ones until undone."""
    from cfgp.al import ALSettings, History
    from cfgp.al_finetune import finetune_active_learning
    from cfgp.artefacts import ReadOnlyRunError, write_json
    from cfgp.family_retrain import family_run
    from cfgp.mpl_figures import new_figure, save
    from cfgp.retrain import retrain
    from cfgp.screening import JsonLinesSink
    from cfgp.gp import CFGP
    from cfgp.pipeline import GP_FILE, fit_gp, load_gp

    before = _snapshot()
    with pytest.raises(ReadOnlyRunError, match="read-only"):
        write_json(DEFAULT_RUN / "x.json", {})
    with pytest.raises(ReadOnlyRunError):
        History(DEFAULT_RUN / "al" / "entropy-b1-pool7195-s0.jsonl.gz").append({"cycle": 9})
    with pytest.raises(ReadOnlyRunError):
        History(DEFAULT_RUN / "al" / "new.jsonl").lock()
    # the other writers: predictions, figures, and the folders of a retrain and of fine-tuned active learning
    with pytest.raises(ReadOnlyRunError):
        JsonLinesSink(DEFAULT_RUN / "predictions.jsonl")
    with pytest.raises(ReadOnlyRunError):
        save(new_figure()[0], DEFAULT_RUN / "curve.png")
    history = DEFAULT_RUN / "al" / "entropy-b1-pool7195-s0.jsonl.gz"
    with pytest.raises(ReadOnlyRunError):
        retrain(run, history, DEFAULT_RUN / "retrained", picks=10, progress=False)
    with pytest.raises(ReadOnlyRunError):
        finetune_active_learning(run, ALSettings(strategy="random", cycles=10, seed=0), DEFAULT_RUN / "finetuned")
    with pytest.raises(ReadOnlyRunError):
        family_run(run, "lanthanides", DEFAULT_RUN / "without-lanthanides")
    assert run.write_dir == Path(os.environ["CFGP_HOME"]) / "runs" / "default"
    other = fit_gp(run, CFGP(seed=0, max_fit_points=60, max_iter=5))  # other GP settings: a fit of the user's
    assert (run.write_dir / GP_FILE).exists()
    assert load_gp(run, conditioned=False).hyperparameters_ == other.hyperparameters_
    default = fit_gp(run)  # the shipped settings again: the shipped fit, the user's one removed
    assert not (run.write_dir / GP_FILE).exists()
    saved = json.loads((DEFAULT_RUN / GP_FILE).read_text())["gp"]["hyperparameters"]
    assert default.hyperparameters_ == saved
    assert _snapshot() == before


def test_the_dashboard_reads_the_default_without_writing_to_it():
    """The app's per-server data (results, map, histories, domain model) built on the shipped run."""
    from cfgp.dashboard.shared import ServerData

    before = _snapshot()
    data = ServerData(DEFAULT_RUN)
    assert len(data.frame) == 16388 and "entropy-b1-pool7195-s0" in data.committed
    # the lesson's active-learning step replays the paper's frozen entropy run and names the menu's other runs
    from cfgp.dashboard.lesson import lesson_steps

    al = next(st for st in lesson_steps(data) if st.view["tab"] == "al")
    assert al.view["strategy"] == "entropy" and al.view["al"] == "replay"
    assert "entropy-b1-pool7195-ft150 (2 seeds)" in al.text and "random-b1-pool7195-ft150 (2 seeds)" in al.text
    assert "epig-b1-pool7195 (4 seeds)" in al.text and "MEGNet fine-tuned every N picks" in al.text
    assert "random-b1-pool7195 (" not in al.text  # the band it is drawn against is not listed again
    assert _snapshot() == before


def test_the_shipped_predictions_are_the_shipped_gps(run):
    """predictions.npz holds what gp.json conditioned on the train split predicts (500 seeded rows recomputed),
    under the key of the shipped files, so readers use it."""
    from cfgp.pipeline import PREDICTIONS_FILE, load_gp, predictions_key

    z = np.load(DEFAULT_RUN / PREDICTIONS_FILE, allow_pickle=False)
    assert str(z["key"]) == predictions_key(run) and z["material_id"].tolist() == run.materials.ids.tolist()
    rows = np.random.default_rng(0).choice(len(run.materials), 500, replace=False)
    rows = rows[np.isfinite(run.latents()[rows]).all(axis=1)]
    mean, std = load_gp(run).predict(run.latents()[rows], return_std=True)
    np.testing.assert_allclose(z["mean"][rows], mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(z["std"][rows], std, rtol=1e-9, atol=1e-9)
