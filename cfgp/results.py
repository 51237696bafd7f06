"""What the views read: one run's results as a frame, the outliers and their verdict, the per-group calibration.

The dashboard's tabs and the notebooks show the same numbers, so they are computed here, once, with no web
framework: a view formats what this module returns and never recomputes it. The results frame has one row per
material of the run (in the run's material order): its identity, the DFT label, the GP's prediction with the raw
and the calibrated σ, the residual, z and the excess over ±2σ, the split, the domain of applicability (flag and
reason) and the data set's own numeric properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from cfgp.uncertainty.applicability import Applicability, cached_check_set_group, evaluation_groups, load_applicability, run_checks
from cfgp.uncertainty.metrics import excess_over_2sigma
from cfgp.uncertainty.domain_model import DomainCheck
from cfgp.uncertainty.groups import representation
from cfgp.pipeline import Run, load_gp, predictions

#: Columns of the materials frame copied into the results frame (NaN where a data set lacks them)
MATERIAL_PROPERTIES = ("band_gap", "efermi", "total_magnetization", "volume_per_atom", "spacegroup_number")
#: How a group's share among the outliers compares with its share of all materials (cfgp.uncertainty.groups.representation)
Verdict = Literal["over", "under", "about"]


def predictions_frame(materials_frame: pd.DataFrame, y_pred, y_std, split_labels=None) -> pd.DataFrame:
    """One row per material: identity, DFT label, GP mean and σ, residual (GP − DFT), z = residual / σ and
    |residual| − 2σ (positive: outside the ±2σ interval), and the split when ``split_labels`` is given."""
    f = materials_frame[["material_id", "formula", "spacegroup_symbol", "nsites", "is_phosphate"]].copy()
    f["dft"] = materials_frame["formation_energy_per_atom"].to_numpy()
    f["gp"] = np.asarray(y_pred)
    f["sigma"] = np.asarray(y_std)
    f["residual"] = f["gp"] - f["dft"]
    f["z"] = f["residual"] / f["sigma"]
    f["excess"] = excess_over_2sigma(f["gp"], f["sigma"], f["dft"])
    if split_labels is not None:
        f["split"] = np.asarray(split_labels)
    return f


def results_frame(run: Run, pred: dict, applicability: Applicability, check: DomainCheck) -> pd.DataFrame:
    """The results frame of ``run``: :func:`predictions_frame` (its ``gp`` the mean users are shown: the mean
    over draws for a material with a never-trained lanthanoid or actinoid) with the split, plus ``row``
    (position), the data set's properties (:data:`MATERIAL_PROPERTIES`), ``in_domain``, ``domain`` (the reason, ''
    inside), ``domain_label`` ('yes' or 'NO: ' and the short reason), ``sigma_emb`` (the spread over draws of a
    never-trained element's embedding, NaN for materials without one), ``mean_from_draws`` (``gp`` is the mean
    over them) and ``sigma_cal`` (the calibrated σ users are shown).

    pred : GP mean and σ of every material (:func:`cfgp.pipeline.predictions`); check : the domain check of every
    material (:func:`cfgp.uncertainty.applicability.run_checks`).
    """
    m = run.materials
    frame = predictions_frame(m.frame, applicability.material_mean(m.ids, pred["mean"]), pred["std"],
                              run.split.labels(len(m)))
    frame["row"] = np.arange(len(frame))
    for col in MATERIAL_PROPERTIES:
        frame[col] = m.frame[col].to_numpy(dtype=float) if col in m.frame else np.nan
    frame["in_domain"] = check.in_domain
    frame["domain"] = check.reason
    frame["domain_label"] = np.where(check.in_domain, "yes",  # short: the dashboard sends one per material
                                     np.array(["NO: " + s for s in check.short], dtype=object))
    frame["sigma_emb"] = applicability.material_spread(m.ids)
    frame["mean_from_draws"] = np.isfinite(applicability.drawn_mean(m.ids))
    frame["sigma_cal"] = applicability.calibrated(pred["std"], check, frame["sigma_emb"].to_numpy())[0]
    return frame


@dataclass
class Results:
    """A run's results and what made them: the conditioned GP, its predictions, the domain model and σ
    calibration, the domain check of every material and the results frame."""

    run: Run
    gp: object
    pred: dict
    applicability: Applicability
    check: DomainCheck
    frame: pd.DataFrame


def load_results(run: Run, gp=None) -> Results:
    """Everything :func:`results_frame` needs, loaded (or fitted, see :func:`load_applicability`) for ``run``:
    one GP prediction of every material, kept for the run's saved GP."""
    own = gp is None  # the run's saved GP: its predictions are kept (cfgp.pipeline.predictions)
    gp = gp if gp is not None else load_gp(run)
    pred = predictions(run, gp, saved=own)
    app = load_applicability(run, gp, pred)
    check = run_checks(run, app)
    return Results(run, gp, pred, app, check, results_frame(run, pred, app, check))


# ------------------------------------------------------------------ outliers
def scored(frame: pd.DataFrame) -> np.ndarray:
    """Rows with a DFT label, a prediction and a positive σ: the materials calibration can score."""
    dft, gp, sigma = (frame[c].to_numpy(float) for c in ("dft", "gp", "sigma"))
    return np.isfinite(dft) & np.isfinite(gp) & np.isfinite(sigma) & (sigma > 0)


def outlier_summary(frame: pd.DataFrame, split: str) -> dict:
    """How many scored materials of a split there are (``n``), how many lie outside ±2σ (``outside``), and the
    phosphates among each (``phosphates``, ``phosphates_outside``)."""
    rows = np.flatnonzero(scored(frame) & (frame["split"].to_numpy().astype(str) == split))
    phosphate = frame["is_phosphate"].to_numpy(bool)
    out = rows[frame["excess"].to_numpy(float)[rows] > 0]
    return {"n": len(rows), "outside": len(out), "phosphates_outside": int(phosphate[out].sum()),
            "phosphates": int(phosphate[rows].sum())}


def phosphate_verdict(summary: dict) -> Verdict | None:
    """Are phosphates over-, under- or about evenly represented among the outliers of an :func:`outlier_summary`
    (:func:`cfgp.uncertainty.groups.representation`)? None without outliers."""
    if not summary["n"] or not summary["outside"]:
        return None
    return representation(summary["phosphates_outside"] / summary["outside"], summary["phosphates"] / summary["n"])


# ------------------------------------------------------------------ groups
def calibration_groups(results: Results) -> dict[str, dict]:
    """Per-group calibration of the test split with the shipped and the raw σ
    (:func:`cfgp.uncertainty.applicability.evaluation_groups`), plus the check-set group (``check_set``, e.g. non-oxides) once
    ``cfgp evaluate --check-set FILE`` has scored this model."""
    groups = evaluation_groups(results.run, results.applicability, results.pred, check=results.check)
    extra = cached_check_set_group(results.applicability)
    if extra:
        groups["check_set"] = extra
    return groups
