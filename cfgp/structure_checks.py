"""Is a crystal physically possible, and small enough to featurise? Checks run before any crystal graph.

MEGNet's crystal graph holds every pair of atoms closer than its cut-off (5 Å), so its size grows with the
density of atoms: a real 837-byte CIF with its cell set to 0.1 Å asks for millions of pairs and took
``cfgp predict`` past 8 GB, and with a 0.3 Å cell it was "predicted" (issue 12). The checks therefore go from
cheap to costly, each bounding what the next may cost:

1. :func:`check_cif_blocks` — the raw numbers of a CIF, before pymatgen builds a structure from them:
   pymatgen silently wraps a fractional coordinate of 1e300 into the cell, and its site merging is quadratic
   (a CIF listing 11,000 sites took 69 s to parse), so cell lengths and angles, coordinates, the number of
   listed sites and their symmetry expansion are checked on the text's values;
2. :func:`check_structure` — the parsed structure: site count, element symbols, a finite cell of bounded
   lengths, the volume per atom, and only then the nearest-neighbour distance (pairwise in chunks: no
   neighbour grid, whose size a huge or skewed cell could blow up);
3. :func:`check_graph_size` — in the featuriser, which knows its cut-off: the extent of the neighbour
   search grid and the number of neighbour pairs, counted in chunks of atoms and stopped at the limit.

The limits were set against the 35,537 real Materials Project structures of ``/work/shared/data``
(16,394 oxides and 19,143 other compounds, see data/README.md); none trips any of them. Measured there
(pymatgen 2025.10.7): nearest-neighbour distance 0.746 Å (mp-720082, an H–O bond) to 3.41 Å; volume per atom
4.81 (mp-694932, Na(CoO2)3) to 133.7 Å³ (mp-1014013, molecular P); cell lengths 1.78 to 161.7 Å
(mp-680172, a CdI2 polytype); at most 200 sites (mp-698366) and 10,852 neighbour pairs within 5 Å;
fractional coordinates within [0, 1]; CIF texts of at most 11 kB.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

#: Most atomic sites in a cell (5× the largest real cell, 200 sites). Beyond it pymatgen's CIF parsing is
#: quadratic (4,000 sites took 12 s) and MEGNet's graph grows past what one prediction should cost.
MAX_SITES = 1000
#: Longest cell edge in Å (≈ 2× the longest real one, 161.7 Å); a 1e5 Å lattice is a typing error, not a crystal.
MAX_LATTICE_LENGTH = 300.0
#: Smallest distance in Å between two atoms (or an atom and its periodic image). The shortest real bond is
#: H–O/H–H at ~0.74 Å (0.746 Å is the smallest of the 35,537 real structures); closer atoms overlap.
MIN_NN_DISTANCE = 0.5
#: Allowed cell volume per atom in Å³: real structures span 4.8–134 Å³; below 2 Å³ atoms are crushed
#: together (and the graph explodes), above 500 Å³ they are isolated gas, with no bond within the cut-off.
VOLUME_PER_ATOM_RANGE: tuple[float, float] = (2.0, 500.0)
#: Largest |fractional coordinate| a CIF may give: real ones lie in [0, 1], a writer may add a few cells;
#: 1e300 is not a position (pymatgen would wrap it to 0 without a word).
MAX_ABS_FRACTIONAL = 100.0
#: Most positions a CIF's symmetry operations may generate (listed sites × operations) before pymatgen
#: merges duplicates: 48 × ``MAX_SITES`` allows any legal cell of ``MAX_SITES`` (the smallest multiplicity in
#: Fm-3m, 192 operations, is 4) and bounds the quadratic merge to a few seconds.
MAX_SYMMETRY_EXPANSION = 48 * MAX_SITES
#: Operations assumed when a CIF gives a space-group symbol but no explicit operations (the most of any group).
MAX_SYMMETRY_OPERATIONS = 192
#: Where a CIF lists its symmetry operations (the keys pymatgen's CifParser reads, magnetic ones included).
SYMOP_KEYS = ("_symmetry_equiv_pos_as_xyz", "_symmetry_equiv_pos_as_xyz_", "_space_group_symop_operation_xyz",
              "_space_group_symop_operation_xyz_", "_space_group_symop_magn_operation.xyz")
#: Heaviest element MEGNet's atom embedding knows (its vocabulary is Z = 0–94).
MAX_Z = 94
#: Most neighbour pairs within the cut-off that a crystal graph may hold: ~9× the largest real graph
#: (10,852 pairs at 5 Å). Measured: a legal 864-site cell with 81,216 pairs took ``cfgp predict`` to 1.31 GB,
#: 0.08 GB above one 4-site CIF (~1 kB per pair), so one graph stays near 100 MB.
MAX_BONDS = 100_000
#: Most cells of pymatgen's neighbour-search grid (cubes of the cut-off's edge over the atoms' bounding box
#: plus the cut-off on each side; 216 bytes each). Real structures need at most a few hundred; a very skewed
#: cell could need billions.
MAX_NEIGHBOUR_GRID_CELLS = 250_000
#: Atoms per chunk when distances or neighbours are counted, so memory stays bounded (MB, not GB).
CHUNK = 64


class ImplausibleStructure(ValueError):
    """A crystal that cannot be physical, or is too large to featurise; the message says which check and why."""


# ------------------------------------------------------------------------------------------- raw CIF values
def _cif_number(value: Any) -> float | None:
    """A CIF number ('4.2', '0.123(4)') as float; None for '?', '.', lists or text that is not a number."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "(" in text:
        text = text[: text.index("(")]
    if text in ("", "?", "."):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _column(data: dict, key: str) -> list:
    value = data.get(key)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def check_cif_blocks(blocks: dict[str, dict]) -> None:
    """Check the raw values of a parsed CIF (``CifParser.as_dict()``: block name → tag → text) before a
    structure is built from them; raise :class:`ImplausibleStructure` naming the value and the limit."""
    for block_name, data in blocks.items():
        where = f"data block {block_name}: " if len(blocks) > 1 else ""
        cell: dict[str, float] = {}
        for axis in "abc":
            raw = data.get(f"_cell_length_{axis}")
            value = _cif_number(raw)
            if value is None:
                if isinstance(raw, str) and raw.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity"):
                    raise ImplausibleStructure(f"{where}cell length {axis} = {raw.strip()} is not a finite number")
                continue
            if not math.isfinite(value):
                raise ImplausibleStructure(f"{where}cell length {axis} = {raw} is not a finite number")
            if value <= 0:
                raise ImplausibleStructure(f"{where}cell length {axis} = {raw} Å is not positive")
            if value > MAX_LATTICE_LENGTH:
                raise ImplausibleStructure(f"{where}cell length {axis} = {value:g} Å is longer than the "
                                           f"{MAX_LATTICE_LENGTH:g} Å limit (real crystals: under 162 Å)")
            cell[axis] = value
        for angle in ("alpha", "beta", "gamma"):
            raw = data.get(f"_cell_angle_{angle}")
            value = _cif_number(raw)
            if value is None:
                continue
            if not (math.isfinite(value) and 0 < value < 180):
                raise ImplausibleStructure(f"{where}cell angle {angle} = {raw}° is outside (0°, 180°)")
            cell[angle] = value

        labels = _column(data, "_atom_site_label") or _column(data, "_atom_site_type_symbol")
        fract = [_column(data, f"_atom_site_fract_{x}") for x in "xyz"]
        cartn = [_column(data, f"_atom_site_Cartn_{x}") for x in "xyz"]
        n_rows = max(len(labels), *(len(c) for c in fract), *(len(c) for c in cartn))
        if n_rows > MAX_SITES:
            raise ImplausibleStructure(f"{where}{n_rows:,} atom sites listed; the limit is {MAX_SITES:,} sites "
                                       "per cell")
        ops = next((column for key in SYMOP_KEYS if (column := _column(data, key))), [])
        n_ops = len(ops) if ops else MAX_SYMMETRY_OPERATIONS
        if n_rows * n_ops > MAX_SYMMETRY_EXPANSION:
            raise ImplausibleStructure(f"{where}{n_rows:,} listed sites × {n_ops} symmetry operations = "
                                       f"{n_rows * n_ops:,} positions to expand; the limit is "
                                       f"{MAX_SYMMETRY_EXPANSION:,}")

        def site_name(i: int) -> str:
            return f"site {i + 1}" + (f" ({labels[i]})" if i < len(labels) else "")

        for columns, kind, bound in ((fract, "fractional", MAX_ABS_FRACTIONAL),
                                     (cartn, "Cartesian", MAX_ABS_FRACTIONAL * MAX_LATTICE_LENGTH)):
            for axis, column in zip("xyz", columns):
                for i, raw in enumerate(column):
                    value = _cif_number(raw)
                    if value is None:
                        if isinstance(raw, str) and raw.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
                            raise ImplausibleStructure(f"{where}{site_name(i)}: {kind} coordinate {axis} = "
                                                       f"{raw.strip()} is not a finite number")
                        continue
                    if not math.isfinite(value):
                        raise ImplausibleStructure(f"{where}{site_name(i)}: {kind} coordinate {axis} = {raw} "
                                                   "is not a finite number")
                    if abs(value) > bound:
                        raise ImplausibleStructure(f"{where}{site_name(i)}: {kind} coordinate {axis} = {raw} is "
                                                   f"absurd (|{axis}| > {bound:g}; real ones lie within the cell)")

        if len(cell) < 6:
            continue  # a cell number is missing or unreadable: pymatgen says so when it builds the structure
        from pymatgen.core import Lattice

        try:
            lattice = Lattice.from_parameters(cell["a"], cell["b"], cell["c"], cell["alpha"], cell["beta"],
                                              cell["gamma"])
            volume = float(lattice.volume) if np.isfinite(lattice.matrix).all() else math.nan
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            volume = math.nan
        if not volume > 1e-9:
            raise ImplausibleStructure(f"{where}cell angles alpha, beta, gamma = {cell['alpha']:g}°, "
                                       f"{cell['beta']:g}°, {cell['gamma']:g}° do not form a cell (zero volume)")
        # each fully occupied listed site is at least one site of the cell: the real volume per atom is at most
        # the cell's volume over their number (partly occupied rows may share a position, so they do not count)
        occupancy = _column(data, "_atom_site_occupancy")
        full = [i for i in range(n_rows) if i >= len(occupancy) or (_cif_number(occupancy[i]) or 1.0) >= 0.999]
        lo = VOLUME_PER_ATOM_RANGE[0]
        if full and volume / len(full) < lo:
            raise ImplausibleStructure(f"{where}volume per atom at most {volume / len(full):.3g} Å³ (cell "
                                       f"{volume:.3g} Å³, {len(full)} sites listed), below {lo:g} Å³ (real "
                                       "crystals: 4.8 Å³ or more): the atoms would overlap")
        # overlapping atoms among the listed sites (fully occupied ones: a disordered site lists several
        # species at one position on purpose, and is reported as disordered later)
        if fract[0] and len(fract[0]) == len(fract[1]) == len(fract[2]):
            rows, coords = [], []
            for i in range(len(fract[0])):
                xyz = [_cif_number(fract[k][i]) for k in range(3)]
                occ = _cif_number(occupancy[i]) if i < len(occupancy) else 1.0
                if None in xyz or (occ is not None and occ < 0.999):
                    continue
                rows.append(i)
                coords.append(xyz)
            if len(rows) >= 2:
                d, i, j = nearest_pair(lattice, np.array(coords, dtype=float), self_images=False)
                if d < MIN_NN_DISTANCE:
                    what = "overlap" if d < 0.01 else "are too close"
                    raise ImplausibleStructure(f"{where}{site_name(rows[i])} and {site_name(rows[j])} {what}: "
                                               f"{d:.2f} Å apart, the minimum is {MIN_NN_DISTANCE} Å")


# ------------------------------------------------------------------------------------------------ structure
def shortest_lattice_vector(lattice) -> float:
    """Length of the shortest non-zero lattice vector (an atom's distance to its own nearest image),
    from the LLL-reduced basis: the shortest vector is among its ±1 combinations."""
    m = np.asarray(lattice.lll_matrix, dtype=float)
    combos = np.array([c for c in itertools.product((-1, 0, 1), repeat=3) if any(c)], dtype=float)
    return float(np.linalg.norm(combos @ m, axis=1).min())


def nearest_pair(lattice, frac_coords: np.ndarray, self_images: bool = True) -> tuple[float, int, int]:
    """The closest pair of sites under periodic boundaries: (distance Å, i, j); i == j means a site and its
    own image. Distances are computed ``CHUNK`` rows at a time (memory ~ CHUNK × n × 32 bytes)."""
    frac = np.asarray(frac_coords, dtype=float)
    n = len(frac)
    best = (math.inf, 0, 0)
    if self_images and n:
        best = (shortest_lattice_vector(lattice), 0, 0)
    for start in range(0, n, CHUNK):
        block = lattice.get_all_distances(frac[start:start + CHUNK], frac)
        rows = np.arange(block.shape[0])
        block[rows, start + rows] = np.inf  # a site with itself
        k = int(np.argmin(block))
        i, j = divmod(k, n)
        if block[i, j] < best[0]:
            best = (float(block[i, j]), start + i, j)
    return best


def _species_problem(structure) -> str | None:
    from pymatgen.core.periodic_table import DummySpecies

    for i, site in enumerate(structure):
        for sp in site.species:
            if isinstance(sp, DummySpecies) or not hasattr(sp, "Z"):
                symbol = getattr(sp, "symbol", str(sp))
                return f"site {i + 1}: unknown element symbol '{symbol}'"
            if sp.Z > MAX_Z:
                return (f"site {i + 1}: element {sp.symbol} (Z = {sp.Z}) is not supported: MEGNet's atom "
                        f"embedding covers Z ≤ {MAX_Z}")
    return None


def check_structure(structure) -> None:
    """Raise :class:`ImplausibleStructure` if the crystal cannot be physical or is too large to featurise.

    Cheap checks first (site count, elements, cell numbers, volume per atom), so that the only check that
    looks at pairs of atoms — the nearest-neighbour distance, computed in chunks — runs on a cell of
    bounded size and density.
    """
    n = len(structure)
    if n == 0:
        raise ImplausibleStructure("no atomic sites")
    if n > MAX_SITES:
        raise ImplausibleStructure(f"{n:,} sites; the limit is {MAX_SITES:,} sites per cell")
    problem = _species_problem(structure)
    if problem:
        raise ImplausibleStructure(problem)
    lattice = structure.lattice
    matrix = np.asarray(lattice.matrix, dtype=float)
    if not np.isfinite(matrix).all():
        raise ImplausibleStructure("the cell (lattice) is not finite")
    lengths = np.linalg.norm(matrix, axis=1)
    if lengths.max() > MAX_LATTICE_LENGTH:
        axis = "abc"[int(np.argmax(lengths))]
        raise ImplausibleStructure(f"cell length {axis} = {lengths.max():g} Å is longer than the "
                                   f"{MAX_LATTICE_LENGTH:g} Å limit (real crystals: under 162 Å)")
    volume = abs(float(np.linalg.det(matrix)))
    if not volume > 0:
        raise ImplausibleStructure("the cell has zero volume (its edges are coplanar)")
    frac = np.asarray(structure.frac_coords, dtype=float)
    if not np.isfinite(frac).all():
        raise ImplausibleStructure("an atomic coordinate is not a finite number")
    if np.abs(frac).max() > MAX_ABS_FRACTIONAL:
        raise ImplausibleStructure(f"a fractional coordinate is absurd (|x| > {MAX_ABS_FRACTIONAL:g})")
    vpa = volume / n
    lo, hi = VOLUME_PER_ATOM_RANGE
    if vpa < lo:
        raise ImplausibleStructure(f"volume per atom {vpa:.3g} Å³ is below {lo:g} Å³ (real crystals: 4.8 Å³ or "
                                   "more): the atoms would overlap")
    if vpa > hi:
        raise ImplausibleStructure(f"volume per atom {vpa:.3g} Å³ is above {hi:g} Å³ (real crystals: 134 Å³ or "
                                   "less): isolated atoms, not a crystal")
    d, i, j = nearest_pair(lattice, frac)
    if d < MIN_NN_DISTANCE:
        symbols = [site.specie.symbol if site.is_ordered else site.species.formula for site in structure]
        if i == j:
            raise ImplausibleStructure(f"atom {i + 1} ({symbols[i]}) is {d:.2f} Å from its own periodic image "
                                       f"(the cell is too small); the minimum distance is {MIN_NN_DISTANCE} Å")
        what = "overlap" if d < 0.01 else "are too close"
        raise ImplausibleStructure(f"atoms {i + 1} ({symbols[i]}) and {j + 1} ({symbols[j]}) {what}: {d:.2f} Å "
                                   f"apart, the minimum is {MIN_NN_DISTANCE} Å")


# -------------------------------------------------------------------------------------------------- graph
def check_graph_size(structure, cutoff: float, max_bonds: int = MAX_BONDS) -> int:
    """Number of neighbour pairs within ``cutoff`` (what MEGNet's crystal graph will hold), counted in
    chunks of ``CHUNK`` atoms and stopped once above ``max_bonds``; raise :class:`ImplausibleStructure` if
    the neighbour grid or the pair count is over its limit. Call after :func:`check_structure` (which
    bounds how many neighbours one atom can have)."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    cart = np.ascontiguousarray(structure.cart_coords, dtype=float)
    lattice = np.ascontiguousarray(structure.lattice.matrix, dtype=float)
    extent = cart.max(axis=0) - cart.min(axis=0)
    cells = float(np.prod(np.ceil((extent + 2 * cutoff) / cutoff)))
    if cells > MAX_NEIGHBOUR_GRID_CELLS:
        span = " × ".join(f"{e:.0f}" for e in extent)
        raise ImplausibleStructure(f"the atoms span {span} Å (a very large or skewed cell): the neighbour search "
                                   f"would need {cells:,.0f} grid cells, the limit is {MAX_NEIGHBOUR_GRID_CELLS:,}")
    pbc = np.array([1, 1, 1], dtype=np.int64)
    total = 0
    for start in range(0, len(cart), CHUNK):
        centres = np.ascontiguousarray(cart[start:start + CHUNK])
        idx1, idx2, _, dist = find_points_in_spheres(cart, centres, r=float(cutoff), pbc=pbc, lattice=lattice,
                                                     tol=1e-8)
        self_pair = (idx1 + start == idx2) & (dist <= 1e-8)
        total += int(len(dist) - self_pair.sum())
        if total > max_bonds:
            raise ImplausibleStructure(f"more than {max_bonds:,} neighbour pairs within the {cutoff:g} Å cut-off "
                                       f"(counted {total:,} for the first {min(start + CHUNK, len(cart))} of "
                                       f"{len(cart)} atoms; real crystals have at most ~11,000): too large or too "
                                       "dense for a crystal graph")
    return total
