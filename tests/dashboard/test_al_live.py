"""A live AL run of one session, without a browser: a real step on the tiny run's GP tells the browser only the
σ that moved visibly, map deltas merge between repaints, and Play's pacing catches up a little, never a burst."""

import numpy as np
import pytest

from cfgp.al import ALSettings
from cfgp.dashboard.al_live import MAX_CATCH_UP, LiveRun


@pytest.fixture(scope="module")
def live(tiny_run):
    from cfgp.pipeline import active_learner, load_gp

    learner = active_learner(tiny_run, ALSettings(strategy="entropy", cycles=3, batch_size=2, seed=0),
                             load_gp(tiny_run, conditioned=False))
    rec0 = learner.record()
    sigma = learner.posterior.std[: learner.n_pool].astype(np.float32)
    return LiveRun(learner, sigma, threshold=1e-4, n0=rec0["n_train"])


def test_steps_send_moved_sigma_and_merge_map_deltas(live):
    lr = live.learner
    before = live.sent_sigma.copy()
    first = live.step_work()
    assert first["rec"]["cycle"] == 1 and len(first["picks"]) == 2
    assert first["rows"].tolist() == np.asarray(lr.pool_index)[first["picks"]].tolist()
    std = lr.posterior.std[: lr.n_pool]
    np.testing.assert_allclose(first["values"], std[first["moved"]], rtol=1e-6)
    assert len(first["moved"]) and not np.allclose(before[first["moved"]], first["values"])
    still = np.setdiff1d(np.flatnonzero(lr.available), first["moved"])
    assert np.all(np.abs(std[still] - live.sent_sigma[still]) <= live.threshold)  # what was not sent did not move
    live.landed(first)
    assert live.step_seconds == first["rec"]["seconds"]
    second = live.step_work()
    live.landed(second)
    p = live.take()
    assert p["hide"] == first["picks"].tolist() + second["picks"].tolist()
    assert p["rows"] == first["rows"].tolist() + second["rows"].tolist() and p["cycles"] == [1, 1, 2, 2]
    assert p["latest"] == second["rows"].tolist() and live.take() is None
    assert not live.finished
    live.landed(live.step_work())
    assert live.finished  # 3 cycles asked for


def test_play_catches_up_a_little_and_forgives_a_long_stall(live):
    live.start_clock(100.0)
    c = live.learner.cycle
    assert live.clock == (100.0, c)
    assert live.steps_due(10, 100.05) == 1  # on time: one step per tick
    assert live.steps_due(10, 100.25) == 2  # a late tick: the missed step too
    assert live.steps_due(10, 100.9) == MAX_CATCH_UP  # never more than a few at once
    assert live.steps_due(10, 200.0) == 1 and live.clock == (200.0, c)  # long stall: the clock restarts
