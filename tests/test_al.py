"""Active learning: incremental posterior = from-scratch GP, strategies, generator, resume after kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cfgp.al import STRATEGIES, ActiveLearner, ALSettings, History, PoolPosterior, compare
from cfgp.gp import CFGP


@pytest.fixture(scope="module")
def data(tiny_run):
    X, y = tiny_run.latents(), tiny_run.materials.y
    sp = tiny_run.split
    gp = CFGP(max_iter=40, seed=0).fit(X[sp.train], y[sp.train])
    return gp, X[sp.train], y[sp.train], X[sp.pool], y[sp.pool], X[sp.test], y[sp.test], tiny_run.materials.ids[sp.pool]


@pytest.mark.parametrize("backend", ["numpy", "tensorflow"])
def test_hundred_updates_equal_a_fresh_fit(data, backend):
    gp, Xtr, ytr, Xpo, ypo, Xte, yte, _ = data
    # query set: pool, test and extra points labelled from the test split, 100 additions in all
    Xq = np.vstack([Xpo, Xte])
    yq = np.concatenate([ypo, yte])
    base = CFGP.from_dict(gp.to_dict()).condition(Xtr, ytr)
    post = PoolPosterior(base, Xq, backend=backend)
    added = list(range(100))
    for j in added:
        post.add(j, yq[j])
    fresh = CFGP.from_dict(gp.to_dict()).condition(np.vstack([Xtr, Xq[added]]), np.concatenate([ytr, yq[added]]))
    mean, std = fresh.predict(Xq, return_std=True)
    rest = np.setdiff1d(np.arange(len(yq)), added)  # materials still to predict
    scale = np.abs(mean).max()
    np.testing.assert_allclose(post.mean[rest], mean[rest], rtol=1e-8, atol=1e-8 * scale)
    np.testing.assert_allclose(post.std[rest], std[rest], rtol=1e-8)
    # labelled points: the same up to cancellation in σ² − v² where σ collapses to the noise level
    np.testing.assert_allclose(post.mean[added], mean[added], rtol=1e-6, atol=1e-6 * scale)
    assert post.n_added == 100


def test_greedy_batch_is_sequential_max_variance_without_labels(data):
    gp, Xtr, ytr, Xpo, ypo, Xte, yte, _ = data
    base = CFGP.from_dict(gp.to_dict()).condition(Xtr, ytr)
    post = PoolPosterior(base, np.vstack([Xpo, Xte]))
    cand = np.arange(len(ypo))
    before = post.std.copy()
    batch = post.greedy_variance_batch(cand, 5)
    np.testing.assert_array_equal(post.std, before)  # selection does not change the posterior
    seq = []
    for _ in range(5):  # label each max-σ pick in turn, with arbitrary labels: σ ignores them
        j = int(cand[np.argmax(np.where(np.isin(cand, seq), -np.inf, post.std[cand]))])
        seq.append(j)
        post.add(j, 0.0)
    assert batch.tolist() == seq
    assert len(set(batch.tolist())) == 5


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_runs_and_keeps_the_test_set_out(data, name):
    gp, Xtr, ytr, Xpo, ypo, Xte, yte, ids = data
    s = ALSettings(strategy=name, cycles=4, batch_size=3, seed=1, pool_size=None)
    learner = ActiveLearner(gp, Xtr, ytr, Xpo, ypo, Xte, yte, s, pool_ids=ids)
    records = list(learner.steps())
    assert [r["cycle"] for r in records] == [1, 2, 3, 4]
    picked = [p for r in records for p in r["picked"]]
    assert len(picked) == 12 and len(set(picked)) == 12 and set(picked) <= set(ids)
    assert records[-1]["n_train"] == len(ytr) + 12
    assert all(np.isfinite(r["mae"]) and 0 <= r["coverage_2sigma"] <= 1 for r in records)
    assert records[-1]["best_found"] <= min(ytr)


def test_entropy_picks_the_largest_sigma_and_lowers_it(data):
    gp, Xtr, ytr, Xpo, ypo, Xte, yte, ids = data
    learner = ActiveLearner(gp, Xtr, ytr, Xpo, ypo, Xte, yte, ALSettings(cycles=1, pool_size=None), pool_ids=ids)
    sigma = learner.posterior.std[: learner.n_pool].copy()
    rec = learner.step()
    assert rec["picked"] == [ids[int(np.argmax(sigma))]]
    assert rec["pool_sigma_max"] <= sigma.max()
    assert np.all(learner.posterior.std[: learner.n_pool] <= sigma + 1e-12)  # conditioning never adds uncertainty


def test_ei_and_ucb_find_low_energies_faster_than_random(data):
    gp, Xtr, ytr, Xpo, ypo, Xte, yte, ids = data
    best = {}
    for name in ("ei", "random"):
        learner = ActiveLearner(gp, Xtr, ytr, Xpo, ypo, Xte, yte,
                                ALSettings(strategy=name, cycles=10, seed=2, pool_size=None))
        best[name] = list(learner.steps())[-1]["best_found"]
    assert best["ei"] <= best["random"]


def test_reading_never_writes_and_only_the_owner_cuts_a_torn_line(tmp_path):
    h = History(tmp_path / "h.jsonl")
    h.append({"header": 1})
    h.append({"cycle": 0})
    with open(h.path, "ab") as fh:
        fh.write(b'{"cycle": 1, "mae": 0.')  # killed mid-write (or a writer still writing)
    before = h.path.read_bytes()
    header, records = h.read()
    assert header == {"header": 1} and records == [{"cycle": 0}]
    assert h.path.read_bytes() == before  # a reader left the file alone
    msg = h.repair()
    assert "incomplete last line" in msg and "1 complete records" in msg
    assert h.path.read_bytes().endswith(b'{"cycle": 0}\n')
    assert h.repair() is None


def test_a_garbled_middle_line_is_reported_with_file_and_line(tmp_path):
    from cfgp.al import HistoryError

    p = tmp_path / "h.jsonl"
    p.write_text('{"header": 1}\n{"cycle": 0}\n{"cyc\n{"cycle": 2}\n')
    with pytest.raises(HistoryError, match=r"h\.jsonl, line 3"):
        History(p).read()
    assert p.read_text().count("\n") == 4


def test_kill_between_header_and_first_record_keeps_cycle_zero(data, tmp_path):
    from cfgp.al import run_history

    gp, Xtr, ytr, Xpo, ypo, Xte, yte, ids = data
    settings = ALSettings(strategy="entropy", cycles=6, seed=0, pool_size=None)
    path = tmp_path / "h.jsonl"

    def learner():
        return ActiveLearner(gp, Xtr, ytr, Xpo, ypo, Xte, yte, settings, pool_ids=ids)

    clean = run_history(learner(), tmp_path / "clean.jsonl", {"s": 1})
    History(path).append({"s": 1})  # the kill came right after the header
    resumed = run_history(learner(), path, {"s": 1})
    assert [r["cycle"] for r in resumed] == list(range(7))
    assert [r["picked"] for r in resumed] == [r["picked"] for r in clean]
    assert History(path).read()[1] == resumed


def test_readers_during_a_run_leave_the_history_complete_and_consecutive(data, tmp_path):
    """A writer and a reader polling the same file (as `cfgp al-compare` and the app do): nothing lost."""
    import threading

    from cfgp.al import run_history

    gp, Xtr, ytr, Xpo, ypo, Xte, yte, ids = data
    settings = ALSettings(strategy="random", cycles=60, seed=5, pool_size=None)
    learner = ActiveLearner(gp, Xtr, ytr, Xpo, ypo, Xte, yte, settings, pool_ids=ids)
    path = tmp_path / "h.jsonl"
    out = {}
    writer = threading.Thread(target=lambda: out.update(records=run_history(learner, path, {"s": 2})))
    writer.start()
    reads = 0
    while writer.is_alive():
        header, records = History(path).read()
        reads += 1
        assert [r["cycle"] for r in records] == list(range(len(records)))
    writer.join()
    _, records = History(path).read()
    assert reads > 3
    assert [r["cycle"] for r in records] == list(range(61)) and records == out["records"]


def test_compare_counts_labels_to_reach_the_baseline():
    def hist(maes):
        return [{"n_train": 100 + i, "mae": m} for i, m in enumerate(maes)]

    res = compare({"random": [hist([1.0, 0.9, 0.8, 0.7]), hist([1.0, 0.9, 0.8, 0.7])],
                   "entropy": [hist([1.0, 0.7, 0.6, 0.5])]}, baseline="random")
    assert res["entropy"]["labels_to_reach_baseline"] == 1
    assert res["entropy"]["speedup_vs_baseline"] == 3.0
    assert res["random"]["final_mae_mean"] == pytest.approx(0.7)
    assert res["entropy"]["mae_reduction"] == pytest.approx(0.5)


def _al(run_dir, *extra):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return [sys.executable, "-m", "cfgp.cli", "al", "--run", str(run_dir), *extra], env


def _copy_default(tmp_path, name):
    """A copy of the embedded default run (real latents and GP; ~5 ms per cycle, so a kill lands mid-run)."""
    import shutil

    from cfgp.artefacts import DEFAULT_RUN

    dest = tmp_path / name
    shutil.copytree(DEFAULT_RUN, dest, ignore=shutil.ignore_patterns("al", "training"))
    return dest


def test_killed_run_resumes_with_nothing_lost_or_duplicated(tmp_path):
    run_dir = _copy_default(tmp_path, "run")
    cmd, env = _al(run_dir, "--strategy", "random", "--cycles", "400", "--seed", "4", "--json", "--quiet")
    log = open(tmp_path / "stderr.txt", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    path = run_dir / "al" / "random-b1-pool7195-s4.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:  # wait until cycles are on disk, then kill hard
        if path.exists() and path.read_bytes().count(b"\n") >= 12:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, partial = History(path).read()
    assert 10 <= len(partial) < 401, "not killed part-way: " + (tmp_path / "stderr.txt").read_text()[-2000:]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    _, records = History(path).read()
    assert [r["cycle"] for r in records] == list(range(401))
    picked = [p for r in records for p in r["picked"]]
    assert len(picked) == len(set(picked)) == 400
    assert records[: len(partial)] == partial  # nothing rewritten
    # the resumed run is the run that would have happened without the kill
    other = _copy_default(tmp_path, "other")
    cmd2, _ = _al(other, "--strategy", "random", "--cycles", "400", "--seed", "4", "--json", "--quiet")
    subprocess.run(cmd2, env=env, capture_output=True, timeout=300, check=True)
    _, clean = History(other / "al" / "random-b1-pool7195-s4.jsonl").read()
    assert [r["picked"] for r in clean] == [r["picked"] for r in records]
    np.testing.assert_allclose([r["mae"] for r in clean], [r["mae"] for r in records], rtol=1e-9)
    assert json.loads(out.stdout.strip().splitlines()[-1])["final_mae_mean"] == pytest.approx(records[-1]["mae"])


def test_periodic_refit_changes_hyperparameters_and_keeps_the_loop_going(data):
    gp, Xtr, ytr, Xpo, ypo, Xte, yte, ids = data
    learner = ActiveLearner(gp, Xtr, ytr, Xpo, ypo, Xte, yte,
                            ALSettings(strategy="entropy", cycles=6, refit_every=3, pool_size=None), pool_ids=ids)
    before = dict(learner.gp.hyperparameters_)
    records = list(learner.steps())
    assert len(records) == 6 and learner.gp.n_train_ == len(ytr) + 6
    assert learner.gp.hyperparameters_ != before  # refitted on 153 labels at cycle 3 and 156 at cycle 6
    fresh = CFGP.from_dict(learner.gp.to_dict()).condition(np.vstack([Xtr, learner.X_query[learner.picked]]),
                                                          np.concatenate([ytr, learner.y_query[learner.picked]]))
    np.testing.assert_allclose(learner.posterior.mean[learner.test_slice], fresh.predict(Xte), rtol=1e-8)
