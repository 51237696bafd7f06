"""Committed active-learning runs as arrays per cycle, for replaying them without any GP work.

A history file holds one record per cycle (metrics and the ids picked in that cycle). A replay reads the curve
and the picks up to any cycle in O(1) slices, so a viewer can jump (scrub) or advance hundreds of cycles a second
and send only what changed. Nothing here imports a UI library; the dashboard's Active-learning tab draws these
arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from cfgp.al import ALSettings, curves, header_settings
from cfgp.pipeline import ALGroup, al_label, default_baseline, random_twin


@dataclass(frozen=True)
class Replay:
    """A committed run as arrays: record c's metrics at index c; picks of cycles 1..c are ``[:ends[c]]``."""

    stem: str
    settings: dict
    n_train: np.ndarray
    labels: np.ndarray
    mae: np.ndarray
    pool_mae: np.ndarray  # the paper's scoring: MAE on the candidates still unlabelled (NaN if not recorded)
    coverage: np.ndarray
    seconds: np.ndarray
    ends: np.ndarray
    pick_rows: np.ndarray
    pick_ids: np.ndarray
    pick_formula: np.ndarray
    pick_cycle: np.ndarray

    @property
    def n_cycles(self) -> int:
        return len(self.mae) - 1

    @property
    def run_settings(self) -> dict:
        """The settings of the run as replayed: its header's, with the cycles it holds (a history extended later,
        e.g. the default's 1,500-pick runs taken on to 6,000, keeps the cycle count of its first sitting)."""
        return {**self.settings, "cycles": self.n_cycles}

    def clamp(self, cycle: int) -> int:
        """A cycle a replay can show (a scrub or a URL may ask for any number)."""
        return int(min(max(int(cycle), 0), self.n_cycles))

    def curve(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The learning-curve points of cycles ``start..stop-1`` (the columns the curve draws)."""
        return {"labels": self.labels[start:stop], "mae": self.mae[start:stop], "cycle": np.arange(start, stop),
                "coverage": self.coverage[start:stop], "pool_mae": self.pool_mae[start:stop]}

    def pick_slice(self, cycle_from: int, cycle_to: int) -> slice:
        """The picks made after cycle ``cycle_from`` up to and including cycle ``cycle_to``."""
        return slice(int(self.ends[cycle_from]) if cycle_from > 0 else 0, int(self.ends[cycle_to]))

    def picked_ids(self, cycle: int) -> list[str]:
        """Every id picked up to cycle ``cycle`` (the selection a replay shows at that cycle)."""
        return self.pick_ids[: self.ends[cycle]].tolist()


def replay_of(stem: str, header: dict, records: list[dict], row_of_id: Mapping[str, int],
              formulas: np.ndarray) -> Replay:
    """Arrays per cycle of one history; picks that are not in ``row_of_id`` (not this run's materials) are left
    out, as they cannot be drawn."""
    rows, ids, cyc, ends = [], [], [], []
    for c, rec in enumerate(records):
        for pid in rec.get("picked", []) if c else []:
            r = row_of_id.get(pid)
            if r is not None:
                rows.append(r)
                ids.append(pid)
                cyc.append(c)
        ends.append(len(rows))
    n_train = np.array([r["n_train"] for r in records])
    rows_a = np.asarray(rows, dtype=int)
    # the header's settings as the core reads them (a fine-tuned run's "finetune" block gives finetune_every)
    return Replay(stem=stem, settings=header_settings(header, stem).to_dict(), n_train=n_train,
                  labels=n_train - n_train[0], mae=np.array([r["mae"] for r in records], float),
                  pool_mae=np.array([r.get("pool_mae", np.nan) for r in records], float),
                  coverage=np.array([r.get("coverage_2sigma", np.nan) for r in records], float),
                  seconds=np.array([r.get("seconds", 0.0) for r in records], float),
                  ends=np.asarray(ends, dtype=int), pick_rows=rows_a, pick_ids=np.asarray(ids, dtype=object),
                  pick_formula=np.asarray(formulas, dtype=object)[rows_a], pick_cycle=np.asarray(cyc, dtype=int))


def random_bands(histories: Mapping[str, ALGroup]) -> list[dict]:
    """Mean ± 2 std over seeds of every random-strategy run group (the baseline band behind a replay's curve),
    ``histories`` as :func:`cfgp.pipeline.load_al_histories` groups them; ``pool_mean`` is the mean of the same runs
    scored on their unlabelled pool (the paper's scoring; NaN if not recorded)."""
    bands = []
    for label, hists in sorted(histories.items()):
        if hists.settings.strategy == "random":
            c, p = curves(hists), curves(hists, key="pool_mae")
            bands.append({"label": label, "seeds": len(hists), "labels": c["labels"], "mean": c["mean"],
                          "lower": c["mean"] - 2 * c["std"], "upper": c["mean"] + 2 * c["std"],
                          "pool_mean": p["mean"], "frozen": hists.settings.finetune_every is None})
    return bands


def band_for(settings: Mapping, bands: list[dict]) -> str | None:
    """The label of the random band a run of ``settings`` (a header's or the controls', as a dict) is drawn
    against: random under the same settings where committed (a fine-tuned run beside fine-tuned random), else
    the first band with the network frozen (the paper's baseline); None without bands."""
    if not bands:
        return None
    labels = [b["label"] for b in bands]
    try:
        twin = random_twin(ALSettings(**settings))
    except (TypeError, ValueError):
        twin = None
    if twin in labels:
        return twin
    return default_baseline({b["label"]: b.get("frozen", True) for b in bands})


def committed_groups(settings: Iterable[Mapping]) -> dict[str, tuple[int, bool]]:
    """Committed histories (their headers' settings) by group label → (how many seeds, whether the network was
    fine-tuned during the runs), sorted by label: what a run's replay menu holds, in a lesson's words."""
    groups: dict[str, tuple[int, bool]] = {}
    for s in settings:
        settings_ = ALSettings(**s)
        label = al_label(settings_)
        n, _ = groups.get(label, (0, False))
        groups[label] = (n + 1, settings_.finetune_every is not None)
    return dict(sorted(groups.items()))


def pool_rows(split: np.ndarray, xy: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Rows of the pool split that can be drawn (a finite map position and a finite σ)."""
    ok = np.isfinite(xy).all(axis=1) & np.isfinite(sigma)
    return np.flatnonzero((np.asarray(split) == "pool") & ok)


def background_rows(xy: np.ndarray, most: int, seed: int = 0) -> np.ndarray | None:
    """A seeded, sorted subsample of at most ``most`` drawable rows; None when every row fits."""
    shown = np.flatnonzero(np.isfinite(xy).all(axis=1))
    if len(shown) <= most:
        return None
    return np.sort(np.random.default_rng(seed).choice(shown, most, replace=False))


def replay_target(start_cycle: int, speed: float, elapsed_s: float, shown: int, n_cycles: int) -> int:
    """The cycle a playing replay should show ``elapsed_s`` after it started at ``start_cycle``: at ``speed``
    cycles per second (dropped frames catch up), at least one past the shown cycle, never past the end."""
    target = max(start_cycle + int(speed * elapsed_s), shown + 1)
    return int(min(target, n_cycles))


class ReplayPlayback:
    """Where one replay stands: the cycle shown, the cycle whose picks the map already has, and the clock of a
    Play (a replay advances at its speed from the moment Play was pressed, so dropped frames catch up)."""

    def __init__(self, replay: Replay):
        self.replay = replay
        self.cycle = 0
        self.map_cycle = 0
        self.clock = (0.0, 0)  # (time, cycle) the current Play is anchored at

    @property
    def finished(self) -> bool:
        return self.cycle >= self.replay.n_cycles

    def start_clock(self, now: float) -> None:
        """Play (or a new speed) counts from ``now`` and the cycle shown."""
        self.clock = (now, self.cycle)

    def target(self, speed: float, now: float) -> int:
        """The cycle the next frame shows at ``speed`` cycles per second."""
        t0, c0 = self.clock
        return replay_target(c0, speed, now - t0, self.cycle, self.replay.n_cycles)

    def map_picks(self) -> tuple[slice, slice] | None:
        """(picks the map lacks, picks of the shown cycle) as slices of the replay's pick arrays, or None when the
        map is up to date; the map counts as up to date afterwards."""
        a, c = self.map_cycle, self.cycle
        if c <= a:
            return None
        self.map_cycle = c
        return self.replay.pick_slice(a, c), self.replay.pick_slice(c - 1, c)
