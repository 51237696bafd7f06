"""One session's live active-learning run: the learner, what the browser has been sent of it, and Play's pacing.

The Active-learning tab owns the timer and the Bokeh sources; this class owns the run. A GP step
(:meth:`LiveRun.step_work`) runs on the shared worker pool, or inline when steps are faster than a thread
hand-off, and returns only what the browser must be told: the record, the picks and the σ values that moved by
more than a visible fraction of the colour range. Map deltas queue here between repaints (:meth:`LiveRun.queue`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: a GP step shorter than this runs on the event loop (a thread hand-off costs more on a busy CPU); longer ones
#: run on the worker pool so that they never stall other sessions
INLINE_STEP_S = 0.005
#: most steps one tick may run when ticks come late (tornado skips ticks on a busy CPU)
MAX_CATCH_UP = 3
#: GP steps of every session run here (numpy releases the GIL in the heavy parts); one step per session at a time
STEPS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="al-step")


class LiveRun:
    """A built learner and the σ the browser shows per pool point (updated by each step's deltas)."""

    def __init__(self, learner, sigma: np.ndarray, threshold: float, n0: int):
        self.learner = learner
        self.sent_sigma = np.array(sigma, dtype=np.float32, copy=True)
        self.threshold = threshold  # σ moves smaller than this are not sent
        self.n0 = n0  # labelled materials at cycle 0
        self.pending: dict | None = None  # map deltas not yet sent
        self.step_seconds = float("inf")  # smoothed step time: unknown, so the first step goes to a thread
        self.clock = (0.0, 0)  # (time, cycle) the current Play is anchored at, to honour its speed

    @property
    def finished(self) -> bool:
        lr = self.learner
        return lr.cycle >= lr.settings.cycles or not lr.available.any()

    @property
    def inline(self) -> bool:
        """Steps are fast enough to run on the event loop."""
        return self.step_seconds < INLINE_STEP_S

    def start_clock(self, now: float) -> None:
        self.clock = (now, self.learner.cycle)

    def steps_due(self, speed: float, now: float) -> int:
        """Steps one tick should run at ``speed`` steps/s: a late tick catches up a few, never a backlog; more than
        a second behind is forgiven (the clock restarts) rather than replayed in a burst."""
        t0, c0 = self.clock
        behind = int((now - t0) * speed) - (self.learner.cycle - c0)
        if behind > speed:
            self.clock, behind = (now, self.learner.cycle), 1
        return min(max(behind, 1), MAX_CATCH_UP)

    def step_work(self) -> dict:
        """One real step, then what the browser must be told (picks, σ that moved visibly). Runs on a worker."""
        learner, sent = self.learner, self.sent_sigma
        rec = learner.step()
        n_new = len(rec["picked"])
        picks = np.asarray(learner.picked[len(learner.picked) - n_new:], dtype=int)
        std = learner.posterior.std[: learner.n_pool]
        moved = np.flatnonzero(learner.available & (np.abs(std - sent) > self.threshold))
        sent[moved] = std[moved]
        out = {"rec": rec, "picks": picks, "rows": np.asarray(learner.pool_index)[picks],
               "moved": moved, "values": std[moved].astype(np.float32)}
        if len(moved) > max(256, len(sent) // 8):  # many points: one binary column beats a long JSON patch
            out["column"] = sent.astype(np.float32)
        return out

    def landed(self, payload: dict) -> None:
        """A step's result arrived: time it (smoothed, so one slow step on a busy CPU does not flip the path) and
        queue its map deltas."""
        rec = payload["rec"]
        last = self.step_seconds
        self.step_seconds = rec["seconds"] if last == float("inf") else 0.7 * last + 0.3 * rec["seconds"]
        self.queue(payload, rec["cycle"])

    def queue(self, payload: dict, cycle: int) -> None:
        """Merge one step's map deltas into those not yet sent (σ patches by point, picks in order)."""
        p = self.pending or {"column": None, "sigma": {}, "hide": [], "rows": [], "cycles": []}
        if "column" in payload:  # a whole column supersedes the patches queued before it
            p["column"], p["sigma"] = payload["column"], {}
        else:
            p["sigma"].update(zip(payload["moved"].tolist(), payload["values"].tolist()))
        rows = payload["rows"]
        p["hide"] += [int(i) for i in payload["picks"]]
        p["rows"] += [int(r) for r in rows]
        p["cycles"] += [cycle] * len(rows)
        p["latest"] = [int(r) for r in rows]
        self.pending = p

    def take(self) -> dict | None:
        """The queued map deltas (None if nothing changed since the last repaint); the queue is emptied."""
        p, self.pending = self.pending, None
        return p
