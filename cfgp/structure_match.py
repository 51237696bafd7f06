"""Is a crystal already in the data set? The same material within DFT-relaxation tolerances, or else its structure
type, among the data set's materials of the same reduced formula.

Used for an upload in the dashboard's Predict tab. The upload is reduced to its primitive cell once (spglib, C code,
milliseconds): pymatgen's matcher otherwise reduces it again in every comparison, in Python, which took 7 s for a
1,000-site supercell and slowed every other session of the server while it ran.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from cfgp.data import DataError

#: "the same material" within DFT-relaxation tolerances: lattice lengths within 2 %, angles within 1°, sites within
#: 0.1 of the average free length, with no rescaling of the volume (pymatgen's default matcher rescales volumes, so a
#: 4 %-strained cell "matched" its parent); a match only under the default tolerances is the same structure type
SAME_MATERIAL = {"ltol": 0.02, "stol": 0.1, "angle_tol": 1.0, "scale": False}
#: structure matching costs ~50 ms per candidate: compare at most this many candidates of the same formula,
#: nearest latent first (an identical crystal has an identical latent, so it comes first)
MAX_MATCH_CANDIDATES = 8
#: spglib's tolerance (Å) when reducing an upload to its primitive cell; far below the matcher's site tolerance
PRIMITIVE_SYMPREC = 0.01


@dataclass
class Match:
    """How a crystal relates to the data set's materials of its formula."""

    row: int | None  # the matching material (same material, or else same structure type), None if neither
    n_candidates: int
    compared: int
    same_material: bool = False
    length_diff: float = 0.0  # largest relative difference of the reduced cells' lattice lengths
    volume_diff: float = 0.0  # relative difference of the volume per atom


def primitive_cell(structure):
    """The crystal's primitive cell by spglib (symmetry to :data:`PRIMITIVE_SYMPREC`), or by pymatgen's own search
    when spglib finds none; the crystal itself if both fail. Same composition, same volume per atom."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        prim = SpacegroupAnalyzer(structure, symprec=PRIMITIVE_SYMPREC).find_primitive()
    except Exception:  # spglib refuses some cells (overlapping sites, odd lattices): fall back below
        prim = None
    if prim is None or len(prim) == 0 or len(structure) % len(prim):
        try:
            prim = structure.get_primitive_structure()
        except Exception:
            prim = structure
    return prim


def cell_difference(a, b) -> tuple[float, float]:
    """(largest relative difference of the Niggli-reduced lattice lengths, relative difference of the volume per
    atom) of two cells, primitive as :func:`find_match` gives them. Cells of different sizes (spglib kept a noisy
    crystal's supercell) are reduced by pymatgen's tolerance first, as the matcher reduces them."""
    if len(a) != len(b):
        pa, pb = a.get_primitive_structure(), b.get_primitive_structure()
        if len(pa) == len(pb):
            a, b = pa, pb
    la, lb = (np.sort(p.lattice.get_niggli_reduced_lattice().abc) for p in (a, b))
    return float(np.max(np.abs(la / lb - 1))), float((a.volume / len(a)) / (b.volume / len(b)) - 1)


def find_match(materials, rows: np.ndarray | None, latents: np.ndarray, structure, latent: np.ndarray) -> Match:
    """The material of ``materials`` that ``structure`` is, or else shares its structure type with.

    ``rows``: the materials of the same reduced formula (the candidates); ``latents``: every material's
    standardised latent and ``latent`` the crystal's. At most :data:`MAX_MATCH_CANDIDATES` candidates are
    compared, nearest latent first: first with :data:`SAME_MATERIAL` tolerances, then with pymatgen's default
    ``StructureMatcher`` (structure type, volumes rescaled). Both sides are compared as primitive cells."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    if rows is None or len(rows) == 0:
        return Match(None, 0, 0)
    dist = np.linalg.norm(latents[rows] - np.asarray(latent).reshape(1, -1), axis=1)
    order = rows[np.argsort(dist, kind="stable")][:MAX_MATCH_CANDIDATES]
    strict, loose = StructureMatcher(**SAME_MATERIAL), StructureMatcher()
    compared, same_type = 0, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = primitive_cell(structure)
        for row in order:
            try:
                candidate = primitive_cell(materials.structure(int(row)))
            except DataError:
                continue
            compared += 1
            if strict.fit(mine, candidate):
                return Match(int(row), len(rows), compared, True, *cell_difference(mine, candidate))
            if same_type is None and loose.fit(mine, candidate):
                same_type = (int(row), candidate)
    if same_type is not None:
        return Match(same_type[0], len(rows), compared, False, *cell_difference(mine, same_type[1]))
    return Match(None, len(rows), compared)
