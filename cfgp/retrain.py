"""The paper's last step: re-train MEGNet and the GP on the train split plus an active-learning run's picks.

Active learning with frozen latents can only reweight what the network already represents; the paper's
headline (test MAE 0.0277 eV/atom) comes after re-training the network on 1,800 + 6,000 picked materials.
:func:`retrain` makes that a run of its own, next to the base run:

    out/run.json     the base run's data settings plus a ``retrain`` block (base, history, picks, warm start);
                     the run reads the base's stored P-site motifs through it (same data, never recomputed)
    out/split.json   train = base train + the first ``picks`` picks; pool = the rest; test unchanged
    out/training/    MEGNet checkpoints (resumable, like ``cfgp train``)
    out/retrain.json the result: strategy, seed, picks, epochs, best epoch, training MAE there, whether the
                     stopping rule was met, test MAE, 2σ coverage, miscalibration area, pool-scored MAE

Stopping follows the base network's rule (no 1 % validation improvement over a 100-epoch patience window, at
most 1,000 epochs) so that every retrain is trained to convergence, not to a fixed budget. Early stopping uses
one set for every strategy and seed: the base network's own validation materials, which it never fitted and
which lie in the train split, so no candidate pool ever holds them and no strategy's picks decide when its
network stops. The test split is never used before the final evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cfgp.al import ALSettings, History, history_name
from cfgp.artefacts import read_json, refuse_shipped_write, write_json
from cfgp.featurize import SETTINGS_FILE, MEGNetSettings, training_seconds
from cfgp.pipeline import (LATENTS_FILE, TRAIN_MAX_EPOCHS, TRAIN_MIN_REL_IMPROVEMENT, TRAIN_PATIENCE, Run,
                           al_pool_ids, derived_run, evaluate, featurize, fit_gp, held_out_positions, repo_path,
                           train_megnet)

RESULT_FILE = "retrain.json"


def picked_ids(history: str | Path, base: Run, picks: int | None = None) -> tuple[dict, list[str]]:
    """The header and the first ``picks`` picked material ids of a history made on ``base``."""
    if not Path(history).is_file():
        raise FileNotFoundError(f"{history}: no such history file (give a .jsonl written by `cfgp al`)")
    header, records = History(history).read()
    if header is None:
        raise ValueError(f"{history}: not an active-learning history (no header)")
    z = np.load(base.path(LATENTS_FILE), allow_pickle=False)
    if header.get("latents_hash") != str(z["model_hash"]) or header.get("split") != base.settings["split"]:
        raise ValueError(f"{history} was made on another model or split than {base.dir}; retrain it from its own run")
    ids = [i for r in records for i in r["picked"]]
    if picks is not None:
        if picks > len(ids):
            raise ValueError(f"{history} holds {len(ids)} picks, fewer than the {picks} asked for")
        ids = ids[:picks]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{history}: a material is picked twice")
    return header, ids


def make_retrain_run(base: Run, history: str | Path, out: str | Path, picks: int | None = None,
                     warm_start: bool = False, seed: int = 0) -> Run:
    """Create (or check, when resuming) the run folder of a retrain: base train + picks, same test."""
    return _retrain_folder(base, history, Path(out), *picked_ids(history, base, picks), warm_start, seed)


def _retrain_folder(base: Run, history, out: Path, header: dict, ids: list[str], warm_start: bool, seed: int) -> Run:
    m, sp = base.materials, base.split
    pick_rows = m.index_of(ids)
    if not np.isin(pick_rows, sp.pool).all():
        raise ValueError(f"{history}: some picks are not in {base.dir}'s pool")
    # paths as the repository sees them (relative to its root when inside it), so a resume from another folder matches
    block = {"base_run": repo_path(base.dir), "history": repo_path(history), "strategy": header["settings"]["strategy"],
             "al_seed": header["settings"]["seed"], "picks": len(ids), "warm_start": warm_start, "seed": seed,
             "early_stopping": EARLY_STOPPING}
    return derived_run(base, out, "retrain", block, np.union1d(sp.train, pick_rows), np.setdiff1d(sp.pool, pick_rows),
                       same=_same_history)


def _same_history(block: dict | None) -> dict | None:
    """A retrain's settings with its history named without ``.gz``: a history gzipped later (as the default ships
    them) holds the same records, so a job started on the plain file resumes on the gzipped one."""
    if not isinstance(block, dict) or not isinstance(block.get("history"), str):
        return block
    return {**block, "history": history_name(block["history"])}


#: the stopping rule of every retrain: the base network's
MAX_EPOCHS, PATIENCE, MIN_REL_IMPROVEMENT = TRAIN_MAX_EPOCHS, TRAIN_PATIENCE, TRAIN_MIN_REL_IMPROVEMENT
#: names the early-stopping set in a retrain folder's settings (a folder made under another rule is refused)
EARLY_STOPPING = "base network's validation materials (shared by every strategy and seed)"


def early_stopping_ids(base: Run) -> list[str]:
    """The one early-stopping set of every retrain on ``base``: its network's validation materials (in the train
    split, so never a candidate of any AL pool, and never fitted by the base network)."""
    return base.materials.ids[held_out_positions(base)].tolist()


def train_mae_at(history: list[dict], epoch: int) -> float | None:
    """Training MAE logged in the epoch ``epoch`` (1-based) of a training history."""
    rows = [h for h in history if h["epoch"] == epoch]
    return float(rows[-1]["mae"]) if rows else None


def retrain(base: Run, history: str | Path, out: str | Path, picks: int | None = None, epochs: int = MAX_EPOCHS,
            patience: int = PATIENCE, warm_start: bool = True, seed: int = 0,
            min_rel_improvement: float = MIN_REL_IMPROVEMENT, max_seconds: float | None = None,
            progress: bool = True) -> dict:
    """Re-train MEGNet on base train + picks (warm-started from the base model, or from scratch), re-featurise,
    refit the GP and evaluate on the base run's test split; writes and returns ``retrain.json``.

    Warm start (fine-tuning the base network) is the default: at convergence on one history it reached a lower
    validation MAE than fresh weights in fewer epochs (238 against 300; ``experiments/paper-scale/README.md``).

    Interrupted (``max_seconds`` or a kill), it resumes from its checkpoint when called again; the result
    says ``finished: false`` until the training stops by itself.
    """
    refuse_shipped_write(out)  # before the history is read: a retrain never goes into data/default
    header, ids = picked_ids(history, base, picks)
    run = _retrain_folder(base, history, Path(out), header, ids, warm_start, seed)
    block = run.settings["retrain"]
    if (run.dir / RESULT_FILE).exists():
        done = read_json(run.dir / RESULT_FILE)
        if done.get("finished") and "mae" in done:  # a finished retrain is a result, not a job: never redone
            return done
    settings = MEGNetSettings(**read_json(base.dir / SETTINGS_FILE))
    if not warm_start:
        from dataclasses import replace

        settings = replace(settings, seed=seed)
    feat, state = train_megnet(run, settings, epochs=epochs, patience=patience, max_seconds=max_seconds,
                               progress=progress, min_rel_improvement=min_rel_improvement,
                               val_ids=early_stopping_ids(base),
                               init_from=base.dir if warm_start else None)
    base_state = read_json(base.dir / "training" / "train_state.json") if \
        (base.dir / "training" / "train_state.json").exists() else None
    result = {"strategy": block["strategy"], "seed": block["al_seed"], "picks": block["picks"],
              "warm_start": warm_start, "epochs": state.epoch, "best_epoch": state.best_epoch,
              "best_val_mae": state.best_val_mae, "train_mae_at_best": train_mae_at(state.history, state.best_epoch),
              "base_train_mae_at_best": train_mae_at(base_state["history"], base_state["best_epoch"])
              if base_state else None,
              "finished": state.finished, "reason": state.reason,
              # converged: stopped by the rule (no relative improvement over the patience window), not by a cap
              "converged": bool(state.finished and state.reason.startswith("early stop")),
              "rule": {"max_epochs": epochs, "patience": patience, "min_rel_improvement": min_rel_improvement},
              "early_stopping": {"set": EARLY_STOPPING, "n": len(early_stopping_ids(base))},
              "base_run": block["base_run"], "history": block["history"], "retrain_seed": seed}
    t_trained = time.time()
    if state.finished:
        featurize(run, progress=progress)
        gp = fit_gp(run)
        metrics = evaluate(run, gp)
        result.update({k: metrics[k] for k in ("mae", "rmse", "coverage_2sigma", "miscalibration_area", "n_test",
                                               "n_train")})
        result["hyperparameters"] = metrics["hyperparameters"]
        # the paper's protocol: MAE on the AL run's candidates left unlabelled (not comparable with the fixed test)

        left = np.setdiff1d(al_pool_ids(base, ALSettings(**header["settings"])), np.asarray(ids, dtype=object))
        rows = run.materials.index_of(left.tolist())
        X = run.latents()[rows]
        ok = np.isfinite(X).all(axis=1)
        result["pool_scored_mae"] = float(np.mean(np.abs(gp.predict(X[ok]) - run.materials.y[rows][ok])))
        result["n_pool_scored"] = int(ok.sum())
    # every sitting's epochs (from the epoch log, so killed sittings count too) plus the final featurise, fit and
    # evaluation; a sitting's graph conversion before its first epoch is not counted
    result["train_seconds"] = training_seconds(state.history)  # wall-clock, pauses included
    result["train_cpu_seconds"] = training_seconds(state.history, "cpu_seconds")  # None for older epoch logs
    result["seconds"] = round(result["train_seconds"] + time.time() - t_trained, 1)
    write_json(run.dir / RESULT_FILE, result)
    return result
