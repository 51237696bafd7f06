"""Structural motifs: which materials hold phosphate units, by the bonds the crystal viewer finds.

The paper's outliers are phosphates in the chemical sense — PO4 tetrahedra, some with an apical O replaced by P–H
(phosphites, HPO3) or P–F (fluorophosphates, PO3F) — not every oxide that happens to contain P: P4(SO2)3,
SbPCl8O or P3SN4Cl5O hold no PO4 unit. A material is a phosphate here when one of its P sites has exactly four
neighbours, at least three of them O and the fourth O, H or F, as pymatgen's CrystalNN finds them (the distance
rule of :mod:`cfgp.crystal_view` on cells too large for CrystalNN, as in the viewer). Only P sites are analysed,
and only in materials containing P and O, so the whole shipped data set takes minutes once; the result is stored
with the run (``motifs.json``) and read from there.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from cfgp.crystal_view import CRYSTALNN_MAX_SITES, CUTOFF_TOL

#: motif of a P site by its four neighbours; anything else is "other P"
UNITS = {("O", "O", "O", "O"): "PO4", ("H", "O", "O", "O"): "HPO3", ("F", "O", "O", "O"): "PO3F"}
#: what a material is called from its P sites' units (the first that applies)
PHOSPHATE_UNITS = ("PO4", "HPO3", "PO3F")
MOTIFS_FILE = "motifs.json"


def p_site_units(structure) -> list[str]:
    """The unit of every P site of ``structure``: 'PO4', 'HPO3', 'PO3F' or e.g. 'P(O3S)' for other neighbours."""
    from pymatgen.analysis.local_env import CrystalNN, MinimumDistanceNN

    sites = [i for i, s in enumerate(structure) if s.specie.symbol == "P"]
    if not sites:
        return []
    nn = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(structure) <= CRYSTALNN_MAX_SITES:
            try:
                cnn = CrystalNN()
                nn = [cnn.get_nn_info(structure, i) for i in sites]
            except Exception:  # noqa: BLE001 — the viewer falls back to the distance rule too
                nn = None
        if nn is None:
            rule = MinimumDistanceNN(tol=CUTOFF_TOL, cutoff=5.0)
            nn = [rule.get_nn_info(structure, i) for i in sites]
    units = []
    for info in nn:
        key = tuple(sorted(n["site"].specie.symbol for n in info))
        other = "".join(f"{e}{c if c > 1 else ''}" for e, c in sorted(Counter(key).items()))
        units.append(UNITS.get(key, f"P({other})"))
    return units


def motif_of(units: list[str]) -> str:
    """A material's motif from its P sites' units: the first phosphate unit present, else 'other P', else ''."""
    for u in PHOSPHATE_UNITS:
        if u in units:
            return u
    return "other P" if units else ""


def is_phosphate(motif: str) -> bool:
    return motif in PHOSPHATE_UNITS


def material_motifs(structure_of, ids, contains_po: np.ndarray, progress: bool = False) -> dict[str, dict]:
    """{material id: {"motif": ..., "units": {unit: count}}} for the rows with P and O (``structure_of(row)`` gives
    a row's structure; other materials have no P site to analyse)."""
    out = {}
    rows = np.flatnonzero(contains_po)
    it = rows
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(rows, desc="P-site motifs", unit="material")
    for r in it:
        units = p_site_units(structure_of(int(r)))
        out[str(ids[r])] = {"motif": motif_of(units), "units": dict(Counter(units))}
    return out
