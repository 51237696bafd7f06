"""Active learning with the network fine-tuned every few picks, end to end on the tiny real run (real MEGNet,
real GP): the picks, the rounds, the representation moving, the resume after an interruption."""

import json

import pytest

from cfgp.al import ALSettings, History
from cfgp.al_finetune import HISTORY_FILE, STATE_FILE, FinetuneSettings, finetune_active_learning
from cfgp.pipeline import al_pool_ids
from cfgp.retrain import early_stopping_ids

SETTINGS = ALSettings(strategy="entropy", cycles=6, batch_size=1, seed=1, pool_size=40)
FT = FinetuneSettings(every=3, epochs=2, lr=1e-3)  # the tiny network is far from converged


@pytest.fixture(scope="module")
def finished(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("al_finetune") / "entropy"
    return out, finetune_active_learning(tiny_run, SETTINGS, out, FT)


@pytest.mark.slow
def test_a_run_picks_from_its_seeds_pool_and_updates_the_network_every_few_picks(tiny_run, finished):
    out, state = finished
    header, records = History(out / HISTORY_FILE).read()
    assert header["settings"]["strategy"] == "entropy" and header["finetune"] == {"every": 3, "epochs": 2, "lr": 1e-3, "keep": "always"}
    assert [r["cycle"] for r in records] == list(range(7))
    picks = [i for r in records for i in r["picked"]]
    assert len(picks) == len(set(picks)) == 6
    assert set(picks) <= set(al_pool_ids(tiny_run, SETTINGS))  # the frozen run's candidates for this seed
    assert not set(picks) & set(early_stopping_ids(tiny_run))
    assert [r["round"] for r in records] == [0, 0, 0, 0, 1, 1, 1]
    assert [r["n_train"] for r in records] == [records[0]["n_train"] + k for k in range(7)]
    # three network states (base, after 3 picks, after 6), each with its own GP on its own latents
    assert state["finished"] and [e["picks"] for e in state["rounds"]] == [0, 3, 6]
    assert state["rounds"][0]["val_mae"] is None and state["rounds"][0]["kept"] is None
    for prev, e in zip(state["rounds"], state["rounds"][1:]):
        assert e["kept"] and e["val_mae"] == e["val_mae_tuned"]  # every update kept, its validation MAE recorded
        assert e["length_scale"] != prev["length_scale"]  # the GP is refitted on new latents and more labels
    assert state["rounds"][0]["mae"] == pytest.approx(records[0]["mae"])
    assert json.loads((out / STATE_FILE).read_text()) == state
    from cfgp.featurize import MEGNetFeaturizer

    assert MEGNetFeaturizer.load(out / "network").weights_hash() != MEGNetFeaturizer.load(tiny_run.dir).weights_hash()


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_last_network_and_redoes_later_cycles(tiny_run, finished, tmp_path):
    out = tmp_path / "entropy"
    picky = FinetuneSettings(every=3, epochs=2, lr=1e-3, keep="if-better")
    part = finetune_active_learning(tiny_run, SETTINGS, out, picky, max_seconds=0)  # stops after the first update
    # an update is kept only if it lowered the validation MAE of the network it would replace
    e = part["pending"]
    assert e["kept"] == (e["val_mae_tuned"] < e["val_mae_before"])
    assert e["val_mae"] == min(e["val_mae_tuned"], e["val_mae_before"])
    assert not part["finished"] and part["picks"] == 3
    full_records = History(finished[0] / HISTORY_FILE).read()[1]
    header, records = History(out / HISTORY_FILE).read()
    # before the first update nothing differs from the uninterrupted run
    assert [r["picked"] for r in records] == [r["picked"] for r in full_records[:4]]
    # a kill in the middle of round 1 left a cycle scored by the saved network: the resume redoes it
    History(out / HISTORY_FILE).append({**records[-1], "cycle": 4, "picked": ["not-a-pick"]})
    done = finetune_active_learning(tiny_run, SETTINGS, out, picky)
    _, records = History(out / HISTORY_FILE).read()
    assert done["finished"] and [r["cycle"] for r in records] == list(range(7))
    picks = [i for r in records for i in r["picked"]]
    assert "not-a-pick" not in picks and len(set(picks)) == 6
    # a finished run answers from its state; other settings in the same folder are refused
    assert finetune_active_learning(tiny_run, SETTINGS, out, picky) == done
    with pytest.raises(ValueError, match="other settings"):
        finetune_active_learning(tiny_run, SETTINGS, out, FT)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="every must be an integer"):
        FinetuneSettings(every=0)
    with pytest.raises(ValueError, match="epochs must be an integer"):
        FinetuneSettings(epochs=True)
    with pytest.raises(ValueError, match="lr must be a number"):
        FinetuneSettings(lr=0)
    with pytest.raises(ValueError, match="keep must be"):
        FinetuneSettings(keep="<sometimes>")


def test_batches_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="batch size 1"):
        finetune_active_learning(None, ALSettings(strategy="random", cycles=4, batch_size=2), tmp_path / "x", FT)
    assert not (tmp_path / "x").exists()
