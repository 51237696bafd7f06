"""Replays of committed AL runs as arrays per cycle, on the shipped default run's histories (no UI, no GP)."""

from pathlib import Path

import numpy as np
import pytest

from cfgp.al import ALSettings, History, header_settings
from cfgp.al_replay import background_rows, pool_rows, random_bands, replay_of, replay_target
from cfgp.pipeline import ALGroup

AL = Path(__file__).parents[1] / "data" / "default" / "al"


@pytest.fixture(scope="module")
def entropy10():
    header, records = History(AL / "entropy-b10-pool7195-s0.jsonl.gz").read()
    return header, records[:41]  # 40 cycles of 10 picks: enough for every slice, fast to build


def _rows(records, drop: str | None = None) -> tuple[dict, np.ndarray]:
    ids = [pid for rec in records for pid in rec.get("picked", [])]
    row_of_id = {pid: 1000 + i for i, pid in enumerate(ids) if pid != drop}
    formulas = np.array([f"F{r}" for r in range(1000 + len(ids))], dtype=object)
    return row_of_id, formulas


def test_replay_arrays_follow_the_records(entropy10):
    header, records = entropy10
    row_of_id, formulas = _rows(records)
    rp = replay_of("entropy-b10-pool7195-s0", header, records, row_of_id, formulas)
    assert rp.n_cycles == 40 and rp.settings["strategy"] == "entropy" and rp.settings["batch_size"] == 10
    assert rp.mae[7] == records[7]["mae"] and rp.coverage[3] == records[3]["coverage_2sigma"]
    assert rp.labels[0] == 0 and rp.labels[5] == records[5]["n_train"] - records[0]["n_train"]
    assert rp.ends[0] == 0 and list(np.diff(rp.ends)) == [len(r["picked"]) for r in records[1:]]
    assert rp.picked_ids(2) == records[1]["picked"] + records[2]["picked"]
    s = rp.pick_slice(2, 3)
    assert rp.pick_ids[s].tolist() == records[3]["picked"] and set(rp.pick_cycle[s]) == {3}
    assert rp.pick_formula[0] == formulas[row_of_id[records[1]["picked"][0]]]
    curve = rp.curve(3, 6)
    assert list(curve["cycle"]) == [3, 4, 5] and list(curve["mae"]) == [r["mae"] for r in records[3:6]]
    assert rp.clamp(-4) == 0 and rp.clamp(10**6) == 40 and rp.clamp(12) == 12


def test_a_pick_outside_the_runs_materials_is_left_out(entropy10):
    header, records = entropy10
    gone = records[2]["picked"][1]
    row_of_id, formulas = _rows(records, drop=gone)
    rp = replay_of("x", header, records, row_of_id, formulas)
    assert gone not in rp.pick_ids.tolist()
    assert rp.ends[1] == 10 and rp.ends[2] == 19 and len(rp.pick_rows) == len(rp.pick_ids) == rp.ends[-1]


def test_random_band_is_mean_plus_minus_two_std_over_seeds():
    hists = [History(AL / f"random-b1-pool7195-s{s}.jsonl.gz").read()[1][:30] for s in range(3)]
    (band,) = random_bands({"random-b1-pool7195": ALGroup(ALSettings(strategy="random"), hists),
                            "entropy-b1-pool7195": ALGroup(ALSettings(strategy="entropy"), hists)})
    mae = np.array([[r["mae"] for r in h] for h in hists])
    assert band["seeds"] == 3 and band["label"] == "random-b1-pool7195"
    np.testing.assert_allclose(band["mean"], mae.mean(axis=0))
    np.testing.assert_allclose(band["upper"] - band["mean"], 2 * mae.std(axis=0, ddof=1))
    np.testing.assert_allclose(band["mean"] - band["lower"], 2 * mae.std(axis=0, ddof=1))


def test_pool_rows_keep_drawable_pool_points_and_background_is_a_seeded_subsample():
    split = np.array(["pool", "train", "pool", "pool", "test", "pool"])
    xy = np.array([[0, 0], [1, 1], [np.nan, 2], [3, 3], [4, 4], [5, 5]], float)
    sigma = np.array([0.1, 0.1, 0.1, np.inf, 0.1, 0.2])
    assert pool_rows(split, xy, sigma).tolist() == [0, 5]
    assert background_rows(xy, 5) is None
    sub = background_rows(xy, 3)
    assert len(sub) == 3 and list(sub) == sorted(sub) and 2 not in sub
    assert np.array_equal(sub, background_rows(xy, 3))


def test_replay_target_runs_at_its_speed_and_stops_at_the_end():
    assert replay_target(0, 300, 0.1, 0, 1500) == 30
    assert replay_target(10, 1, 0.01, 10, 1500) == 11  # a frame always moves at least one cycle
    assert replay_target(0, 300, 100.0, 40, 1500) == 1500


def test_playback_advances_at_its_speed_and_sends_only_new_picks(entropy10):
    from cfgp.al_replay import ReplayPlayback

    header, records = entropy10
    rp = replay_of("x", header, records, *_rows(records))
    play = ReplayPlayback(rp)
    assert play.map_picks() is None and not play.finished
    play.start_clock(100.0)
    play.cycle = play.target(20, 100.25)  # 20 cycles/s for 0.25 s
    assert play.cycle == 5
    new, last = play.map_picks()
    assert rp.pick_ids[new].tolist() == rp.picked_ids(5) and rp.pick_ids[last].tolist() == records[5]["picked"]
    assert play.map_picks() is None  # the map is up to date: nothing is sent twice
    play.cycle = 7
    new, _ = play.map_picks()
    assert rp.pick_ids[new].tolist() == records[6]["picked"] + records[7]["picked"]
    play.cycle = play.target(20, 1e6)
    assert play.cycle == 40 and play.finished


def test_both_scorings_reach_the_replay_and_the_random_band():
    """The shipped histories carry the paper's pool-scored MAE per cycle beside the fixed-test MAE; the replay and
    the random band read both, and the pool score falls much faster for entropy than the test MAE (the protocol
    effect the lesson explains)."""
    stems = ("entropy-b1-pool7195-s0", "random-b1-pool7195-s0", "random-b1-pool7195-s1")
    hists = {s: History(AL / f"{s}.jsonl.gz").read() for s in stems}
    header, records = hists[stems[0]]
    row_of_id, formulas = _rows(records)
    rp = replay_of(stems[0], header, records, row_of_id, formulas)
    assert np.isfinite(rp.pool_mae).all() and rp.curve(0, 3)["pool_mae"].tolist() == \
        [r["pool_mae"] for r in records[:3]]
    assert rp.pool_mae[0] != rp.mae[0]  # another set of materials
    drop_pool, drop_test = 1 - rp.pool_mae[-1] / rp.pool_mae[0], 1 - rp.mae[-1] / rp.mae[0]
    assert drop_pool > 2 * drop_test, (drop_pool, drop_test)
    band = random_bands({"random-b1-pool7195": ALGroup(ALSettings(strategy="random"),
                                                       [hists[s][1] for s in stems[1:]])})[0]
    assert band["pool_mean"][-1] == pytest.approx(np.mean([hists[s][1][-1]["pool_mae"] for s in stems[1:]]))
    # a history made before the pool score was recorded: NaN, which the tab leaves undrawn
    old = random_bands({"random-x": ALGroup(ALSettings(strategy="random"),
                                            [[{"n_train": 1, "mae": 0.1}, {"n_train": 2, "mae": 0.09}]] * 2)})[0]
    assert np.isnan(old["pool_mean"]).all() and old["mean"].tolist() == pytest.approx([0.1, 0.09])


def test_a_shipped_run_extended_to_the_papers_scale_replays_all_its_cycles():
    """The default's entropy and random histories hold 6,000 picks; their headers keep the 1,500 cycles of the first
    sitting, so the settings a replay shows carry the cycles the records hold; the random band averages all four
    seeds up to 6,000 labels (every seed reaches it, so none drops out along the way)."""
    header, records = History(AL / "entropy-b1-pool7195-s0.jsonl.gz").read()
    assert header["settings"]["cycles"] == 1500 and len(records) == 6001
    row_of_id, formulas = _rows(records)
    rp = replay_of("entropy-b1-pool7195-s0", header, records, row_of_id, formulas)
    assert rp.n_cycles == 6000 and rp.run_settings["cycles"] == 6000 and rp.labels[-1] == 6000
    assert rp.run_settings["strategy"] == "entropy" and rp.settings["cycles"] == 1500  # the header, untouched
    hists = [History(AL / f"random-b1-pool7195-s{s}.jsonl.gz").read()[1] for s in range(4)]
    (band,) = random_bands({"random-b1-pool7195": ALGroup(ALSettings(strategy="random"), hists)})
    assert band["seeds"] == 4 and len(band["labels"]) == 6001 and band["labels"][-1] == 6000
    assert np.isfinite(band["pool_mean"]).all()
    np.testing.assert_allclose(band["mean"][-1], np.mean([h[-1]["mae"] for h in hists]))


def test_a_fine_tuned_replay_is_drawn_against_fine_tuned_random():
    """The shipped fine-tuned runs replay like the others, their settings saying how often the network was
    updated; the band behind a replay is random under the same settings, a frozen run's the frozen random one."""
    from cfgp.al_replay import band_for

    header, records = History(AL / "entropy-b1-pool7195-ft150-s0.jsonl.gz").read()
    row_of_id, formulas = _rows(records)
    rp = replay_of("entropy-b1-pool7195-ft150-s0", header, records, row_of_id, formulas)
    assert rp.settings["finetune_every"] == 150 and rp.n_cycles == 1500 and len(rp.pick_ids) == 1500
    hists = {}
    for label, tuned in (("random-b1-pool7195", None), ("random-b1-pool7195-ft150", 150)):
        hists[label] = ALGroup(ALSettings(strategy="random", finetune_every=tuned),
                               [[{"n_train": 10 + i, "mae": 1.0 - 0.1 * i} for i in range(3)]] * 2)
    bands = random_bands(hists)
    assert [(b["label"], b["frozen"]) for b in bands] == [("random-b1-pool7195", True),
                                                          ("random-b1-pool7195-ft150", False)]
    assert band_for(rp.settings, bands) == "random-b1-pool7195-ft150"
    assert band_for(ALSettings(strategy="entropy").to_dict(), bands) == "random-b1-pool7195"
    assert band_for(ALSettings(strategy="entropy", batch_size=10).to_dict(), bands) == "random-b1-pool7195"
    assert band_for(ALSettings().to_dict(), bands[::-1]) == "random-b1-pool7195"  # the frozen one, not the first
    assert band_for({"strategy": "<script>"}, bands) == "random-b1-pool7195" and band_for({}, []) is None


def test_committed_groups_count_seeds_per_label_and_say_which_were_fine_tuned():
    """The replay menu in a lesson's words: one entry per group label with its seed count, sorted, fine-tuned
    groups marked; on the shipped default's histories."""
    from cfgp.al_replay import committed_groups

    settings = [header_settings(History(p).read()[0], p).to_dict() for p in sorted(AL.glob("*.jsonl.gz"))]
    groups = committed_groups(settings)
    assert groups["entropy-b1-pool7195-ft150"] == (2, True) and groups["random-b1-pool7195-ft150"] == (2, True)
    assert groups["random-b1-pool7195"][1] is False and groups["random-b1-pool7195"][0] >= 4
    assert list(groups) == sorted(groups) and sum(n for n, _ in groups.values()) == len(settings)
    with pytest.raises(TypeError):
        committed_groups([{"no_such_setting": 1}])
