"""Per-group calibration: is σ honest for phosphates and for other oxides, inside and outside the domain, for
each family of elements, and for materials the model was not made for (a check set such as non-oxides)?

An average over the test split hides groups where σ is far off; every group here reports n, MAE, and the
coverage and miscalibration area of both the shipped (calibrated, Student-t) σ and the GP's raw σ.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from cfgp.uncertainty.sigma_calibration import predictive_metrics

#: element families (pymatgen's classification); a material is in a family if any of its elements is,
#: O excepted (every oxide has it)
FAMILIES = {
    "alkali": "alkali metals",
    "alkaline_earth": "alkaline-earth metals",
    "transition_metal": "transition metals",
    "lanthanoid": "lanthanides",
    "actinoid": "actinides",
    "post_transition_metal": "post-transition metals",
    "metalloid": "metalloids",
    "halogen": "halogens",
    "chalcogen": "chalcogens other than O (S, Se, Te, Po)",
    "other_nonmetal": "other non-metals (H, C, N, P)",
    "noble_gas": "noble gases",
}


@lru_cache(maxsize=None)
def element_family(symbol: str) -> str | None:
    """The family (a FAMILIES key) of an element symbol, None for O."""
    from pymatgen.core.periodic_table import Element

    if symbol == "O":
        return None
    e = Element(symbol)
    if e.is_noble_gas:
        return "noble_gas"
    if e.is_alkali:
        return "alkali"
    if e.is_alkaline:
        return "alkaline_earth"
    if e.is_lanthanoid:
        return "lanthanoid"
    if e.is_actinoid:
        return "actinoid"
    if e.is_transition_metal:
        return "transition_metal"
    if e.is_chalcogen:  # before metalloids: pymatgen counts Te as both
        return "chalcogen"
    if e.is_halogen:
        return "halogen"
    if e.is_post_transition_metal:
        return "post_transition_metal"
    if e.is_metalloid:
        return "metalloid"
    return "other_nonmetal"


def family_masks(elements) -> dict[str, np.ndarray]:
    """FAMILIES key → boolean mask of the materials that contain an element of that family."""
    fams = [{element_family(s) for s in (e.split() if isinstance(e, str) else e)} for e in elements]
    return {f: np.array([f in s for s in fams], dtype=bool) for f in FAMILIES}


def group_metrics(y_pred, y_true, scale, df, sigma_raw, flagged=None) -> dict:
    """Shipped-σ metrics (Student-t with ``scale``, ``df``) and raw-GP-σ metrics (Gaussian) of one group."""
    out = predictive_metrics(y_pred, scale, y_true, df)
    if out["n"] == 0:
        return out
    out["bias"] = float(np.mean(np.asarray(y_pred, float) - np.asarray(y_true, float)))  # GP − DFT: systematic?
    raw = predictive_metrics(y_pred, sigma_raw, y_true, None)
    out.update({"coverage_2sigma_raw": raw["coverage_2sigma"], "coverage_1sigma_raw": raw["coverage_1sigma"],
                "miscalibration_area_raw": raw["miscalibration_area"], "nll_raw": raw["nll"]})
    if flagged is not None:
        out["flagged_share"] = float(np.mean(flagged))
    return out


#: O-poor oxides: fewer than this fraction of the atoms are O (metal-rich suboxides such as Ti6O)
O_POOR = 0.2

#: a group whose share among the outliers exceeds its share of all materials by more than this factor is
#: over-represented there; below the second factor, under-represented (the Calibration tab and the lesson say so)
OVER_REPRESENTED, UNDER_REPRESENTED = 1.25, 0.8


def representation(share_outliers: float, share_all: float) -> str:
    """"over", "under" or "about": how a group's share among the outliers compares with its share of all."""
    if share_outliers > OVER_REPRESENTED * share_all:
        return "over"
    if share_outliers < UNDER_REPRESENTED * share_all:
        return "under"
    return "about"


def oxygen_fraction(formulas) -> np.ndarray:
    """Atomic fraction of O per formula (pymatgen Composition)."""
    from pymatgen.core import Composition

    return np.array([Composition(f).get_atomic_fraction("O") for f in formulas], dtype=float)


def group_report(y_pred, y_true, scale, df, sigma_raw, check, elements, is_phosphate, label: str = "test",
                 formulas=None, min_n: int = 1) -> dict[str, dict]:
    """The groups of one set of oxides (e.g. the test split): all, phosphates / other oxides, in domain /
    flagged (and per reason), O-poor oxides (with ``formulas``) and element families. Each entry has
    ``label``, ``set`` and the metrics."""
    y_pred, y_true, scale, sigma_raw = (np.asarray(a, float) for a in (y_pred, y_true, scale, sigma_raw))
    flagged = ~np.asarray(check.in_domain, bool)
    ok = np.isfinite(y_pred) & np.isfinite(y_true) & np.isfinite(scale)
    phos = np.asarray(is_phosphate, bool)
    groups: dict[str, tuple[str, np.ndarray]] = {
        "all": (f"all {label} oxides", np.ones(len(ok), bool)),
        "phosphates": ("phosphates", phos),
        "other_oxides": ("other oxides (not phosphates)", ~phos),
        "in_domain": ("in domain", ~flagged),
        "flagged": ("flagged out of domain", flagged),
        "flagged_far_latent": ("flagged: latent far from training", check.flags["far_latent"]),
        "flagged_unseen_elements": ("flagged: elements unseen in training", check.flags["unseen_elements"]),
        "flagged_rare_elements": ("flagged: rare chemistry (an element in few training materials)",
                                  check.flags.get("rare_elements", np.zeros(len(ok), bool))),
    }
    if formulas is not None:
        groups["o_poor"] = (f"O-poor (O < {O_POOR:.0%} of atoms)", oxygen_fraction(formulas) < O_POOR)
    for fam, mask in family_masks(elements).items():
        groups[f"family_{fam}"] = (f"contains {FAMILIES[fam]}", mask)
    out = {}
    for name, (title, mask) in groups.items():
        rows = mask & ok
        if rows.sum() < min_n:
            continue
        out[name] = {"label": title, "set": label,
                     **group_metrics(y_pred[rows], y_true[rows], scale[rows], df, sigma_raw[rows], flagged[rows])}
    return out
