"""Fair scores for active-learning runs, beside "labels to reach random's final MAE".

"Labels to reach" reads one point of two mean curves and can flatter a strategy whose curve
merely touches the target early; these scores use the whole curves and pair the seeds:

- MAE at equal label counts, strategy minus baseline **for the same seed** (same initial GP,
  same pool subsample), with the mean, the spread over seeds and the count of pairs;
- the area under the MAE-vs-labels curve (trapezoid, divided by the label range: the average MAE
  over the run), also paired;
- the share of phosphates among the picks against their share of the pool (the paper flags
  phosphates as the GP's outliers: does a σ-driven strategy seek them out or avoid them?);
- the paper's own protocol: its code scored each cycle on the materials still unlabelled, a pool
  that entropy empties of its most uncertain (typically worst) members, so that score improves
  even when the model does not. :func:`pool_scored_mae` replays a history's picks to compute it.

Histories are the records written by :func:`cfgp.al.run_history` (cycle 0 is the start).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from cfgp.al import ALSettings, labels_to_reach
from cfgp.data import DataError
from cfgp.pipeline import (ReadHistories, active_learner, al_baselines, al_pool_ids, load_gp, read_al_histories,
                           up_to_labels)

#: label counts at which paired differences are reported (those a run has not reached are left out)
DEFAULT_AT = (100, 250, 500, 1000, 1500, 3000, 6000)


def _curve(records: Sequence[dict], key: str = "mae") -> tuple[np.ndarray, np.ndarray]:
    labels = np.array([r["n_train"] for r in records]) - records[0]["n_train"]
    return labels, np.array([r[key] for r in records], dtype=float)


def area_under_curve(records: Sequence[dict], key: str = "mae", upto: int | None = None) -> float:
    """Average of ``key`` over the labels 0..``upto`` (trapezoid area / label range)."""
    labels, values = _curve(records, key)
    if upto is not None:
        keep = labels <= upto
        labels, values = labels[keep], values[keep]
    if len(labels) < 2:
        raise ValueError("a curve needs at least two cycles")
    return float(np.trapezoid(values, labels) / (labels[-1] - labels[0]))


def value_at(records: Sequence[dict], n_labels: int, key: str = "mae") -> float | None:
    """``key`` after exactly ``n_labels`` new labels (None when the run stopped before)."""
    labels, values = _curve(records, key)
    hit = np.flatnonzero(labels == n_labels)
    return float(values[hit[0]]) if len(hit) else None


def paired_summary(diffs: list[float]) -> dict:
    """Mean, spread and a 95 % Student-t interval of the mean of paired differences (None with one pair)."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    half = float(stats.t.ppf(0.975, len(d) - 1) * sd / np.sqrt(len(d))) if len(d) > 1 else None
    return {"mean": float(d.mean()), "std": sd, "ci95": [float(d.mean()) - half, float(d.mean()) + half]
            if half is not None else None, "min": float(d.min()), "max": float(d.max()), "pairs": int(len(d))}


def reach_baseline(strategy: Mapping[int, Sequence[dict]], baseline: Mapping[int, Sequence[dict]],
                   key: str = "mae") -> dict:
    """Per seed, the labels a strategy needs to reach the same seed's baseline MAE at the baseline's last label
    count (e.g. random's after 1,500), and that count over the labels needed (the label saving, ×)."""
    seeds = sorted(set(strategy) & set(baseline))
    per_seed = {}
    for s in seeds:
        base_labels, base_values = _curve(baseline[s], key)
        end, target = int(base_labels[-1]), float(base_values[-1])
        labels, values = _curve(strategy[s], key)
        per_seed[int(s)] = {"baseline_labels": end, "target": target,
                            "labels": labels_to_reach(values, labels, target)}
    need = [v["labels"] for v in per_seed.values()]
    reached = [n for n in need if n is not None]
    return {"per_seed": per_seed, "reached_by_all": len(reached) == len(need) and bool(need),
            "labels_max": max(reached) if reached and len(reached) == len(need) else None,
            "labels_mean": float(np.mean(reached)) if len(reached) == len(need) and need else None,
            "saving_min": (min(v["baseline_labels"] / max(v["labels"], 1) for v in per_seed.values())
                           if len(reached) == len(need) and need else None)}


def paired_comparison(strategy: Mapping[int, Sequence[dict]], baseline: Mapping[int, Sequence[dict]],
                      at: Iterable[int] = DEFAULT_AT, key: str = "mae") -> dict:
    """Strategy − baseline per seed, at equal label counts and over the whole curve (area).

    ``strategy`` and ``baseline`` map seed → records. Only seeds present in both are paired; the
    area is taken over the label range both runs of a pair reached. A negative difference means
    the strategy's MAE is lower.
    """
    seeds = sorted(set(strategy) & set(baseline))
    if not seeds:
        raise ValueError("no seed is shared by the two strategies; paired scores need the same seeds")
    out: dict = {"seeds": seeds, "at": {}}
    for n in at:
        pairs = [(value_at(strategy[s], n, key), value_at(baseline[s], n, key)) for s in seeds]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            continue
        out["at"][int(n)] = {"strategy": float(np.mean([a for a, _ in pairs])),
                             "baseline": float(np.mean([b for _, b in pairs])),
                             "difference": paired_summary([a - b for a, b in pairs]),
                             "relative": paired_summary([a / b - 1 for a, b in pairs])}
    areas = []
    for s in seeds:
        upto = int(min(_curve(strategy[s], key)[0][-1], _curve(baseline[s], key)[0][-1]))
        areas.append((area_under_curve(strategy[s], key, upto), area_under_curve(baseline[s], key, upto)))
    out["area"] = {"strategy": float(np.mean([a for a, _ in areas])), "baseline": float(np.mean([b for _, b in areas])),
                   "difference": paired_summary([a - b for a, b in areas]),
                   "relative": paired_summary([a / b - 1 for a, b in areas])}
    return out


def phosphate_share(histories: Iterable[Sequence[dict]], is_phosphate: Mapping[str, bool],
                    pool_ids: Iterable[str]) -> dict:
    """Share of phosphates among all picks of the histories, against their share of the pool. A DataError names a
    few ids that ``is_phosphate`` does not know (a history or pool of another data set), since a share over the
    known ones alone would be silently wrong."""
    picks = [i for h in histories for r in h for i in r["picked"]]
    pool = list(pool_ids)
    for what, ids in (("picked", picks), ("pool", pool)):
        unknown = [i for i in ids if i not in is_phosphate]
        if unknown:
            raise DataError(f"{len(unknown):,} {what} material id(s) not in the data set, e.g. "
                            f"{', '.join(repr(str(i)[:40]) for i in unknown[:5])}")
    return {"picks": len(picks), "picks_phosphate_share": float(np.mean([is_phosphate[i] for i in picks])) if picks else
            float("nan"), "pool_phosphate_share": float(np.mean([is_phosphate[i] for i in pool]))}


def pool_scored_mae(learner, records: Sequence[dict]) -> np.ndarray:
    """The paper's score: MAE over the pool materials still unlabelled, after each cycle of ``records``.

    ``learner`` is a fresh :class:`cfgp.al.ActiveLearner` of the history's settings (cycle 0); the
    picks are replayed onto it (each a real GP update, no selection). The test MAE it recomputes must
    match the stored one, which guards against replaying a history onto the wrong model.
    """
    out = np.empty(len(records))
    for i, rec in enumerate(learner.replay(list(records))):
        now = learner.record()  # the scores a live run records, so both are defined in one place
        out[i], mae = now["pool_mae"], now["mae"]
        if abs(mae - rec["mae"]) > 1e-6 * max(1.0, abs(rec["mae"])):
            raise ValueError(f"cycle {rec['cycle']}: replayed test MAE {mae:.6f} differs from the stored "
                             f"{rec['mae']:.6f}; the history was made with another model or split")
    return out


def runs_by_seed(run, labels: int | None = None, read: ReadHistories | None = None,
                 ) -> dict[str, dict[int, tuple[ALSettings, list[dict]]]]:
    """A run's saved histories (shipped and the user's, as :meth:`cfgp.pipeline.Run.al_histories` lists
    them): label → seed → (settings, records), label and settings from each header; with ``labels``, cut after
    that many new labels, those stopping before left out (:func:`cfgp.pipeline.up_to_labels`). ``read``: the
    histories already read (:func:`cfgp.pipeline.read_al_histories`). Read only."""
    out: dict[str, dict[int, tuple[ALSettings, list[dict]]]] = {}
    for saved, records in read_al_histories(run) if read is None else read:
        records = up_to_labels(records, labels)
        if records is not None:
            out.setdefault(saved.label, {})[saved.settings.seed] = (saved.settings, records)
    return out


def fair_report(run, baseline: str | None = None, at: Iterable[int] = DEFAULT_AT, pool_scored: bool = False,
                progress=None, labels: int | None = None, read: ReadHistories | None = None) -> dict:
    """Paired scores of every saved strategy against its twin (random under the same settings, where saved) or
    ``baseline`` (default: the first random one with the network frozen: :func:`cfgp.pipeline.al_baselines`), the
    phosphate share of the picks and, with ``pool_scored``, the paper's pool-scored MAE (as each history recorded
    it, or, for a history written without it, by replaying its picks: ~20 s per 1,500 cycles on 2 cores). With
    ``labels``, every history is cut after that many new labels and those stopping before are left out, so "the
    baseline's final MAE" is its MAE at ``labels``. ``read``: the histories already read
    (:func:`cfgp.pipeline.read_al_histories`); left unchanged (a replayed pool MAE goes into copies)."""
    read = read_al_histories(run) if read is None else read
    groups = runs_by_seed(run, labels, read)
    if not groups:
        raise FileNotFoundError(f"{run.dir / 'al'}: no active-learning histories; run `cfgp al` first")
    if baseline is not None and baseline not in groups:
        raise ValueError(f"no histories labelled {baseline!r}; saved: {', '.join(sorted(groups))}")
    baseline, against = al_baselines({label: next(iter(by_seed.values()))[0] for label, by_seed in groups.items()},
                                     baseline)
    frame = run.materials.frame
    is_phosphate = dict(zip(frame.material_id.astype(str), frame.is_phosphate.astype(bool)))
    gp = load_gp(run, conditioned=False) if pool_scored else None
    report: dict = {"baseline": baseline, "labels": labels, "strategies": {}}
    records_of = {label: {s: r for s, (_, r) in by_seed.items()} for label, by_seed in groups.items()}
    for label, by_seed in groups.items():
        settings = next(iter(by_seed.values()))[0]
        entry: dict = {"seeds": sorted(by_seed)}
        if label != against[label]:
            entry["baseline"] = against[label]
            entry["paired"] = paired_comparison(records_of[label], records_of[against[label]], at)
            entry["reach_baseline"] = reach_baseline(records_of[label], records_of[against[label]])
        if pool_scored:
            for seed, (seed_settings, recs) in sorted(by_seed.items()):
                if all(np.isfinite(r.get("pool_mae", np.nan)) for r in recs):
                    continue  # recorded by the run itself (ActiveLearner.record, the same definition)
                if progress:
                    progress(f"replaying {label} seed {seed} ({len(recs) - 1} cycles) for the pool-scored MAE")
                pm = pool_scored_mae(active_learner(run, seed_settings, gp), recs)
                records_of[label][seed] = [dict(rec, pool_mae=float(v)) for rec, v in zip(recs, pm)]
        try:
            entry["phosphates"] = phosphate_share(records_of[label].values(), is_phosphate,
                                                  al_pool_ids(run, settings))
        except DataError as exc:
            files = ", ".join(str(saved.path) for saved, _ in read if saved.label == label)
            raise DataError(f"{files or label}: {exc}") from None
        report["strategies"][label] = entry
    if pool_scored:
        for label, entry in report["strategies"].items():
            if label != against[label]:
                entry["paired_pool_scored"] = paired_comparison(records_of[label], records_of[against[label]], at,
                                                                key="pool_mae")
    return report


