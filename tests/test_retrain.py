"""The paper's retrain step end to end on the tiny real run: MEGNet re-trained on train + AL picks (warm start and
from scratch), re-featurised, GP refitted, evaluated on the unchanged test split."""

import json

import numpy as np
import pytest

from cfgp.al import History
from cfgp.pipeline import Run, evaluate


@pytest.fixture(scope="module")
def history(entropy_history):
    return entropy_history


@pytest.mark.slow
def test_retrain_warm_and_from_scratch(tiny_run, history, warm_retrain, tmp_path, capsys):
    from cfgp.cli import main
    from cfgp.retrain import RESULT_FILE, picked_ids

    _, ids = picked_ids(history, tiny_run, picks=20)
    assert len(ids) == 20
    warm_dir, warm = warm_retrain  # retrain(tiny_run, history, warm_dir, picks=20, epochs=3, patience=3)
    run = Run(warm_dir)
    base_ids, m = tiny_run.materials.ids, run.materials
    # the split: train grew by exactly the picks, the picks left the pool, test is the base's test
    assert set(m.ids[run.split.train]) == set(base_ids[tiny_run.split.train]) | set(ids)
    assert not set(ids) & set(m.ids[run.split.pool])
    assert list(m.ids[run.split.test]) == list(base_ids[tiny_run.split.test])
    assert warm["finished"] and warm["epochs"] == 3 and warm["picks"] == 20 and warm["strategy"] == "entropy"
    assert warm["n_train"] == len(tiny_run.split.train) + 20 and warm["n_test"] == len(tiny_run.split.test)
    # the reported test metrics are those of the re-trained run's own GP on its own latents
    again = evaluate(run)
    assert warm["mae"] == pytest.approx(again["mae"]) and warm["coverage_2sigma"] == again["coverage_2sigma"]
    assert json.loads((run.dir / RESULT_FILE).read_text())["mae"] == warm["mae"]
    # the latents changed: a new MEGNet, not the base one
    assert not np.allclose(run.latents()[run.split.test], tiny_run.latents()[tiny_run.split.test])
    # early stopping on one set for every strategy and seed: the base model's own validation materials, none picked
    summary = json.loads((run.dir / "training" / "summary.json").read_text())
    base_val = json.loads((tiny_run.dir / "training" / "summary.json").read_text())["val_ids"]
    assert summary["val_ids"] == sorted(base_val) or sorted(summary["val_ids"]) == sorted(base_val)
    assert not set(summary["val_ids"]) & set(ids)
    # the result says how it stopped and what the network fitted at its best epoch
    state = json.loads((run.dir / "training" / "train_state.json").read_text())
    assert warm["converged"] is False and warm["reason"] == "reached 3 epochs"  # a cap, not the rule
    assert warm["train_mae_at_best"] == state["history"][warm["best_epoch"] - 1]["mae"]
    # its cost: the epochs' wall-clock and CPU seconds (from the epoch log), then the featurise, fit and evaluation
    assert warm["train_seconds"] == state["history"][-1]["seconds"] > 0
    assert warm["train_cpu_seconds"] == state["history"][-1]["cpu_seconds"] > 0
    assert warm["seconds"] > warm["train_seconds"]
    # the paper's protocol beside it: the AL run's candidates that were not picked, scored by the retrained GP
    header, _ = History(history).read()
    assert 0 < warm["n_pool_scored"] == header["settings"]["pool_size"] - 20 or \
        warm["n_pool_scored"] == len(tiny_run.split.pool) - 20
    assert warm["pool_scored_mae"] > 0

    # from scratch (--from-scratch; warm is the default), same budget: its first epoch is far worse than the warm's
    assert main(["retrain", "--run", str(tiny_run.dir), "--history", str(history), "--out", str(tmp_path / "cold"),
                 "--picks", "20", "--epochs", "3", "--patience", "3", "--from-scratch", "--json"]) == 0
    cold = json.loads((tmp_path / "cold" / RESULT_FILE).read_text())
    first = {name: json.loads((folder / "training" / "train_state.json").read_text())["history"][0]["val_mae"]
             for name, folder in (("warm", warm_dir), ("cold", tmp_path / "cold"))}
    assert first["warm"] < 0.8 * first["cold"], first
    assert cold["finished"] and not cold["warm_start"]
    # a finished retrain called again (the queue re-runs its list) returns its result and rewrites nothing
    from cfgp.retrain import retrain

    stamps = {f: f.stat().st_mtime_ns for f in (tmp_path / "cold").rglob("*") if f.is_file()}
    assert retrain(tiny_run, history, tmp_path / "cold", picks=20, epochs=3, patience=3, warm_start=False,
                   progress=False) == cold
    assert stamps == {f: f.stat().st_mtime_ns for f in (tmp_path / "cold").rglob("*") if f.is_file()}
    # the warm run's folder resumed with --from-scratch is refused (no silent switch of start mid-run)
    assert main(["retrain", "--run", str(tiny_run.dir), "--history", str(history), "--out", str(warm_dir),
                 "--picks", "20", "--epochs", "3", "--patience", "3", "--from-scratch"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_retrain_refuses_a_foreign_history_and_too_many_picks(tiny_run, history, tmp_path):
    from cfgp.retrain import picked_ids

    with pytest.raises(ValueError, match="fewer than the 999"):
        picked_ids(history, tiny_run, picks=999)
    header, records = History(history).read()
    header = dict(header, latents_hash="0000")
    bad = tmp_path / "foreign.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in [header, *records]) + "\n")
    with pytest.raises(ValueError, match="another model or split"):
        picked_ids(bad, tiny_run)


def test_retrain_names_a_missing_history(tiny_run, tmp_path):
    from cfgp.retrain import picked_ids

    with pytest.raises(FileNotFoundError, match="no such history file"):
        picked_ids(tmp_path / "nope.jsonl", tiny_run)


def test_a_job_resumes_on_its_history_gzipped_and_refuses_another(tiny_run, history, tmp_path):
    """The default ships its histories gzipped: a retrain folder made on the plain file resumes on the .gz of the
    same records; other settings (here another pick count) are refused with the folder named."""
    import gzip

    from cfgp.retrain import make_retrain_run

    out = tmp_path / "job"
    make_retrain_run(tiny_run, history, out, picks=5)
    packed = history.with_name(history.name + ".gz")  # beside it, as data/default/al holds them
    packed.write_bytes(gzip.compress(history.read_bytes()))
    again = make_retrain_run(tiny_run, packed, out, picks=5)
    assert again.dir == out and json.loads((out / "run.json").read_text())["retrain"]["picks"] == 5
    with pytest.raises(ValueError, match="other settings"):
        make_retrain_run(tiny_run, packed, out, picks=6)
