"""Where a run's predictions hold: its domain model and σ calibration, fitted for the run and saved with the
settings that made them.

``domain.json`` holds the :class:`~cfgp.uncertainty.domain_model.DomainModel` (fitted on the train split: reference latents
are the MEGNet-fit part, the threshold comes from the early-stopping part) and the
:class:`~cfgp.uncertainty.sigma_calibration.SigmaCalibrator` (fitted on the *pool* split, the run's calibration split: the
GP conditioned on train predicts it, and nothing of the test split is used), and σ_emb of the run's own oxides
with an element no training material contains, with the mean over the draws of those holding a never-trained
lanthanoid or actinoid (:mod:`cfgp.uncertainty.embedding_draws`: the network's forward passes over 64 copies of
each, so they are drawn when the file is written, not at every read). A saved file is reused only when its
key — latents hash, split, GP hyper-parameters, domain settings, draw settings — matches.

Who writes it: ``cfgp domain --run FOLDER`` (a writer step, like ``cfgp fit``) saves it in the run's write
folder (for the shipped default, the user's folder: ``data/default`` is never written). Readers —
``cfgp predict``, ``cfgp evaluate``, the app — read it from the run if present, else from the user cache, else
fit it in memory (~1 s plus one GP prediction of the pool, ~10 s on the default) and leave a copy in the user
cache for next time.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cfgp.artefacts import cache_dir, load_npz, read_json, write_json
from cfgp.pipeline import GP_FILE, load_gp, predict_rows
from cfgp.uncertainty.domain_model import DomainCheck, DomainModel, DomainSettings, element_sets
from cfgp.uncertainty.embedding_draws import (DRAWS, draw_settings, embedding_estimates, never_trained,
                                             trained_elements)
from cfgp.uncertainty.groups import group_metrics, group_report
from cfgp.uncertainty.sigma_calibration import SigmaCalibrator

DOMAIN_FILE = "domain.json"
FORMAT = 4  # 2: rare-element flag, k-fold threshold over train, τ_rare and τ_new; 3: σ_emb of the run's materials;
#            4: the mean over draws of the run's materials with a never-trained lanthanoid or actinoid
#: the seed of the embedding draws behind σ_emb (the same for every run, so a material's σ_emb is reproducible)
DRAW_SEED = 0


@dataclass
class Applicability:
    """A run's domain model and σ calibration, used together."""

    domain: DomainModel
    sigma: SigmaCalibrator
    key: dict
    source: str  # where it came from: a file path, or "fitted in memory"
    report: dict  # what the fit measured on its own data (counts, thresholds)
    reference_ids: list[str] = field(default_factory=list)  # the training materials whose latents are the reference
    spread_ids: dict[str, float] = field(default_factory=dict)  # σ_emb of the run's materials that need one
    #: the mean over draws of the run's materials predicted by it (a never-trained lanthanoid or actinoid)
    drawn_mean_ids: dict[str, float] = field(default_factory=dict)

    def check(self, X: np.ndarray, elements, in_reference: np.ndarray | None = None) -> DomainCheck:
        return self.domain.check(X, elements, in_reference)

    def calibrated(self, sigma_raw: np.ndarray, check: DomainCheck,
                   spread: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(σ shown to users, Student-t scale) from the GP's σ, a domain check and σ_emb where drawn (NaN
        elsewhere; see :func:`draw_estimates`)."""
        new_chemistry = check.flags["composition"] | check.flags["unseen_elements"]
        scale = self.sigma.scale(sigma_raw, check.in_domain, new_chemistry, check.flags.get("rare_elements"), spread)
        return scale * self.sigma.two_sigma_factor, scale

    def material_spread(self, ids) -> np.ndarray:
        """σ_emb of the run's materials ``ids`` as drawn when the model was fitted (NaN for those without one)."""
        return np.array([self.spread_ids.get(str(i), np.nan) for i in ids], dtype=float)

    def drawn_mean(self, ids) -> np.ndarray:
        """The mean over draws of the run's materials ``ids`` (NaN for those the GP's mean predicts)."""
        return np.array([self.drawn_mean_ids.get(str(i), np.nan) for i in ids], dtype=float)

    def material_mean(self, ids, mean: np.ndarray) -> np.ndarray:
        """The prediction users are shown for the run's materials ``ids`` given the GP's ``mean`` of them: the mean
        over draws where the material has one (a never-trained lanthanoid or actinoid), else the GP's mean."""
        drawn = self.drawn_mean(ids)
        return np.where(np.isfinite(drawn), drawn, np.asarray(mean, dtype=float))

    def predict(self, gp, X: np.ndarray, elements, featurizer=None, graphs: list[dict] | None = None,
                lock: AbstractContextManager | None = None) -> dict:
        """Mean, calibrated σ, raw GP σ, Student-t scale, σ_emb, domain flag and reason for each row of X
        (NaN mean and σ where a latent is missing). With the ``featurizer`` and the ``graphs`` that made X, the
        rows that :func:`needs_draws` get σ_emb (else they keep the floor), and those with a never-trained
        lanthanoid or actinoid the mean over their draws in place of the GP's mean; ``lock`` guards the network
        for each forward pass of the draws (:func:`cfgp.uncertainty.embedding_draws.draw_means`)."""
        mean, sigma_raw = predict_rows(gp, X)
        check = self.check(X, elements)
        if featurizer is not None and graphs is not None:
            drawn, spread = draw_estimates(self.domain, featurizer, gp, graphs, elements, check, lock)
            mean = np.where(np.isfinite(drawn), drawn, mean)
        else:
            drawn = spread = np.full(len(mean), np.nan)
        sigma, scale = self.calibrated(sigma_raw, check, spread)
        return {"mean": mean, "sigma": sigma, "sigma_raw": sigma_raw, "scale": scale, "df": self.sigma.df,
                "sigma_emb": spread, "mean_from_draws": np.isfinite(drawn), "in_domain": check.in_domain,
                "domain": check.reason, "check": check}


def needs_draws(check: DomainCheck) -> np.ndarray:
    """Materials whose σ comes from embedding draws: oxides (as training defines them) with an element no training
    material contains, and a latent. A material outside the training composition keeps the floor: drawing its
    elements does not tell how far an oxide model is from, say, a metal."""
    return check.flags["unseen_elements"] & ~check.flags["composition"] & ~check.flags["no_latent"]


def draw_estimates(domain: DomainModel, featurizer, gp, graphs: list[dict], elements, check: DomainCheck,
                   lock: AbstractContextManager | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean over draws, σ_emb) in eV/atom of each graph that :func:`needs_draws` (NaN for the others; the mean
    also NaN where the GP's mean on the untrained row stands): draws of its never-trained elements' embedding rows
    from the rows of the elements in more than ``rare_count`` training materials
    (:func:`cfgp.uncertainty.embedding_draws.embedding_estimates`). Each forward pass (several draws' copies of
    those graphs) holds ``lock`` (whatever guards a network shared between threads: the draws set its weights and
    restore them)."""
    mean, spread = np.full(len(graphs), np.nan), np.full(len(graphs), np.nan)
    rows = np.flatnonzero(needs_draws(check))
    if not len(rows):
        return mean, spread
    counts = domain.element_counts_
    unseen = never_trained(element_sets(elements[i] for i in rows), counts)
    trained = trained_elements(counts, domain.rare_count)
    mean[rows], spread[rows] = embedding_estimates(featurizer, gp, [graphs[i] for i in rows], unseen, trained,
                                                   DRAWS, DRAW_SEED, lock)
    return mean, spread


# ------------------------------------------------------------------ keys and files
def _latents_hash(run) -> str:
    return run.latents_hash()


def _gp_hyperparameters(run) -> dict:
    path = run.path(GP_FILE)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no fitted GP; run `cfgp fit`")
    return read_json(path)["gp"]["hyperparameters"]


def applicability_key(run, settings: DomainSettings = DomainSettings()) -> dict:
    """What a saved domain.json must match to be reused."""
    return {"format": FORMAT, "latents_hash": _latents_hash(run), "split": run.settings["split"],
            "gp": _gp_hyperparameters(run), "settings": settings.to_dict(),
            "holdout": "crossfit", "calibration_split": "pool", "draws": draw_settings(DRAWS, DRAW_SEED)}


def _cache_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / f"domain-{digest}.json"


# ------------------------------------------------------------------ fit, save, load
def fit_applicability(run, gp=None, pred: dict | None = None,
                      settings: DomainSettings = DomainSettings(), tau_new: float | None = None) -> Applicability:
    """Fit the domain model on the train split and the σ calibration on the pool (never the test split).

    ``pred`` (GP mean and σ of every material, as :func:`cfgp.pipeline.predictions`) saves predicting the pool;
    ``tau_new`` is the new-chemistry scale fitted on held-out families (``cfgp domain --families`` fits it).
    """
    m, sp = run.materials, run.split
    X, y = run.latents(), m.y
    elements = list(m.frame["elements"])
    train = sp.train[np.isfinite(X[sp.train]).all(axis=1)]
    # the latent threshold from k-fold cross-fitting over the whole train split (1,800 on the default), not the
    # network's 180 early-stopping materials: on the default's pool, 10 folds flag 2.47 % as far (nominal 2.5 %),
    # 5 folds 2.33 %, the 180 2.86 %, with a bootstrap interval [3.85, 4.45] against [2.54, 4.82] (README)
    domain = DomainModel.from_settings(settings).fit(X[train], [elements[i] for i in train], holdout=None)
    reference = train[domain.reference_mask_]

    pool = sp.pool[np.isfinite(X[sp.pool]).all(axis=1) & np.isfinite(y[sp.pool])]
    if pred is not None:
        mean, sigma = pred["mean"][pool], pred["std"][pool]
    elif len(pool):
        gp = gp if gp is not None else load_gp(run)
        mean, sigma = predict_rows(gp, X[pool])
    else:
        mean = sigma = np.zeros(0)
    check = domain.check(X[pool], [elements[i] for i in pool])
    new_chem = check.flags["composition"] | check.flags["unseen_elements"]
    calibrator = SigmaCalibrator().fit(sigma, mean - y[pool], check.in_domain, new_chem,
                                       floor=float(np.std(y[train])), rare=check.flags["rare_elements"],
                                       tau_new=tau_new)
    spread_ids, drawn_mean_ids = run_spreads(run, domain, reference, gp)
    report = {"n_train": int(len(train)), "n_reference": int(len(reference)),
              "n_holdout": int(len(train)),
              "holdout": domain.holdout_kind_, "threshold": domain.threshold_,
              "threshold_interval": domain.threshold_interval_,
              "required_elements": domain.required_elements_, "n_training_elements": len(domain.elements_),
              "n_calibration": int(len(pool)), "calibration_flagged": check.summary(),
              "n_sigma_emb": len(spread_ids)}
    return Applicability(domain, calibrator, applicability_key(run, settings), "fitted in memory", report,
                         m.ids[reference].astype(str).tolist(), spread_ids, drawn_mean_ids)


def run_spreads(run, domain: DomainModel, reference: np.ndarray, gp=None,
                cache: bool = True) -> tuple[dict[str, float], dict[str, float]]:
    """σ_emb of the run's materials that :func:`needs_draws` (on the default: 15 Ac, Pm and Xe oxides
    of the pool and HeSiO2 in test), and the mean over draws of those predicted by it (the 7 Ac and Pm oxides),
    each keyed by material id; ``reference``: the training rows the domain model and the GP were fitted on. Loads
    the network only when there are any and the user cache does not hold them."""
    m = run.materials
    in_reference = np.zeros(len(m), bool)
    in_reference[reference] = True
    elements = list(m.frame["elements"])
    check = domain.check(run.latents(), elements, in_reference)
    rows = np.flatnonzero(needs_draws(check))
    if not len(rows):
        return {}, {}
    gp = gp if gp is not None else load_gp(run)
    mean, spread = material_spreads(run, domain, gp, rows, check.take(rows), reference, cache)
    return ({str(m.ids[i]): float(v) for i, v in zip(rows, spread)},
            {str(m.ids[i]): float(v) for i, v in zip(rows, mean) if np.isfinite(v)})


def material_spreads(run, domain: DomainModel, gp, rows: np.ndarray, check: DomainCheck, train: np.ndarray,
                     cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(mean over draws, σ_emb) of the run's materials ``rows`` as :func:`draw_estimates` gives them (``check``:
    their domain check) with the run's network and ``gp`` (conditioned on ``train``). Kept in the user cache under
    the network, GP, training set, materials and draw setting that made them: a reader that fits a domain model in
    memory, or a family report run again, pays the network's passes once (64 per material)."""
    ids = run.materials.ids.astype(str)
    key = {"latents_hash": run.latents_hash(), "gp": gp.hyperparameters_, "rare_count": domain.rare_count,
           "train": ids[train].tolist(), "ids": ids[rows].tolist(), "draws": draw_settings(DRAWS, DRAW_SEED)}
    path = cache_dir() / f"sigma-emb-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]}.npz"
    kept = load_npz(path) if cache else None
    if kept is not None and all(kept.get(k, np.zeros(0)).shape == (len(rows),) for k in ("mean", "spread")):
        return kept["mean"], kept["spread"]
    mean, out = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    need = np.flatnonzero(needs_draws(check))
    if len(need):
        elements = list(run.materials.frame["elements"])
        feat = run.featurizer()
        graphs, kept_pos, issues = feat.to_graphs(run.materials.structures(rows[need]), progress=False)
        if len(kept_pos) != len(need):  # they have latents, so the network read them once: a changed data file
            raise ValueError(f"{run.dir}: {len(need) - len(kept_pos)} materials with latents have no crystal graph "
                             f"now ({'; '.join(str(i) for i in issues[:3])})")
        mean[need], out[need] = draw_estimates(domain, feat, gp, graphs, [elements[i] for i in rows[need]],
                                               check.take(need))
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, mean=mean, spread=out)
        except OSError:
            pass  # an unwritable cache only costs the draws again
    return mean, out


def _to_json(app: Applicability) -> dict:
    return {"key": app.key, "domain": app.domain.to_dict(), "reference_ids": app.reference_ids,
            "sigma": app.sigma.to_dict(), "report": app.report,
            "sigma_emb": dict(sorted(app.spread_ids.items())),
            "drawn_mean": dict(sorted(app.drawn_mean_ids.items()))}


def _from_json(run, d: dict, source: str) -> Applicability:
    X = run.latents()
    ref = run.materials.index_of(d["reference_ids"])
    return Applicability(DomainModel.from_dict(d["domain"], X[ref]), SigmaCalibrator.from_dict(d["sigma"]),
                         d["key"], source, d.get("report", {}), list(d["reference_ids"]),
                         {str(k): float(v) for k, v in d["sigma_emb"].items()},
                         {str(k): float(v) for k, v in d["drawn_mean"].items()})


def save_applicability(run, app: Applicability, path: str | Path | None = None) -> Path:
    """Write domain.json into the run's write folder (the user's folder for the shipped default)."""
    path = Path(path) if path is not None else run.write_dir / DOMAIN_FILE
    write_json(path, _to_json(app))
    return path


def load_applicability(run, gp=None, pred: dict | None = None, settings: DomainSettings = DomainSettings(),
                       cache: bool = True) -> Applicability:
    """The run's domain model and σ calibration: its domain.json if the key matches, else the user cache,
    else fitted now (and cached for next time when ``cache``; an unwritable cache is not an error)."""
    key = applicability_key(run, settings)
    cached = _cache_path(key)
    for path in (run.path(DOMAIN_FILE), cached):
        if path.exists():
            try:
                saved = read_json(path)
            except (OSError, ValueError):
                continue  # a torn or foreign file: fit anew
            if saved.get("key") == key:
                try:
                    return _from_json(run, saved, str(path))
                except (KeyError, ValueError, TypeError):
                    continue  # ids or fields that do not fit this run: fit anew
    app = fit_applicability(run, gp, pred, settings)
    if cache:
        try:
            write_json(cached, _to_json(app))
        except OSError:
            pass
    return app


def run_checks(run, app: Applicability) -> DomainCheck:
    """The domain check of every material of the run; reference (training) materials skip their own latent."""
    m = run.materials
    in_reference = np.zeros(len(m), bool)
    in_reference[m.index_of(app.reference_ids)] = True
    return app.check(run.latents(), list(m.frame["elements"]), in_reference=in_reference)


def evaluation_groups(run, app: Applicability, pred: dict, check_set=None, gp=None,
                      check: DomainCheck | None = None) -> dict:
    """Per-group calibration of the test split (and of a check set, e.g. non-oxides) with the shipped and the
    raw σ: what ``cfgp evaluate --json`` reports under ``groups``.

    pred : GP mean and σ of every material of the run; check_set : a :class:`cfgp.uncertainty.check_sets.CheckSet`;
    check : :func:`run_checks` of the run when the caller has it already (else it is run here).
    """
    m = run.materials
    te = run.split.test
    te = te[np.isfinite(pred["mean"][te]) & np.isfinite(m.y[te])]
    check = (check if check is not None else run_checks(run, app)).take(te)
    _, scale = app.calibrated(pred["std"][te], check, app.material_spread(m.ids[te]))
    groups = group_report(app.material_mean(m.ids[te], pred["mean"][te]), m.y[te], scale, app.sigma.df, pred["std"][te], check,
                          list(m.frame["elements"].iloc[te]), m.frame["is_phosphate"].to_numpy()[te], label="test",
                          formulas=m.frame["formula"].to_numpy()[te])
    if check_set is not None:
        ok = np.isfinite(check_set.X).all(axis=1) & np.isfinite(check_set.y)
        gp = gp if gp is not None else load_gp(run)
        mean, sigma_raw = predict_rows(gp, check_set.X[ok])
        cs_check = app.check(check_set.X[ok], [check_set.elements[i] for i in np.flatnonzero(ok)])
        _, cs_scale = app.calibrated(sigma_raw, cs_check)
        entry = {"label": f"check set: {Path(check_set.source).name}", "set": str(check_set.source),
                 **group_metrics(mean, check_set.y[ok], cs_scale, app.sigma.df, sigma_raw, ~cs_check.in_domain),
                 "flagged_by": {k: int(v.sum()) for k, v in cs_check.flags.items()},
                 "n_in_file": int(check_set.n_in_file), "n_not_featurised": int((~ok).sum())}
        groups["check_set"] = entry
        try:  # the app's Calibration tab shows the latest check-set result of this model
            write_json(_check_set_report_path(app.key), entry)
        except OSError:
            pass
    return groups


def _check_set_report_path(key: dict) -> Path:
    return _cache_path(key).with_name(_cache_path(key).stem + "-checkset.json")


def cached_check_set_group(app: Applicability) -> dict | None:
    """The check-set group last computed by ``cfgp evaluate --check-set`` for this model, if any."""
    path = _check_set_report_path(app.key)
    try:
        return read_json(path) if path.exists() else None
    except (OSError, ValueError):
        return None


def evaluate_domain(run, gp=None, check_set=None) -> dict:
    """Domain model, σ calibration and per-group calibration of a run's test split (and of a check set):
    the part of ``cfgp evaluate --json`` this module owns."""
    gp = gp if gp is not None else load_gp(run)
    app = load_applicability(run, gp)
    X = run.latents()
    te = run.split.test
    mean, std = np.full(len(X), np.nan), np.full(len(X), np.nan)
    mean[te], std[te] = predict_rows(gp, X[te])
    groups = evaluation_groups(run, app, {"mean": mean, "std": std}, check_set, gp)
    d = app.domain
    test_flags = run_checks(run, app).take(te).summary()
    return {
        "domain": {**d.settings.to_dict(), "threshold": d.threshold_,
                   "threshold_interval": getattr(d, "threshold_interval_", None), "holdout": d.holdout_kind_,
                   "required_elements": d.required_elements_, "n_training_elements": len(d.elements_),
                   "source": app.source, "test": test_flags,
                   "test_flagged_share": test_flags["flagged"] / max(1, test_flags["n"])},
        "sigma_calibration": {**app.sigma.to_dict(), "fitted_on": "pool split (never test)"},
        "calibrated": groups.get("all", {}),
        "groups": groups,
    }
