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
from tests import reference


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


def _ref_std(gp, X, y, Q):
    """σ at Q of the saved GP conditioned on (X, y), from the NumPy reference (not from cfgp)."""
    return reference.gp_posterior_from_saved(gp.to_dict(), X, y, Q)[1]


def test_greedy_batch_is_sequential_max_variance_without_labels(data):
    gp, Xtr, ytr, Xpo, ypo, Xte, yte, _ = data
    base = CFGP.from_dict(gp.to_dict()).condition(Xtr, ytr)
    post = PoolPosterior(base, np.vstack([Xpo, Xte]))
    cand = np.arange(len(ypo))
    before = post.std.copy()
    batch = post.greedy_variance_batch(cand, 5)
    np.testing.assert_array_equal(post.std, before)  # selection does not change the posterior
    # the reference: add each max-σ pool point to the training set in turn (any label: σ ignores labels)
    X, seq = Xtr, []
    for _ in range(5):
        sigma = _ref_std(gp, X, np.zeros(len(X)), Xpo)
        sigma[seq] = -np.inf
        j = int(np.argmax(sigma))
        assert np.sort(sigma)[-1] - np.sort(sigma)[-2] > 1e-9  # no near-tie: the pick is well defined
        seq.append(j)
        X = np.vstack([X, Xpo[j]])
    assert batch.tolist() == seq


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_runs_and_keeps_the_test_set_out(data, name):
    gp, Xtr, ytr, Xpo, ypo, Xte, yte, ids = data
    s = ALSettings(strategy=name, cycles=4, batch_size=3, seed=1, pool_size=None)
    learner = ActiveLearner(gp, Xtr, ytr, Xpo, ypo, Xte, yte, s, pool_ids=ids)
    records = list(learner.steps())
    assert [r["cycle"] for r in records] == [1, 2, 3, 4]
    picked = [p for r in records for p in r["picked"]]
    assert len(picked) == 12 and len(set(picked)) == 12 and set(picked) <= set(ids)
    assert [r["n_train"] for r in records] == [len(ytr) + 3 * c for c in (1, 2, 3, 4)]
    # each record scores the GP conditioned on train + picks so far, on the test set (NumPy reference)
    pos = {p: i for i, p in enumerate(ids)}
    rows = [pos[p] for p in picked]
    for r in (records[0], records[-1]):
        got = rows[: r["n_train"] - len(ytr)]
        mu, sd = reference.gp_posterior_from_saved(gp.to_dict(), np.vstack([Xtr, Xpo[got]]),
                                                   np.concatenate([ytr, ypo[got]]), Xte)
        assert r["mae"] == pytest.approx(np.mean(np.abs(mu - yte)), rel=1e-6)
        assert r["coverage_2sigma"] == np.mean(np.abs(mu - yte) <= 2 * sd)
        assert r["best_found"] == min(ytr.min(), ypo[got].min())


def test_entropy_picks_the_largest_sigma_and_lowers_it(data):
    gp, Xtr, ytr, Xpo, ypo, Xte, yte, ids = data
    learner = ActiveLearner(gp, Xtr, ytr, Xpo, ypo, Xte, yte, ALSettings(cycles=1, pool_size=None), pool_ids=ids)
    sigma = _ref_std(gp, Xtr, ytr, Xpo)  # the reference σ over the pool, not the learner's own
    j = int(np.argmax(sigma))
    assert sigma[j] - np.sort(sigma)[-2] > 1e-9
    rec = learner.step()
    assert rec["picked"] == [ids[j]]
    after = _ref_std(gp, np.vstack([Xtr, Xpo[j]]), np.append(ytr, ypo[j]), np.delete(Xpo, j, axis=0))
    assert rec["pool_sigma_max"] == pytest.approx(after.max(), rel=1e-7)
    assert rec["pool_sigma_mean"] == pytest.approx(after.mean(), rel=1e-7)
    assert np.all(after <= np.delete(sigma, j) + 1e-12)  # conditioning never adds uncertainty


# --------------------------------------------- strategies on constructed inputs
def _posterior(mean, std, Q=None, length_scale=1.0):
    """The inputs a strategy reads (mean, σ, scaled positions, the kernel length), set by hand so the right
    pick is known without the code: strategies are functions of these arrays."""
    from types import SimpleNamespace

    Q = np.zeros((len(mean), 2)) if Q is None else np.asarray(Q, float)
    return SimpleNamespace(mean=np.asarray(mean, float), std=np.asarray(std, float), Q_np=Q,
                           gp=SimpleNamespace(length_scale_=length_scale))


# (μ, σ) of five candidates with best_found = 0: each rule has a different winner
#   lowest μ: b · largest σ: f · lowest μ − 2σ: e (−1.0) · largest expected improvement: c
DESIGN = {"a": (0.05, 0.01), "b": (-0.02, 0.01), "c": (0.3, 0.5), "e": (2.0, 1.5), "f": (3.0, 1.6)}


def _expected_improvement_by_integration(mu, sd, best):
    """E[max(best − Y, 0)] for Y ~ N(μ, σ²), by numerical quadrature (independent of the closed form)."""
    from scipy import integrate, stats

    return integrate.quad(lambda y: (best - y) * stats.norm.pdf(y, mu, sd), mu - 12 * sd, best, epsabs=1e-13)[0]


def test_ucb_ei_and_entropy_pick_what_their_rules_say():
    from cfgp.al import entropy, expected_improvement, ucb

    names = list(DESIGN)
    mean, std = (np.array(v) for v in zip(*DESIGN.values()))
    post, cand, rng = _posterior(mean, std), np.arange(len(names)), np.random.default_rng(0)
    state = {"best_found": 0.0}
    assert names[ucb(post, cand, 1, rng, state)[0]] == "e"
    assert names[entropy(post, cand, 1, rng, state)[0]] == "f"
    ei = [_expected_improvement_by_integration(m, s, 0.0) for m, s in zip(mean, std)]
    assert [names[i] for i in np.argsort(ei)[::-1]] == ["c", "e", "b", "f", "a"]
    assert [names[i] for i in expected_improvement(post, cand, 5, rng, state)] == ["c", "e", "b", "f", "a"]
    # only the candidates offered are considered, and k of them come back, best first
    assert [names[i] for i in ucb(post, np.array([0, 1, 2]), 2, rng, state)] == ["c", "b"]
    # a lower best-so-far moves EI towards wide, uncertain candidates: at best = −1, e beats c
    ei_low = [_expected_improvement_by_integration(m, s, -1.0) for m, s in zip(mean, std)]
    got = expected_improvement(post, cand, 1, rng, {"best_found": -1.0})[0]
    assert got == int(np.argmax(ei_low)) and names[got] == "e"


def test_batch_distance_spreads_its_picks_and_relaxes_only_as_needed():
    from cfgp.al import batch_distance, entropy

    # three points close together with the largest σ, two far clusters with lower σ; kernel length 1
    Q = [[0, 0], [0.1, 0], [0, 0.2], [5, 0], [5.3, 0], [0, 5]]
    std = [1.0, 0.9, 0.8, 0.5, 0.45, 0.3]
    post, cand, rng = _posterior(np.zeros(6), std, Q), np.arange(6), np.random.default_rng(0)
    assert entropy(post, cand, 3, rng, {}).tolist() == [0, 1, 2]  # naive top-k: three near-duplicates
    assert batch_distance(post, cand, 3, rng, {}).tolist() == [0, 3, 5]  # one per region
    # four picks do not fit one length apart: the cut-off halves to 0.5 (still 3), then 0.25, which admits
    # point 4 (0.3 from point 3) but not 1 or 2 (0.1, 0.2 from point 0)
    assert batch_distance(post, cand, 4, rng, {}).tolist() == [0, 3, 4, 5]
    assert batch_distance(post, np.array([1, 2, 4]), 2, rng, {}).tolist() == [1, 4]  # only from the candidates
    # coincident latents (duplicates): the batch is completed in σ order instead of halving for ever
    dup = _posterior(np.zeros(3000), np.linspace(1, 0.5, 3000), np.ones((3000, 2)))
    assert batch_distance(dup, np.arange(3000), 3, rng, {}).tolist() == [0, 1, 2]


def test_ucb_and_ei_on_a_real_posterior_follow_the_reference_gp(data):
    """Through the learner, on real latents: the pick is the reference GP's arg-best of μ − 2σ, and of EI."""
    from scipy import stats

    gp, Xtr, ytr, Xpo, ypo, Xte, yte, ids = data
    mu, sd = reference.gp_posterior_from_saved(gp.to_dict(), Xtr, ytr, Xpo)
    best = ytr.min()
    z = (best - mu) / sd
    scores = {"ucb": -(mu - 2 * sd), "ei": (best - mu) * stats.norm.cdf(z) + sd * stats.norm.pdf(z)}
    for name, score in scores.items():
        learner = ActiveLearner(gp, Xtr, ytr, Xpo, ypo, Xte, yte,
                                ALSettings(strategy=name, cycles=1, pool_size=None), pool_ids=ids)
        pick = int(learner.select()[0])
        assert score[pick] == pytest.approx(score.max(), rel=1e-6, abs=1e-12), name


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(cycles=-1), dict(pool_size=0), dict(refit_every=0),
                                 dict(batch_size=2.5)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ALSettings(**bad)


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_writer_process_and_reader_processes_leave_the_history_complete(tmp_path):
    """`cfgp al` writing 1,500 cycles while `cfgp al-compare` runs again and again and this process reads the
    file in a loop (the issue's reproduction): every reader succeeds and sees a prefix of the final history,
    the file never shrinks, and the finished history holds cycles 0..1500 with all 1,500 labels."""
    import threading

    run_dir = _copy_default(tmp_path, "run")
    n = 1500
    cmd, env = _al(run_dir, "--strategy", "random", "--cycles", str(n), "--seed", "7", "--json", "--quiet")
    path = run_dir / "al" / "random-b1-pool7195-s7.jsonl"
    writer = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, sizes, errors = [], [], []

    def read_loop():  # in-process reader: History.read as the app and load_al_histories call it
        while writer.poll() is None:
            try:
                size = path.stat().st_size if path.exists() else 0
                _, records = History(path).read()
            except Exception as exc:  # noqa: BLE001 (any failure of a reader is the finding)
                errors.append(repr(exc))
                return
            sizes.append(size)
            if records:
                assert [r["cycle"] for r in records] == list(range(len(records)))
                seen.append((len(records), records[-1]))

    reader = threading.Thread(target=read_loop)
    reader.start()
    deadline = time.time() + 600
    while time.time() < deadline and writer.poll() is None and (not path.exists() or path.read_bytes().count(b"\n") < 3):
        time.sleep(0.05)
    compares = []  # (returncode, JSON or stderr, finished while the writer was still writing)
    while writer.poll() is None and time.time() < deadline:
        out = subprocess.run([sys.executable, "-m", "cfgp.cli", "al-compare", "--run", str(run_dir), "--json"],
                             env=env, capture_output=True, text=True, timeout=300)
        during = writer.poll() is None
        compares.append((out.returncode, out.stdout.strip().splitlines()[-1] if out.returncode == 0 else out.stderr,
                         during))
    stdout, stderr = writer.communicate(timeout=600)
    reader.join()
    assert writer.returncode == 0, stderr[-2000:]
    assert not errors, errors
    _, final = History(path).read()
    assert [r["cycle"] for r in final] == list(range(n + 1))
    picked = [p for r in final for p in r["picked"]]
    assert len(picked) == len(set(picked)) == n
    assert [r["n_train"] for r in final] == [final[0]["n_train"] + c for c in range(n + 1)]
    assert json.loads(stdout.strip().splitlines()[-1])["final_mae_mean"] == final[-1]["mae"]
    # readers saw prefixes of the final history, and the file only ever grew
    assert all(final[k - 1] == last for k, last in seen)
    assert sizes == sorted(sizes)
    assert all(code == 0 for code, _, _ in compares), [c for c in compares if c[0] != 0]
    for _, text, _ in compares:
        res = json.loads(text)["strategies"]["random-b1-pool7195"]
        assert 1 <= res["labels"] <= n and res["initial_mae"] == final[0]["mae"]
    # the readers really overlapped the writer
    assert sum(during for _, _, during in compares) >= 2, compares
    assert sum(1 for k, _ in seen if 1 < k < n + 1) >= 10


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


def _ref_cov(gp, X, Q1, Q2):
    """Posterior covariance of the latent function between Q1 and Q2, the saved GP conditioned on X (NumPy, from
    the saved hyper-parameters and scaler; not from cfgp's update code)."""
    h, sc = gp.to_dict()["hyperparameters"], gp.to_dict()["scaler"]
    shift, scale = np.asarray(sc["shift"]), np.asarray(sc["scale"])
    X, Q1, Q2 = ((np.asarray(A) - shift) / scale for A in (X, Q1, Q2))
    a, ell, noise = h["amplitude"], h["length_scale"], h["noise_variance"]
    K = reference.laplacian(X, X, a, ell) + noise * np.eye(len(X))
    return reference.laplacian(Q1, Q2, a, ell) - reference.laplacian(Q1, X, a, ell) @ np.linalg.solve(
        K, reference.laplacian(X, Q2, a, ell))


@pytest.mark.parametrize("name", ["integrated-variance", "epig"])
def test_integrating_strategies_pick_what_their_definition_says(data, name):
    """Integrated variance: the pick lowers the summed variance of the integration points most, measured by
    conditioning a reference GP on each candidate in turn; EPIG: the pick maximises the mean Gaussian mutual
    information with those points' labels, from the reference covariance. Greedy batches = sequential picks."""
    from cfgp.al import integration_rows

    gp, Xtr, ytr, Xpo, ypo, Xte, yte, _ = data
    base = CFGP.from_dict(gp.to_dict()).condition(Xtr, ytr)
    post = PoolPosterior(base, np.vstack([Xpo, Xte]))
    rows = integration_rows(len(ypo), seed=0, size=25)
    cand = np.arange(len(ypo))
    before = post.std.copy()
    batch = STRATEGIES[name](post, cand, 3, np.random.default_rng(0), {"integration_rows": rows, "best_found": 0})
    np.testing.assert_array_equal(post.std, before)  # selecting leaves the posterior as it was
    noise = gp.noise_variance_
    X, seq = Xtr, []
    for _ in range(3):
        C = _ref_cov(gp, X, Xpo[rows], Xpo)
        var = np.diag(_ref_cov(gp, X, Xpo, Xpo))
        if name == "integrated-variance":
            score = (C**2).sum(0) / (var + noise)
            # the definition itself: the summed variance after conditioning on each candidate
            for j in np.argsort(-score)[:3]:
                after = np.trace(_ref_cov(gp, np.vstack([X, Xpo[j]]), Xpo[rows], Xpo[rows]))
                assert np.trace(C[:, rows]) - after == pytest.approx(score[j], rel=1e-4)
        else:
            vy = var + noise
            score = -0.5 * np.log(1 - C**2 / (vy[rows][:, None] * vy[None, :])).mean(0)
        score[seq] = -np.inf
        j = int(np.argmax(score))
        seq.append(j)
        X = np.vstack([X, Xpo[j]])
    assert batch.tolist() == seq
    # the tracked covariance follows labels: after adding the picks it equals the reference's
    for j in batch:
        post.add(int(j), ypo[j])
    np.testing.assert_allclose(post.covariance_with(rows)[:, : len(ypo)], _ref_cov(gp, X, Xpo[rows], Xpo),
                               atol=1e-6 * gp.amplitude_**2)


def test_settings_refuse_an_unknown_strategy_in_one_place():
    """ALSettings is where every caller's strategy is checked (CLI, notebooks, dashboard, saved headers)."""
    with pytest.raises(ValueError, match="unknown strategy 'entrop'.*entropy"):
        ALSettings(strategy="entrop")
    assert ALSettings(strategy="epig").strategy == "epig"


def test_a_fine_tuned_run_is_its_own_group_and_a_frozen_learner_refuses_it(data):
    """`cfgp al-finetune` records how often the network was updated in its header's "finetune" block: read back
    as ``finetune_every``, it names its own group (never pooled with the frozen runs), a frozen run's header
    stays as before (no new key, so saved runs still resume), and a learner that keeps the network frozen refuses
    it rather than silently running another experiment."""
    from cfgp.al import HistoryError, header_settings
    from cfgp.pipeline import al_history_stem, al_label

    frozen = ALSettings(strategy="entropy", seed=1)
    assert "finetune_every" not in frozen.to_dict()
    header = {"settings": frozen.to_dict(), "finetune": {"every": 150, "epochs": 5, "lr": 1e-4, "keep": "always"}}
    tuned = header_settings(header, "h.jsonl")
    assert tuned.finetune_every == 150 and tuned.to_dict()["finetune_every"] == 150
    assert al_label(tuned) == "entropy-b1-pool7195-ft150" != al_label(frozen) == "entropy-b1-pool7195"
    assert al_history_stem(tuned) == "entropy-b1-pool7195-ft150-s1"
    assert header_settings({"settings": frozen.to_dict()}, "h.jsonl") == frozen
    for bad in ({"every": 0}, {"every": "150"}, [150]):
        with pytest.raises(HistoryError, match="h.jsonl, line 1: the header's settings are not valid"):
            header_settings({**header, "finetune": bad}, "h.jsonl")
    gp, X, y, Xp, yp, Xt, yt, _ = data
    with pytest.raises(ValueError, match="finetune_every=150 needs the network fine-tuned"):
        ActiveLearner(gp, X, y, Xp, yp, Xt, yt, tuned)


def test_compare_measures_each_strategy_against_random_under_its_own_settings():
    """A fine-tuned strategy is measured against fine-tuned random (its twin), every other one against the frozen
    random baseline; a strategy without a saved twin (batch 10 here) falls back to it."""
    from cfgp.pipeline import al_baselines

    def hist(maes):
        return [{"n_train": 100 + i, "mae": m} for i, m in enumerate(maes)]

    settings = {"random-b1-pool7195-ft150": ALSettings(strategy="random", finetune_every=150),
                "entropy-b1-pool7195-ft150": ALSettings(strategy="entropy", finetune_every=150),
                "entropy-b10-pool7195": ALSettings(strategy="entropy", batch_size=10),
                "random-b1-pool7195": ALSettings(strategy="random")}
    baseline, against = al_baselines(settings)
    assert baseline == "random-b1-pool7195"  # the frozen one, though the fine-tuned one is listed first
    assert against == {"random-b1-pool7195-ft150": "random-b1-pool7195",
                       "entropy-b1-pool7195-ft150": "random-b1-pool7195-ft150",
                       "entropy-b10-pool7195": "random-b1-pool7195", "random-b1-pool7195": "random-b1-pool7195"}
    res = compare({"random-b1-pool7195-ft150": [hist([1.0, 0.9, 0.6, 0.5])],
                   "entropy-b1-pool7195-ft150": [hist([1.0, 0.7, 0.6, 0.5])],
                   "random-b1-pool7195": [hist([1.0, 0.9, 0.8, 0.7])]}, baseline=baseline, against=against)
    assert res["entropy-b1-pool7195-ft150"]["baseline"] == "random-b1-pool7195-ft150"
    assert res["entropy-b1-pool7195-ft150"]["labels_to_reach_baseline"] == 3  # fine-tuned random's 0.5, not 0.7
    assert res["random-b1-pool7195-ft150"]["labels_to_reach_baseline"] == 2
    with pytest.raises(ValueError, match="no active-learning groups"):
        al_baselines({})
    assert al_baselines({"entropy-b1-pool7195": ALSettings(strategy="entropy")})[0] == "entropy-b1-pool7195"


def test_default_baseline_is_the_first_frozen_random_group():
    from cfgp.pipeline import default_baseline

    assert default_baseline({"random-ft": False, "random": True, "random-b10": True}) == "random"
    assert default_baseline({"random-ft": False, "random-ft2": False}) == "random-ft"
    with pytest.raises(ValueError, match="no groups"):
        default_baseline({})
