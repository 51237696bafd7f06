"""Strategies compared after the paper's retrain: every finished ``cfgp retrain`` folder under a directory, grouped by
the number of picks, each strategy paired with the baseline (random) seed by seed.

Two intervals, because two things vary: seeds (which materials each run picked, how its network trained) — a 95 %
Student-t interval of the mean paired difference over seeds; and the fixed test set's own sampling — a paired
bootstrap over test materials of the MAE difference, per seed pair (the same test materials, predicted by both
retrained models). Only runs that converged by their stated rule are compared; the others are listed as not
converged, never scored. The pool-scored MAE (the paper's protocol, scored on each run's own leftover pool) is
reported beside the fixed-test figures and is not comparable with them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cfgp.al_metrics import paired_summary
from cfgp.artefacts import read_json
from cfgp.featurize import training_progress, training_seconds
from cfgp.pipeline import Run, load_gp, predict_rows
from cfgp.retrain import PATIENCE, RESULT_FILE

#: what each run reports and the report pairs (lower is better for all but coverage)
METRICS = ("mae", "coverage_2sigma", "miscalibration_area", "pool_scored_mae")
#: bootstrap resamples of the test materials per seed pair
BOOTSTRAP = 2000


def finished_retrains(root: str | Path) -> list[dict]:
    """Every ``retrain.json`` under ``root`` (sorted by path), each with its folder as ``dir``."""
    out = []
    for path in sorted(Path(root).rglob(RESULT_FILE)):
        result = read_json(path)
        if isinstance(result, dict) and {"strategy", "seed", "picks"} <= set(result):
            state = path.parent / "training" / "train_state.json"
            if "train_seconds" not in result and state.exists():  # a result written before sittings were summed
                history = read_json(state).get("history", [])
                result["train_seconds"] = training_seconds(history)
                result["train_cpu_seconds"] = training_seconds(history, "cpu_seconds")
            out.append({**result, "dir": str(path.parent)})
    return out


def unfinished_retrains(root: str | Path) -> list[dict]:
    """Retrain folders under ``root`` still training (a checkpoint, no ``retrain.json``), sorted by path: the
    epoch reached, the best validation MAE and its epoch, and the earliest epoch the stopping rule can end it."""
    out = []
    for state_path in sorted(Path(root).rglob("training/train_state.json")):
        folder = state_path.parent.parent
        if (folder / RESULT_FILE).exists():
            continue
        state = read_json(state_path)
        if not isinstance(state, dict):
            continue
        p = training_progress(state, PATIENCE)
        out.append({"dir": str(folder), "epochs": p["epoch"], "best_epoch": p["best_epoch"],
                    "best_val_mae": p["best_val_mae"], "earliest_stop": p["earliest_stop"]})
    return out


def errors_on_test(folder: str | Path) -> dict[str, float]:
    """Absolute error per test material (material id → |GP − DFT|, eV/atom) of one retrained run's GP."""
    run = Run(folder)
    te = np.asarray(run.split.test, dtype=int)
    mean, _ = predict_rows(load_gp(run), run.latents()[te])
    ok = np.isfinite(mean)
    return dict(zip(np.asarray(run.materials.ids)[te][ok], np.abs(mean[ok] - run.materials.y[te][ok])))


def bootstrap_difference(a: dict[str, float], b: dict[str, float], n: int = BOOTSTRAP, seed: int = 0) -> dict:
    """MAE(a) − MAE(b) over the test materials both score, and a 95 % percentile interval from resampling those
    materials with replacement (paired: one draw serves both)."""
    ids = sorted(set(a) & set(b))
    if not ids:
        raise ValueError("the two runs share no scored test material")
    d = np.array([a[i] for i in ids]) - np.array([b[i] for i in ids])
    draws = np.random.default_rng(seed).integers(0, len(d), size=(n, len(d)))
    boot = d[draws].mean(axis=1)
    return {"difference": float(d.mean()), "ci95": [float(v) for v in np.percentile(boot, [2.5, 97.5])],
            "n_test": len(ids), "resamples": n}


def retrain_report(root: str | Path, baseline: str = "random", bootstrap: int = BOOTSTRAP, seed: int = 0) -> dict:
    """Per number of picks: each strategy's converged runs by seed, their mean metrics, and paired differences
    against ``baseline`` (strategy − baseline; negative MAE means the strategy is better). ``bootstrap=0`` leaves
    out the test-set bootstrap (it re-predicts each run's test materials from its stored latents: ~8 s per run)."""
    runs = finished_retrains(root)
    report: dict = {"root": str(root), "baseline": baseline, "not_converged": [],
                    "in_progress": unfinished_retrains(root), "picks": {}}
    by: dict[int, dict[str, dict[int, dict]]] = {}
    for r in runs:
        if not r.get("converged"):
            report["not_converged"].append({"dir": r["dir"], "epochs": r.get("epochs"), "reason": r.get("reason")})
            continue
        if r.get("warm_start") is False:  # the scratch run of the warm/scratch comparison is not paired
            report.setdefault("not_paired", []).append(r["dir"])
            continue
        by.setdefault(int(r["picks"]), {}).setdefault(r["strategy"], {})[int(r["seed"])] = r
    for picks, strategies in sorted(by.items()):
        entry: dict = {"strategies": {}}
        for name, seeds in sorted(strategies.items()):
            entry["strategies"][name] = {
                "seeds": sorted(seeds),
                **{m: float(np.mean([s[m] for s in seeds.values() if m in s])) for m in METRICS
                   if any(m in s for s in seeds.values())},
                "runs": {sd: {m: s.get(m) for m in METRICS + ("epochs", "best_epoch", "best_val_mae",
                                                              "train_mae_at_best", "seconds",
                                                              "train_seconds", "train_cpu_seconds")}
                         for sd, s in sorted(seeds.items())}}
        base = strategies.get(baseline, {})
        for name, seeds in sorted(strategies.items()):
            if name == baseline:
                continue
            shared = sorted(set(seeds) & set(base))
            if not shared:
                continue
            paired = {m: paired_summary([seeds[s][m] - base[s][m] for s in shared]) for m in METRICS
                      if all(m in seeds[s] and m in base[s] for s in shared)}
            paired["relative_mae"] = paired_summary([seeds[s]["mae"] / base[s]["mae"] - 1 for s in shared])
            if bootstrap:
                paired["test_bootstrap"] = {s: bootstrap_difference(errors_on_test(seeds[s]["dir"]),
                                                                    errors_on_test(base[s]["dir"]), bootstrap, seed)
                                            for s in shared}
            entry["strategies"][name]["paired"] = {"seeds": shared, **paired}
        report["picks"][picks] = entry
    return report
