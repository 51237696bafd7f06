"""Fair active-learning scores: paired differences, areas, phosphate share, the paper's pool-scored MAE."""

import numpy as np
import pytest

from cfgp.al import ALSettings, labels_to_reach
from cfgp.al_metrics import (area_under_curve, paired_comparison, phosphate_share, pool_scored_mae, reach_baseline,
                             value_at)
from cfgp.data import DataError


def _records(maes, start=100, picks=None):
    return [{"cycle": i, "n_train": start + i, "mae": m, "picked": (picks[i - 1] if picks and i else [])}
            for i, m in enumerate(maes)]


def test_area_is_the_average_over_the_label_range():
    recs = _records([0.3, 0.2, 0.1])  # linear: the average is the middle value
    assert area_under_curve(recs) == pytest.approx(0.2)
    assert area_under_curve(recs, upto=1) == pytest.approx(0.25)
    assert value_at(recs, 2) == 0.1 and value_at(recs, 5) is None


def test_paired_differences_pair_by_seed_and_leave_out_unshared_seeds():
    strategy = {0: _records([0.2, 0.15, 0.10]), 1: _records([0.2, 0.16, 0.12]), 7: _records([9, 9, 9])}
    baseline = {0: _records([0.2, 0.18, 0.14]), 1: _records([0.2, 0.17, 0.16]), 2: _records([0.5, 0.5, 0.5])}
    out = paired_comparison(strategy, baseline, at=(1, 2, 50))
    assert out["seeds"] == [0, 1]
    assert set(out["at"]) == {1, 2}  # 50 labels were never reached
    d = out["at"][2]["difference"]
    assert d["mean"] == pytest.approx(-0.04) and d["std"] == pytest.approx(0.0) and d["pairs"] == 2
    assert out["at"][1]["difference"]["mean"] == pytest.approx(((0.15 - 0.18) + (0.16 - 0.17)) / 2)
    assert out["at"][1]["difference"]["std"] == pytest.approx(np.std([-0.03, -0.01], ddof=1))
    # areas: seed 0 (0.2+2*0.15+0.10)/4 − (0.2+2*0.18+0.14)/4 = −0.025; seed 1 0.16 − 0.175 = −0.015
    assert out["area"]["difference"]["mean"] == pytest.approx((-0.025 - 0.015) / 2)
    # the 95 % interval of the mean difference (Student t, 1 degree of freedom): mean ± 12.706 · sd / √2
    half = 12.7062 * np.std([-0.03, -0.01], ddof=1) / np.sqrt(2)
    assert out["at"][1]["difference"]["ci95"] == pytest.approx([-0.02 - half, -0.02 + half], rel=1e-4)
    with pytest.raises(ValueError, match="same seeds"):
        paired_comparison({3: strategy[0]}, baseline)


def test_labels_to_reach_the_same_seeds_baseline_final():
    # the one implementation (cfgp.al), which reach_baseline applies to each seed's curve
    values, labels = np.array([0.3, 0.2, 0.1]), np.array([0, 1, 2])
    assert labels_to_reach(values, labels, 0.2) == 1 and labels_to_reach(values, labels, 0.05) is None
    strategy = {0: _records([0.3, 0.14, 0.13, 0.12]), 1: _records([0.3, 0.2, 0.15, 0.11])}
    baseline = {0: _records([0.3, 0.2, 0.16, 0.14]), 1: _records([0.3, 0.25, 0.2, 0.12])}
    out = reach_baseline(strategy, baseline)
    assert out["per_seed"][0] == {"baseline_labels": 3, "target": 0.14, "labels": 1}
    assert out["per_seed"][1]["labels"] == 3 and out["reached_by_all"] and out["labels_max"] == 3
    assert out["saving_min"] == pytest.approx(1.0)
    assert not reach_baseline({0: _records([0.3, 0.2, 0.2, 0.2])}, baseline)["reached_by_all"]


def test_phosphate_share_counts_every_pick():
    recs = _records([0.2, 0.2, 0.2], picks=[["a", "b"], ["c"]])
    out = phosphate_share([recs], {"a": True, "b": False, "c": False, "d": True}, ["a", "b", "c", "d"])
    assert out == {"picks": 3, "picks_phosphate_share": pytest.approx(1 / 3), "pool_phosphate_share": 0.5}
    # ids of another data set: a clear error naming them (the CLI prints it as one line), not a KeyError
    with pytest.raises(DataError, match="1 picked material id.*'zz'"):
        phosphate_share([_records([0.1, 0.1], picks=[["zz"]])], {"a": True}, ["a"])
    with pytest.raises(DataError, match="1 pool material id.*'yy'"):
        phosphate_share([_records([0.1, 0.1], picks=[["a"]])], {"a": True}, ["a", "yy"])


def test_pool_scored_mae_replays_a_real_history(tiny_run):
    """Cycle 0 equals the MAE of the conditioned GP on the AL pool, computed here from predict();
    later cycles score only the still-unlabelled pool, and a history replayed onto another pool fails."""
    from cfgp.pipeline import active_learner, load_gp

    settings = ALSettings(strategy="entropy", cycles=12, batch_size=2, seed=1, pool_size=60)
    learner = active_learner(tiny_run, settings)
    records = [learner.record()] + list(learner.steps())
    gp = load_gp(tiny_run)
    X, y = tiny_run.latents(), tiny_run.materials.y
    ids = list(tiny_run.materials.ids)
    fresh = active_learner(tiny_run, settings)
    pool_rows = np.array([ids.index(i) for i in fresh.pool_ids])
    scored = pool_scored_mae(fresh, records)
    assert len(scored) == len(records)
    assert scored[0] == pytest.approx(np.mean(np.abs(gp.predict(X[pool_rows]) - y[pool_rows])), rel=1e-6)
    picked = {p for r in records for p in r["picked"]}
    left = np.array([r for r, i in zip(pool_rows, fresh.pool_ids) if i not in picked])
    # the last score is on the 60 − 24 unlabelled materials only; conditioning on all labels gives the same mean
    gp.condition(np.vstack([X[tiny_run.split.train], X[[ids.index(i) for i in picked]]]),
                 np.concatenate([y[tiny_run.split.train], y[[ids.index(i) for i in picked]]]))
    assert len(left) == 60 - 24
    assert scored[-1] == pytest.approx(np.mean(np.abs(gp.predict(X[left]) - y[left])), rel=1e-5)
    # every record carries the same score as it is made (the AL tab draws it beside the fixed-test MAE)
    assert [r["pool_mae"] for r in records] == pytest.approx(list(scored), rel=1e-12)
    assert records[-1]["pool_mae"] != pytest.approx(records[-1]["mae"], rel=1e-3)  # another set than the test
    other = active_learner(tiny_run, ALSettings(strategy="entropy", cycles=12, batch_size=2, seed=2, pool_size=60))
    with pytest.raises(ValueError, match="not in this learner's pool|differs from the stored"):
        pool_scored_mae(other, records)


def test_fair_report_on_histories_read_once_gives_the_same_report_and_changes_none(tiny_run, tmp_path):
    """`cfgp al-compare` reads every history once and hands the records to the labels, the groups and the fair
    report: the report is the one read from disk, and a pool MAE replayed for a history written without it goes
    into copies, not into the records the caller holds."""
    import copy
    import json
    import shutil

    from cfgp.al_metrics import fair_report
    from cfgp.pipeline import Run, read_al_histories, run_active_learning, shared_labels

    run = Run(shutil.copytree(tiny_run.dir, tmp_path / "run"))
    shutil.rmtree(run.dir / "al", ignore_errors=True)  # histories other tests wrote into this worker's tiny run
    for strategy in ("entropy", "random"):
        settings = ALSettings(strategy=strategy, cycles=6, batch_size=2, seed=0, pool_size=60)
        run_active_learning(run, settings, progress=False)
        path = run.al_history_path(settings)  # as an older cfgp wrote it: no pool MAE in the records
        lines = path.read_text().splitlines()
        path.write_text("\n".join([lines[0]] + [json.dumps({k: v for k, v in json.loads(x).items() if k != "pool_mae"})
                                                for x in lines[1:]]) + "\n")
    read = read_al_histories(run)
    assert len(read) == 2 and shared_labels(run, read=read) == 12
    before = copy.deepcopy(read)
    given = fair_report(run, pool_scored=True, labels=12, at=(6, 12), read=read)
    assert [(s.path, r) for s, r in read] == [(s.path, r) for s, r in before]
    assert all("pool_mae" not in r for _, records in read for r in records)
    assert given == fair_report(run, pool_scored=True, labels=12, at=(6, 12))
    entropy = next(k for k in given["strategies"] if k.startswith("entropy"))
    assert np.isfinite(given["strategies"][entropy]["paired_pool_scored"]["at"][12]["strategy"])
