"""Strategies compared after converged retrains (cfgp.retrain_report), on the committed paper-scale retrains."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cfgp.retrain_report import bootstrap_difference, finished_retrains, retrain_report

PAPER_SCALE = Path(__file__).resolve().parents[1] / "experiments" / "paper-scale"
P1500 = PAPER_SCALE / "p1500"


def _result(job: str) -> dict:
    return json.loads((P1500 / job / "retrain.json").read_text())


@pytest.fixture()
def results_only(tmp_path) -> Path:
    """The committed retrain.json files (real results) in their folders, without the networks."""
    for path in P1500.glob("*/retrain.json"):
        (tmp_path / "p1500" / path.parent.name).mkdir(parents=True)
        shutil.copy(path, tmp_path / "p1500" / path.parent.name / "retrain.json")
    return tmp_path


def test_pairs_converged_runs_by_seed_and_leaves_the_rest_out(results_only):
    found = {Path(r["dir"]).name for r in finished_retrains(results_only)}
    assert {"entropy-s0-warm", "random-s0-warm", "entropy-s0-scratch"} <= found
    # an unconverged run is listed, never scored
    r = _result("random-s0-warm")
    (results_only / "p1500" / "half").mkdir()
    (results_only / "p1500" / "half" / "retrain.json").write_text(json.dumps({**r, "seed": 7, "converged": False}))
    rep = retrain_report(results_only, bootstrap=0)
    assert [Path(x["dir"]).name for x in rep["not_converged"]] == ["half"]
    # scratch belongs to the start comparison; any other unpaired job (a queue mid-way) lacks its seed's partner
    unpaired = [Path(x).name for x in rep["not_paired"]]
    assert "entropy-s0-scratch" in unpaired
    done = {(r["strategy"], r["seed"]) for r in finished_retrains(results_only) if r.get("converged")}
    for name in set(unpaired) - {"entropy-s0-scratch"}:
        r = json.loads((results_only / "p1500" / name / "retrain.json").read_text())
        assert ({"entropy", "random"} - {r["strategy"]}).pop() not in {s for s, seed in done if seed == r["seed"]}
    ent = rep["picks"][1500]["strategies"]["entropy"]
    assert 7 not in rep["picks"][1500]["strategies"]["random"]["seeds"]
    shared = ent["paired"]["seeds"]
    assert 0 in shared
    want = np.mean([_result(f"entropy-s{s}-warm")["mae"] - _result(f"random-s{s}-warm")["mae"] for s in shared])
    assert ent["paired"]["mae"]["mean"] == pytest.approx(want)
    assert (ent["paired"]["mae"]["ci95"] is None) == (len(shared) == 1)
    assert "test_bootstrap" not in ent["paired"]


def test_bootstrap_of_a_paired_difference():
    rng = np.random.default_rng(1)
    a = {f"m{i}": v for i, v in enumerate(rng.exponential(0.08, 1500))}
    same = bootstrap_difference(a, a)
    assert same["difference"] == 0 and same["ci95"] == [0, 0]
    shifted = bootstrap_difference({k: v + 0.01 for k, v in a.items()}, a)
    assert shifted["difference"] == pytest.approx(0.01) and shifted["ci95"] == pytest.approx([0.01, 0.01])
    b = {k: v + rng.normal(0, 0.05) for k, v in a.items()}
    d = np.array([a[k] - b[k] for k in a])
    got = bootstrap_difference(a, b)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert got["ci95"][0] < got["difference"] < got["ci95"][1]
    assert (got["ci95"][1] - got["ci95"][0]) / 2 == pytest.approx(half, rel=0.15)
    with pytest.raises(ValueError, match="share no scored test material"):
        bootstrap_difference({"x": 1.0}, {"y": 1.0})


@pytest.mark.slow
def test_bootstrap_on_the_committed_retrains_reproduces_their_test_mae():
    """Re-predicting the two seed-0 retrains' test materials gives the MAE each recorded, so the bootstrap pairs
    the very errors behind the reported figures (~20 s)."""
    from cfgp.retrain_report import errors_on_test

    e, r = (errors_on_test(P1500 / job) for job in ("entropy-s0-warm", "random-s0-warm"))
    assert np.mean(list(e.values())) == pytest.approx(_result("entropy-s0-warm")["mae"], abs=1e-6)
    assert np.mean(list(r.values())) == pytest.approx(_result("random-s0-warm")["mae"], abs=1e-6)
    b = bootstrap_difference(e, r)
    assert b["n_test"] == 1460 and b["ci95"][0] < b["difference"] < b["ci95"][1]


def test_cli_prints_the_report(results_only, capsys):
    from cfgp.cli import main

    assert main(["retrain-report", str(results_only), "--bootstrap", "0", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["baseline"] == "random" and "entropy" in rep["picks"]["1500"]["strategies"]
    assert main(["retrain-report", str(results_only), "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "1,500 picks" in text and "− random: test MAE" in text and "paper's protocol" in text


def test_a_job_still_training_is_listed_with_where_it_stands_and_not_scored(results_only, capsys):
    """A folder with a checkpoint and no result yet (a queue mid-run): its epoch, best and earliest stop, from a
    real committed training state; a finished job's checkpoint is not listed again."""
    from cfgp.cli import main
    from cfgp.retrain import PATIENCE

    state = json.loads((P1500 / "entropy-s2-warm" / "training" / "train_state.json").read_text())
    state.update(finished=False, reason="")
    for name in ("busy", "entropy-s0-warm"):
        (results_only / "p1500" / name / "training").mkdir(parents=True, exist_ok=True)
        (results_only / "p1500" / name / "training" / "train_state.json").write_text(json.dumps(state))
    rep = retrain_report(results_only, bootstrap=0)
    assert [Path(r["dir"]).name for r in rep["in_progress"]] == ["busy"]
    busy = rep["in_progress"][0]
    assert busy["epochs"] == state["epoch"] and busy["best_val_mae"] == state["best_val_mae"]
    assert busy["earliest_stop"] == state["plateau_epoch"] + PATIENCE
    assert all(Path(r["dir"]).name != "busy" for r in finished_retrains(results_only))
    assert main(["retrain-report", str(results_only), "--bootstrap", "0"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("still training")]
    assert line == [f"still training (not scored): {results_only / 'p1500' / 'busy'} (epoch {state['epoch']}, best "
                    f"validation MAE {state['best_val_mae']:.4f} at {state['best_epoch']}; the rule can stop it at "
                    f"epoch {state['plateau_epoch'] + PATIENCE} at the earliest)"]
