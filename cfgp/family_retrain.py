"""A chemical family held out of the network too: MEGNet re-trained without it, then the family scored as new chemistry.

:func:`cfgp.uncertainty.family_holdout.hold_out_family` re-fits the GP, the domain model and σ without a family but
keeps the run's network, which saw the family's training materials; its latents place the family among the rest, so
that check measures the GP and σ only. Here the family leaves the network's training as well: a run folder of its own
holds the base run's split with the family's members removed from train (they stay in the pool and test, to be
scored), MEGNet is trained from fresh weights by the base network's stopping rule with the base network's
early-stopping materials less the family, every material is featurised with the new network, and the family check
runs on that run. This is what "elements the network never trained" looks like for a whole family, and what the
shipped σ for new chemistry should cover.

Hours of CPU per family on 2 cores: resumable like ``cfgp retrain`` (checkpoints every epoch, ``max_seconds``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from cfgp.artefacts import read_json, write_json
from cfgp.data import DataError
from cfgp.featurize import SETTINGS_FILE, MEGNetSettings, training_seconds
from cfgp.pipeline import Run, derived_run, featurize, repo_path, train_megnet
from cfgp.retrain import MAX_EPOCHS, MIN_REL_IMPROVEMENT, PATIENCE, early_stopping_ids, train_mae_at
from cfgp.uncertainty.family_holdout import (HELD_OUT_FAMILIES, SUMMARY_KEYS, crossfit_new_chemistry, family_report,
                                             hold_out_family, members, score_with_new_chemistry_scale,
                                             summarise_family)

RESULT_FILE = "family.json"


def family_run(base: Run, family: str, out: str | Path, seed: int | None = None,
               families: dict = HELD_OUT_FAMILIES) -> Run:
    """Create (or check, when resuming) the run folder: the base run's split with ``family``'s members (a key of
    ``families``) out of train; pool and test unchanged."""
    if family not in families:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(families)}")
    out = Path(out)
    m, sp = base.materials, base.split
    fam = members(list(m.frame["elements"]), families[family][1])
    seed = base.settings["split"]["seed"] if seed is None else seed
    block = {"base_run": repo_path(base.dir), "held_out_family": family, "seed": seed,
             "rule": {"max_epochs": MAX_EPOCHS, "patience": PATIENCE, "min_rel_improvement": MIN_REL_IMPROVEMENT}}
    return derived_run(base, out, "family_network", block, sp.train[~fam[sp.train]], sp.pool)


def early_stopping_without(base: Run, symbols) -> list[str]:
    """The base network's early-stopping materials less those containing any of ``symbols`` (they left train)."""
    ids = early_stopping_ids(base)
    rows = base.materials.index_of(ids)
    fam = members([base.materials.frame["elements"].iloc[r] for r in rows], symbols)
    return [i for i, f in zip(ids, fam) if not f]


def retrain_without_family(base: Run, family: str, out: str | Path, seed: int | None = None,
                           epochs: int = MAX_EPOCHS, patience: int = PATIENCE,
                           min_rel_improvement: float = MIN_REL_IMPROVEMENT, max_seconds: float | None = None,
                           progress: bool = True, families: dict = HELD_OUT_FAMILIES) -> dict:
    """Train MEGNet from fresh weights without ``family``, featurise, and score the family as new chemistry
    (:func:`hold_out_family` on the new run); writes and returns ``family.json``. ``family`` is a key of
    ``families``, over which τ_new is cross-fitted on the base run. A finished job is read back, never redone; an
    interrupted one resumes from its checkpoint and says ``finished: false``."""
    run = family_run(base, family, out, seed, families)
    label, symbols = families[family]
    if (run.dir / RESULT_FILE).exists():
        done = read_json(run.dir / RESULT_FILE)
        if done.get("finished"):
            return done
    block = run.settings["family_network"]
    settings = replace(MEGNetSettings(**read_json(base.dir / SETTINGS_FILE)), seed=block["seed"])
    val = early_stopping_without(base, symbols)
    _, state = train_megnet(run, settings, epochs=epochs, patience=patience, max_seconds=max_seconds,
                            progress=progress, min_rel_improvement=min_rel_improvement, val_ids=val)
    result = {"family": family, "label": label, "elements": list(symbols), "base_run": block["base_run"],
              "seed": block["seed"], "n_train": int(len(run.split.train)), "n_early_stopping": len(val),
              "epochs": state.epoch, "best_epoch": state.best_epoch, "best_val_mae": state.best_val_mae,
              "train_mae_at_best": train_mae_at(state.history, state.best_epoch),
              "finished": state.finished, "reason": state.reason,
              "converged": bool(state.finished and state.reason.startswith("early stop")),
              "rule": block["rule"]}
    t_trained = time.time()
    if state.finished:
        featurize(run, progress=progress)
        fit, arrays = hold_out_family(run, symbols, draws=True)
        # τ_new as the base run cross-fits it for this family: on the other families' residuals only
        tau = family_report(base, families)["families"][family]["tau_new_crossfit"]
        result.update({"n_train_without": fit["n_train"], "length_scale": fit["length_scale"], "df": fit["df"],
                       "tau_new_crossfit": tau})
        for part, name in (("selection", "pool"), ("test", "test")):
            if fit[part].get("n"):
                result[name + "_floor"] = {k: fit[part].get(k) for k in SUMMARY_KEYS}  # the s₀ floor
                result[name + "_drawn"] = {k: fit[part + "_drawn"].get(k) for k in SUMMARY_KEYS}  # the shipped σ
                scored = score_with_new_chemistry_scale(arrays[part], tau, fit["df"], fit["large_error_threshold"])
                result[name + "_tau_new"] = {k: scored.get(k) for k in SUMMARY_KEYS}
    result["train_seconds"] = training_seconds(state.history)
    result["train_cpu_seconds"] = training_seconds(state.history, "cpu_seconds")
    result["seconds"] = round((result["train_seconds"] or 0.0) + time.time() - t_trained, 1)
    write_json(run.dir / RESULT_FILE, result)
    return result


def family_job(folder: Path, families: dict = HELD_OUT_FAMILIES,
               converged_only: bool = True) -> tuple[dict, str | None]:
    """A ``cfgp family-network`` folder's result and why it cannot be scored (None: it can): not started or
    finished, or (with ``converged_only``) not converged by its rule. A folder that is missing, or a result that is
    not one (not an object, an unknown family), is an error."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (give `cfgp family-network` output folders)")
    if not (folder / RESULT_FILE).exists():
        return {}, f"no {RESULT_FILE}: the job has not started or finished"
    res = read_json(folder / RESULT_FILE)
    if not isinstance(res, dict):
        raise DataError(f"{folder / RESULT_FILE}: expected a JSON object (a `cfgp family-network` result), got "
                        f"{type(res).__name__}")
    if not res.get("finished"):
        return res, "not finished"
    if converged_only and not res.get("converged"):
        return res, f"not converged by its rule ({res.get('reason')})"
    key = res.get("family")
    if not isinstance(key, str) or key not in families:
        raise DataError(f"{folder / RESULT_FILE}: family {str(key)[:40]!r} is not a known family (known: "
                        f"{', '.join(sorted(families))}); the file was edited or made by another cfgp version")
    return res, None


def converged_family(folder: str | Path, families: dict = HELD_OUT_FAMILIES) -> tuple[str, Run]:
    """The family and run of a ``cfgp family-network`` folder whose network converged by its rule (the analyses of
    the family networks read no other); ValueError saying why not otherwise."""
    folder = Path(folder)
    res, why = family_job(folder, families)
    if why:
        raise ValueError(f"{folder}: {why}; no figure from it")
    return res["family"], Run(folder)


#: what the report keeps of each family network's training
JOB_KEYS = ("n_train", "epochs", "best_epoch", "best_val_mae", "train_mae_at_best", "converged", "seconds")


def family_networks_report(folders: Iterable[str | Path], families: dict = HELD_OUT_FAMILIES,
                           converged_only: bool = True) -> dict:
    """The held-out families, each on the network trained without it (``cfgp family-network`` folders), with
    τ_new for family F fitted on the other families' pool members *on their own networks*: neither F's network,
    nor its GP, domain model or τ saw F. This is the check of new chemistry the shipped network cannot give (it
    saw every family), and what decides the σ a run ships for it. Folders whose job has not finished, or (with
    ``converged_only``) did not converge by its rule, are listed in ``left_out`` with the reason and not scored."""
    fits, arrays, jobs, left_out = {}, {}, {}, []
    for folder in folders:
        folder = Path(folder)
        res, why = family_job(folder, families, converged_only)
        if why:
            job = {"family": res.get("family"), "epochs": res.get("epochs")} if res else {}
            left_out.append({"dir": str(folder), **job, "reason": why})
            continue
        key = res["family"]
        if key in fits:
            raise ValueError(f"{folder} and {jobs[key]['dir']} both hold the family {key!r}; give one")
        # the network never trained the family: its members also get the shipped σ from embedding draws
        fits[key], arrays[key] = hold_out_family(Run(folder), families[key][1], draws=True)
        jobs[key] = {"dir": str(folder), **{k: res.get(k) for k in JOB_KEYS}}
    out: dict = {"network": "one per family, trained without it", "left_out": left_out, "families": {}}
    if len(fits) < 2:
        out["reason"] = f"τ_new is cross-fitted over families: {len(fits)} scored, 2 needed"
        return out
    rep = crossfit_new_chemistry(fits, arrays, {k: families[k] for k in fits})
    out["tau_new"], out["s_new"], out["scales_for_goal"] = rep["tau_new"], rep["s_new"], rep["scales_for_goal"]
    for key, f in rep["families"].items():
        out["families"][key] = {**summarise_family(f), "job": jobs[key]}
    return out
