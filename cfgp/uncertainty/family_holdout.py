"""Checks that can fail: leave one chemical family out of training *and* calibration, then score that family.

The domain figures of a run measured on i.i.d. splits follow almost from their own definitions (a percentile
flags about its share; a σ calibrated on the pool covers the pool's twin, the test split). Whether σ and the
domain model know what they have not seen is measured here: for each family (lanthanides, actinides, the 4d
transition metals, and oxides containing P, S or a halogen) the GP's hyper-parameters and conditioning, the
domain model and the σ calibration are all re-fitted on the run's train and pool splits *without* that family's
materials, and the family's own materials are then predicted as new chemistry.

What stays: the MEGNet network (and so the latents) is the run's, which saw the family's training materials.
The held-out family therefore differs from the rest only through the GP, the domain model and σ — which is what
this measures; a network re-trained without the family is stricter still (:mod:`cfgp.family_retrain`,
``cfgp family-network``).

Scores are reported separately for the family's pool materials (``selection``: what settings such as the rarity
threshold are chosen on) and its test materials (``test``: read once for the reported figure).

With the network as shipped, the family's elements had their embedding rows trained, so the shipped σ for an oxide
with a never-trained element (σ_emb from drawing those rows, :mod:`cfgp.uncertainty.embedding_draws`) does not
apply: new chemistry is scored with the floor. On a network trained without the family (``draws=True``, as
``cfgp family-report`` does) the rows were never trained, and the family is also scored with the drawn σ.
"""

from __future__ import annotations

import numpy as np

from cfgp.gp import CFGP
from cfgp.uncertainty.applicability import material_spreads
from cfgp.uncertainty.domain_model import DomainModel, DomainSettings
from cfgp.uncertainty.sigma_calibration import (SigmaCalibrator, predictive_metrics, scale_mle,
                                                two_sigma_half_width)

#: held-out families: name → (label, element symbols)
LANTHANIDES = ("La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu")
ACTINIDES = ("Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr")
HELD_OUT_FAMILIES = {
    "lanthanides": ("lanthanides (La–Lu)", LANTHANIDES),
    "actinides": ("actinides (Ac–Lr)", ACTINIDES),
    "4d_metals": ("4d transition metals (Y–Cd)", ("Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd")),
    "p_oxides": ("oxides containing P", ("P",)),
    "s_oxides": ("oxides containing S", ("S",)),
    "halogen_oxides": ("oxides containing a halogen", ("F", "Cl", "Br", "I")),
}
#: a family member is a "large error" when its |residual| exceeds this many times the in-domain MAE of the rest
LARGE_ERROR = 3.0
#: the ±2σ coverage a σ for new chemistry should give a held-out family: at least the first, at most the second
GOAL_COVERAGE = (0.90, 0.98)


def members(elements, symbols) -> np.ndarray:
    """Boolean mask of the materials containing any of ``symbols``."""
    sym = set(symbols)
    return np.array([bool(sym & set(e.split() if isinstance(e, str) else e)) for e in elements], dtype=bool)


def _score(mean, y, scale, df, sigma_raw, check, large: float) -> dict:
    if len(y) == 0:
        return {"n": 0}
    m = predictive_metrics(mean, scale, y, df)
    err = np.abs(mean - y)
    flagged = ~check.in_domain
    big = err > large
    return {"n": int(len(y)), "flagged": float(flagged.mean()), "mae": m["mae"],
            "coverage_2sigma": m["coverage_2sigma"], "nll": m["nll"],
            "coverage_2sigma_raw": float(np.mean(err <= 2 * sigma_raw)),
            "n_large_error": int(big.sum()), "large_error_flagged": float(flagged[big].mean()) if big.any() else None,
            "flagged_by": {k: int(v.sum()) for k, v in check.flags.items()}}


def family_rows(run, symbols) -> dict[str, np.ndarray]:
    """The run's rows with a latent and a label, as a family hold-out splits them: ``train`` (the train split less
    the family), ``calibration`` (the pool less the family), and the family's members of the pool (``selection``)
    and of the test split (``test``), each in its split's order."""
    m, sp = run.materials, run.split
    ok = np.isfinite(run.latents()).all(axis=1) & np.isfinite(m.y)
    fam = members(list(m.frame["elements"]), symbols)
    pool = sp.pool[ok[sp.pool]]
    return {"train": sp.train[ok[sp.train] & ~fam[sp.train]], "calibration": pool[~fam[pool]],
            "selection": pool[fam[pool]], "test": sp.test[ok[sp.test] & fam[sp.test]]}


def family_gp(run, train: np.ndarray, gp_params: dict | None = None) -> CFGP:
    """The exact GP a family hold-out conditions on ``train`` (its hyper-parameters fitted there, seeded by the
    run's split)."""
    X = run.latents()
    return CFGP(seed=run.settings["split"]["seed"], method="exact", **(gp_params or {})).fit(X[train],
                                                                                           run.materials.y[train])


def hold_out_family(run, symbols, settings=None, gp_params: dict | None = None, draws: bool = False,
                    gp: CFGP | None = None) -> dict:
    """Re-fit GP, domain model and σ calibration on the run's train/pool without the materials containing any of
    ``symbols``; score those materials of the pool (``selection``) and of the test split (``test``). Returns the
    scores and, per part, the arrays they came from (``rows``: the members' rows in the run).

    draws : also score them as shipped for oxides with a never-trained element: σ of scale sqrt((τ_out·σ_GP)² +
    σ_emb²), and the mean over the draws for those with a never-trained lanthanoid or actinoid (``selection_drawn``,
    ``test_drawn``; the arrays gain ``spread`` and ``shown_mean``). Only meaningful when the run's network never
    trained the family (a ``cfgp family-network`` run); σ_emb and the mean are kept in the user cache.

    gp : the GP :func:`family_gp` fitted on this hold-out's ``train`` rows, for a caller that needs it too (it is
    fitted here otherwise; ``gp_params`` is then ignored)."""
    settings = settings or DomainSettings()
    X, y = run.latents(), run.materials.y
    elements = list(run.materials.frame["elements"])
    split = family_rows(run, symbols)
    train, calib, fam_pool, fam_test = (split[k] for k in ("train", "calibration", "selection", "test"))
    gp = gp if gp is not None else family_gp(run, train, gp_params)
    domain = DomainModel.from_settings(settings).fit(X[train], [elements[i] for i in train])  # as the run's: k-fold
    rows = np.concatenate([calib, fam_pool, fam_test])
    mean, sigma_raw = gp.predict(X[rows], return_std=True)
    check = domain.check(X[rows], [elements[i] for i in rows])
    parts = np.repeat([0, 1, 2], [len(calib), len(fam_pool), len(fam_test)])
    new_chem = check.flags["composition"] | check.flags["unseen_elements"]
    c = parts == 0
    resid = mean - y[rows]
    rare = check.flags["rare_elements"]
    calibrator = SigmaCalibrator().fit(sigma_raw[c], resid[c], check.in_domain[c], new_chem[c],
                                       floor=float(np.std(y[train])), rare=rare[c])
    scale = calibrator.scale(sigma_raw, check.in_domain, new_chem, rare)
    in_dom_mae = float(np.mean(np.abs(resid[c][check.in_domain[c]]))) if check.in_domain[c].any() else np.nan
    large = LARGE_ERROR * in_dom_mae
    out = {"n_train": int(len(train)), "n_calibration": int(c.sum()), "in_domain_mae_rest": in_dom_mae,
           "large_error_threshold": large, "length_scale": gp.length_scale_, "df": calibrator.df,
           "tau_in": calibrator.tau_in_, "tau_out": calibrator.tau_out_}
    parts_of = {}
    drawn = spread = None
    if draws:  # the family's members only: the calibration materials are not scored
        fam_rows, spread, drawn_mean = parts > 0, np.full(len(rows), np.nan), np.full(len(rows), np.nan)
        drawn_mean[fam_rows], spread[fam_rows] = material_spreads(run, domain, gp, rows[fam_rows],
                                                                  check.take(fam_rows), train)
        drawn = calibrator.scale(sigma_raw, check.in_domain, new_chem, rare, spread)
        shown = np.where(np.isfinite(drawn_mean), drawn_mean, mean)  # the shipped prediction
    for name, p in (("selection", 1), ("test", 2)):
        s = parts == p
        parts_of[name] = {"rows": rows[s], "mean": mean[s], "y": y[rows][s], "sigma_raw": sigma_raw[s],
                          "check": check.take(s), "scale": scale[s], "new_chemistry": new_chem[s]}
        out[name] = _score(mean[s], y[rows][s], scale[s], calibrator.df, sigma_raw[s], check.take(s), large)
        if drawn is not None:
            parts_of[name]["spread"], parts_of[name]["shown_mean"] = spread[s], shown[s]
            out[name + "_drawn"] = _score(shown[s], y[rows][s], drawn[s], calibrator.df, sigma_raw[s], check.take(s),
                                          large)
    return out, parts_of


def new_chemistry_tau(z: np.ndarray, df: float | None) -> float:
    """Maximum-likelihood scale (in units of the GP's σ) of standardised residuals of new chemistry."""
    return scale_mle(z[np.isfinite(z)], df)


def score_with_new_chemistry_scale(part: dict, tau: float, df: float, large: float) -> dict:
    """A family's part (``hold_out_family``'s arrays of its pool or test members) scored with σ = τ_new·σ_GP for
    new chemistry instead of the training-energy floor (other materials keep their calibrated scale)."""
    scale = np.where(part["new_chemistry"], tau * part["sigma_raw"], part["scale"])
    return _score(part["mean"], part["y"], scale, df, part["sigma_raw"], part["check"], large)


def score_with_new_chemistry_floor(part: dict, floor: float, tau_out: float, df: float, large: float) -> dict:
    """A family's part scored by the shipped rule for new chemistry, max(τ_out·σ_GP, floor), with another
    ``floor`` (eV/atom) in place of the training energies' spread s₀ (other materials keep their calibrated
    scale)."""
    scale = np.where(part["new_chemistry"], np.maximum(tau_out * part["sigma_raw"], floor), part["scale"])
    return _score(part["mean"], part["y"], scale, df, part["sigma_raw"], part["check"], large)


def within_goal(needed: np.ndarray, goal: tuple[float, float] = GOAL_COVERAGE) -> list[float] | None:
    """Given the value of a scale parameter at which each member becomes covered (0: always, inf: never), the
    interval of values giving a coverage within ``goal``: ``[lo, hi]`` (hi None: unbounded), or None."""
    n = len(needed)
    if n == 0:
        return None
    needed = np.sort(needed)
    lo_count, hi_count = int(np.ceil(goal[0] * n - 1e-9)), int(np.floor(goal[1] * n + 1e-9))
    lo = float(needed[lo_count - 1]) if lo_count > 0 else 0.0
    if hi_count >= n:  # goal[1] = 1: nothing covers too much
        return [lo, None] if np.isfinite(lo) else None
    # coverage(v) = #(needed <= v) / n stays <= goal[1] while v < needed[hi_count]
    hi = float(needed[hi_count])
    if not np.isfinite(lo) or hi <= lo:
        return None
    return [lo, float(np.nextafter(hi, 0.0))]


def _covered_by_others(part: dict, q: float) -> np.ndarray:
    """The members that are not new chemistry: 0 where their own scale covers them, inf where nothing will."""
    err = np.abs(part["mean"] - part["y"])
    return np.where(err <= q * part["scale"], 0.0, np.inf)


def floors_meeting(part: dict, tau_out: float, df: float | None,
                   goal: tuple[float, float] = GOAL_COVERAGE) -> list[float] | None:
    """The floors s (eV/atom) for which the shipped rule max(τ_out·σ_GP, s) gives ``part``'s members (a family's
    pool or test arrays of :func:`hold_out_family`) a ±2σ coverage within ``goal``: ``[s_lo, s_hi]``, the smallest
    floor that reaches goal[0] and the largest that stays at or below goal[1] (None: no upper limit, goal[1] = 1);
    None when no floor does (e.g. when τ_out·σ_GP alone covers more than goal[1]). Members that are not new
    chemistry keep their scale. Whether one floor can serve every family is where their intervals meet
    (:func:`common_interval`)."""
    q = two_sigma_half_width(df)
    err = np.abs(part["mean"] - part["y"])
    new = part["new_chemistry"]
    needed = np.where(err <= q * tau_out * part["sigma_raw"], 0.0, err / q)
    return within_goal(np.where(new, needed, _covered_by_others(part, q)), goal)


def taus_meeting(part: dict, df: float | None, goal: tuple[float, float] = GOAL_COVERAGE) -> list[float] | None:
    """The same for a scale τ·σ_GP on new chemistry (no floor): the values of τ that give ``part``'s members a
    ±2σ coverage within ``goal``, or None."""
    q = two_sigma_half_width(df)
    needed = np.abs(part["mean"] - part["y"]) / (q * part["sigma_raw"])
    return within_goal(np.where(part["new_chemistry"], needed, _covered_by_others(part, q)), goal)


def common_interval(intervals) -> list[float] | None:
    """Where intervals ``[lo, hi]`` (hi None: unbounded) all meet; None if one is None or they do not meet."""
    intervals = list(intervals)
    if not intervals or any(i is None for i in intervals):
        return None
    lo = max(i[0] for i in intervals)
    his = [i[1] for i in intervals if i[1] is not None]
    hi = min(his) if his else None
    return None if hi is not None and hi < lo else [lo, hi]


def crossfit_new_chemistry(fits: dict, arrays: dict, labels: dict) -> dict:
    """Each family's new chemistry scored with two scales fitted on the *other* families' held-out pool members
    only (so a family's score never saw it): τ_new·σ_GP (``*_fitted_new_chemistry``: σ as the GP sees it, scaled),
    and the shipped rule max(τ_out·σ_GP, s) with the floor s = ``s_new_crossfit`` fitted on their residuals in
    eV/atom instead of the training energies' spread (``*_fitted_floor``: a σ that does not trust the latents);
    beside its score with the shipped floor s₀ (``fits[key]``). ``fits``/``arrays``: :func:`hold_out_family`'s two
    results per family key, wherever each came from (one run for every family, or a network of its own per
    family); ``labels``: key → (label, symbols). ``tau_new`` and ``s_new`` at the top level are the fits on every
    family's pool members, for a run to ship."""
    if len(fits) < 2:
        raise ValueError(f"cross-fitting needs at least two families; got {sorted(fits)}")
    r_of = {k: a["selection"]["mean"] - a["selection"]["y"] for k, a in arrays.items()}
    z_of = {k: r_of[k] / a["selection"]["sigma_raw"] for k, a in arrays.items()}
    new_of = {k: a["selection"]["new_chemistry"] for k, a in arrays.items()}
    out: dict = {"families": {}}
    for key in fits:
        label, symbols = labels[key]
        f, df = fits[key], fits[key]["df"]
        tau = new_chemistry_tau(np.concatenate([z_of[k][new_of[k]] for k in fits if k != key]), df)
        floor = new_chemistry_tau(np.concatenate([r_of[k][new_of[k]] for k in fits if k != key]), df)
        entry = {"label": label, "elements": list(symbols), **f, "tau_new_crossfit": tau, "s_new_crossfit": floor}
        for part in ("selection", "test"):
            a = arrays[key][part]
            if not len(a["y"]):
                continue
            large = f["large_error_threshold"]
            entry[part + "_fitted_new_chemistry"] = score_with_new_chemistry_scale(a, tau, df, large)
            entry[part + "_fitted_floor"] = score_with_new_chemistry_floor(a, floor, f["tau_out"], df, large)
            entry[part + "_for_goal"] = {"floor": floors_meeting(a, f["tau_out"], df), "tau": taus_meeting(a, df)}
        out["families"][key] = entry
    df_all = next(iter(fits.values()))["df"]
    out["tau_new"] = new_chemistry_tau(np.concatenate([z_of[k][new_of[k]] for k in fits]), df_all)
    out["s_new"] = new_chemistry_tau(np.concatenate([r_of[k][new_of[k]] for k in fits]), df_all)
    out["scales_for_goal"] = scales_for_goal(out["families"])
    return out


def scales_for_goal(families: dict) -> dict:
    """Whether one scale gives every family a ±2σ coverage within :data:`GOAL_COVERAGE`, for the two shapes of σ
    for new chemistry: the shipped rule max(τ_out·σ_GP, s) with one floor s (``floor``, eV/atom), and τ·σ_GP with
    one τ (``tau``). Per family the interval of values that do on its pool members (the selection data) and where
    they all meet (None: no single value does); the same on the test members, for the report."""
    out: dict = {"goal": list(GOAL_COVERAGE)}
    for shape in ("floor", "tau"):
        out[shape] = {}
        for part, name in (("selection", "pool"), ("test", "test")):
            per = {k: f[part + "_for_goal"][shape] for k, f in families.items() if part + "_for_goal" in f}
            out[shape][name] = {"families": per, "common": common_interval(per.values())}
    return out


def family_report(run, families: dict = HELD_OUT_FAMILIES, settings=None) -> dict:
    """Every held-out family of :data:`HELD_OUT_FAMILIES`, scored twice: with the σ a run ships today for new
    chemistry (the training-energy spread as a floor) and with a fitted new-chemistry scale τ_new·σ_GP, where
    τ_new for family F is fitted on the *other* families' held-out pool materials only (cross-fitted, so F's
    score never saw F). ``tau_new`` at the top level is the fit on every family's pool materials, for a run to
    ship; what ``cfgp evaluate --families`` reports."""
    fits, arrays = {}, {}
    for key, (label, symbols) in families.items():
        fits[key], arrays[key] = hold_out_family(run, symbols, settings)
    return crossfit_new_chemistry(fits, arrays, families)


#: what a family's summary keeps of each score
SUMMARY_KEYS = ("n", "flagged", "mae", "coverage_2sigma", "nll", "large_error_flagged")


def summarise_family(f: dict) -> dict:
    """One family of :func:`crossfit_new_chemistry` as reports show it: its pool members (the selection data)
    and test members scored with τ_new·σ_GP (cross-fitted), as ``*_floor`` with the training-energy floor s₀ for
    new chemistry, as ``*_drawn`` with the shipped σ sqrt((τ_out·σ_GP)² + σ_emb²) (when the family was scored with
    draws), and as ``*_fitted_floor`` with the floor rule's floor fitted on the other families."""
    entry = {"label": f["label"], "elements": f["elements"], "n_train_without": f["n_train"],
             "tau_new_crossfit": f["tau_new_crossfit"], "s_new_crossfit": f["s_new_crossfit"]}
    for part, name in (("selection", "pool"), ("test", "test")):
        if f[part].get("n"):
            fitted = f[part + "_fitted_new_chemistry"]
            entry[name] = {k: fitted.get(k) for k in SUMMARY_KEYS}
            entry[name + "_floor"] = {k: f[part].get(k) for k in SUMMARY_KEYS}
            if part + "_drawn" in f:  # the shipped σ on a network that never trained the family
                entry[name + "_drawn"] = {k: f[part + "_drawn"].get(k) for k in SUMMARY_KEYS}
            entry[name + "_fitted_floor"] = {k: f[part + "_fitted_floor"].get(k) for k in SUMMARY_KEYS}
            entry[name + "_for_goal"] = f[part + "_for_goal"]
    return entry


def families_summary(run) -> dict:
    """Per held-out family, for ``cfgp evaluate --families``: its pool members (the selection data) and its test
    members scored with τ_new·σ_GP cross-fitted on the other families, with the shipped rule for new chemistry
    (the training-energy floor s₀) and with that rule's floor fitted on the other families; plus the τ_new and
    s_new fitted on all of them."""
    rep = family_report(run)
    out = {"tau_new": rep["tau_new"], "s_new": rep["s_new"], "scales_for_goal": rep["scales_for_goal"],
           "network": "the run's (it saw the family's training materials): this measures the GP, the domain model "
                      "and σ"}
    for key, f in rep["families"].items():
        out[key] = summarise_family(f)
    return out
