"""What a crystal viewer draws, computed from a pymatgen Structure: atoms (with the periodic images that sit on
the cell's faces, edges and corners), bonds, coordination polyhedra, cell edges, element colours and radii, and
one line of text per cation site type ("P: 4-fold tetrahedral, P–O 1.53 Å ×3, P–F 1.58 Å").

Why: the outliers worth inspecting are explained by local chemistry — a PO4 tetrahedron whose apical O is
replaced by P–H or P–F — which coloured dots in a box do not show. Pymatgen's own neighbour analysis (CrystalNN)
finds the bonds; the polyhedra are the convex hulls of a cation's anion neighbours; the geometry is named from
the coordination number and pymatgen's ``LocalStructOrderParams`` (the cheap part of ChemEnv's idea: score the
ideal shapes possible for that coordination number and keep the best).

Cost is bounded: CrystalNN (a Voronoi tessellation per site) runs on cells of at most ``CRYSTALNN_MAX_SITES``
sites; a bigger cell, or a cell where CrystalNN fails, uses a distance rule (``MinimumDistanceNN``: neighbours
within 1 + ``CUTOFF_TOL`` of a site's nearest distance) and ``CrystalView.method`` says which was used. The
neighbours are found on the unit cell once; a supercell only repeats them.

Colours are VESTA's element colours as pymatgen ships them (``pymatgen/vis/ElementColorSchemes.yaml``, the
"VESTA" scheme, taken from VESTA's ``elements.ini``); radii are pymatgen's ``Element.atomic_radius`` (Slater's
empirical atomic radii, J. C. Slater, J. Chem. Phys. 41, 3199 (1964)), which is what VESTA's default "atomic
radius" setting also draws. Arrays out, no web framework: ``cfgp/hv_plots.py`` turns a ``CrystalView`` into a
Plotly figure.
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from cfgp.palette import ATOM_OUTLINE, CELL_EDGE

#: CrystalNN took 3.0 s on the largest shipped cell (200 sites) in a first probe, 7.4 s and 2.5–4 s for 96–100
#: sites with the 2-core machine heavily loaded: bigger cells than this (12 % of the shipped oxides) use the
#: distance rule, which takes well under a second on any of them
CRYSTALNN_MAX_SITES = 64
#: distance rule: a site's neighbours are those within (1 + CUTOFF_TOL) × its nearest-neighbour distance
CUTOFF_TOL = 0.2
#: fractional distance to a face within which an atom is repeated on the opposite face
BOUNDARY_TOL = 1e-3
#: elements whose coordination polyhedra are drawn (plus every transition metal), as VESTA users expect
POLYHEDRON_ELEMENTS = frozenset({"B", "C", "Al", "Si", "P", "S", "Ge", "As", "Se", "Sn", "Sb", "Te"})
#: at most this many supercell repeats along one axis
MAX_REPEAT = 3

#: ideal shapes scored for each coordination number: (name shown, LocalStructOrderParams type)
GEOMETRIES = {
    2: [("linear", "sgl_bd"), ("bent", "bent")],
    3: [("trigonal planar", "tri_plan"), ("trigonal pyramidal", "tri_pyr"), ("T-shaped", "T")],
    4: [("tetrahedral", "tet"), ("square planar", "sq_plan"), ("see-saw", "see_saw_rect")],
    5: [("trigonal bipyramidal", "tri_bipyr"), ("square pyramidal", "sq_pyr")],
    6: [("octahedral", "oct"), ("pentagonal pyramidal", "pent_pyr")],
    7: [("pentagonal bipyramidal", "pent_bipyr"), ("hexagonal pyramidal", "hex_pyr")],
    8: [("hexagonal bipyramidal", "hex_bipyr"), ("body-centred cubic", "bcc")],
    12: [("cuboctahedral", "cuboct")],
}
#: below this order parameter the best ideal shape is called "distorted"
MIN_ORDER = 0.5


@dataclass
class SiteEnvironment:
    """One cation site type: its element, how many sites of the cell share the environment, and the text."""

    element: str
    n_sites: int
    coordination: int
    geometry: str
    order_parameter: float
    bonds: list[tuple[str, float, int]]  # (neighbour element, distance Å, count)
    text: str


@dataclass
class CrystalView:
    """Everything a viewer draws, as arrays (Cartesian Å).

    Atom arrays (length n): ``symbols``, ``cart``, ``site`` (index in the unit cell), ``cell`` (the integer
    lattice translation of that copy), ``is_image`` (True for a copy outside the drawn cell(s): a repeat on a
    face/edge/corner or a neighbour that completes a polyhedron; False for the cell's own atoms, ``n_sites ×
    supercell volume`` of them), ``radius``, ``colour`` (hex). ``bonds`` (m, 2) index atom pairs;
    ``polyhedra`` are (centre atom, vertex atoms, triangles indexing the vertices); ``cell_edges`` (12, 2, 3).
    """

    symbols: np.ndarray
    cart: np.ndarray
    site: np.ndarray
    cell: np.ndarray
    is_image: np.ndarray
    radius: np.ndarray
    colour: np.ndarray
    bonds: np.ndarray
    polyhedra: list[tuple[int, np.ndarray, np.ndarray]]
    cell_edges: np.ndarray
    environments: list[SiteEnvironment]
    supercell: tuple[int, int, int]
    method: str
    note: str = ""
    seconds: float = 0.0
    formula: str = field(default="")

    @property
    def n_cell_atoms(self) -> int:
        """Atoms of the drawn cell(s) themselves (no images)."""
        return int((~self.is_image).sum())

    def coordination_text(self) -> str:
        """One line per cation site type, then how the neighbours were found."""
        lines = [e.text for e in self.environments]
        return "\n".join(lines + ([self.note] if self.note else []))


# ----------------------------------------------------------------------------------------------- tables
@lru_cache(maxsize=1)
def element_colours() -> dict[str, str]:
    """VESTA's element colours from pymatgen's ``vis/ElementColorSchemes.yaml`` (symbol → '#rrggbb')."""
    import pymatgen.vis
    from monty.serialization import loadfn

    table = loadfn(Path(pymatgen.vis.__file__).parent / "ElementColorSchemes.yaml")["VESTA"]
    return {el: "#%02x%02x%02x" % tuple(int(c) for c in rgb) for el, rgb in table.items()}


def element_colour(symbol: str) -> str:
    return element_colours().get(symbol, "#ff1493")  # pink for an element absent from the table, as Jmol does


@lru_cache(maxsize=None)
def element_radius(symbol: str) -> float:
    """Slater's empirical atomic radius (Å) as pymatgen holds it; 1.5 Å when unknown."""
    from pymatgen.core.periodic_table import Element

    r = Element(symbol).atomic_radius
    return float(r) if r is not None else 1.5


@lru_cache(maxsize=None)
def _electronegativity(symbol: str) -> float:
    from pymatgen.core.periodic_table import Element

    x = Element(symbol).X
    return float(x) if np.isfinite(x) else 0.0


@lru_cache(maxsize=None)
def draws_polyhedron(symbol: str) -> bool:
    from pymatgen.core.periodic_table import Element

    return symbol in POLYHEDRON_ELEMENTS or Element(symbol).is_transition_metal


# ------------------------------------------------------------------------------------------ neighbours
def _wrapped(structure):
    """The structure with every fractional coordinate in [0, 1) (so a neighbour's image is its translation)."""
    from pymatgen.core import Structure

    frac = np.mod(structure.frac_coords, 1.0)
    frac[frac > 1.0 - 1e-9] = 0.0
    return Structure(structure.lattice, structure.species, frac, coords_are_cartesian=False)


def neighbours(structure, max_sites: int = CRYSTALNN_MAX_SITES):
    """Per site, its neighbours as (site index, integer image, distance Å); and which method found them."""
    from pymatgen.analysis.local_env import CrystalNN, MinimumDistanceNN

    method, note = "CrystalNN", ""
    info = None
    if len(structure) <= max_sites:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = CrystalNN().get_all_nn_info(structure)
        except Exception as exc:  # noqa: BLE001 — any failure of the analysis falls back to the distance rule
            note = f"CrystalNN failed ({type(exc).__name__}: {exc}); "
    else:
        note = f"{len(structure)} sites > {max_sites}: CrystalNN would take seconds; "
    if info is None:
        method = f"distance rule (within {1 + CUTOFF_TOL:g}× each site's nearest distance)"
        note += f"neighbours by the {method}."
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = MinimumDistanceNN(tol=CUTOFF_TOL, cutoff=5.0).get_all_nn_info(structure)
    out = []
    for i, nn in enumerate(info):
        centre = structure[i].coords
        out.append([(int(n["site_index"]), tuple(int(round(v)) for v in n["image"]),
                     float(np.linalg.norm(n["site"].coords - centre)), n["site"]) for n in nn])
    return out, method, note


# ---------------------------------------------------------------------------------------- geometry names
@lru_cache(maxsize=1)
def _order_params():
    from pymatgen.analysis.local_env import LocalStructOrderParams

    types = sorted({t for shapes in GEOMETRIES.values() for _, t in shapes})
    return types, LocalStructOrderParams(types)


def geometry_name(centre_site, neighbour_sites) -> tuple[str, float]:
    """Best ideal shape for this coordination (name, order parameter in [0, 1]); '' when none is scored."""
    cn = len(neighbour_sites)
    shapes = GEOMETRIES.get(cn)
    if not shapes:
        return "", float("nan")
    types, lsop = _order_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = lsop.get_order_parameters([centre_site, *neighbour_sites], 0, indices_neighs=list(range(1, cn + 1)))
    scored = [(float(values[types.index(t)] or 0.0), name) for name, t in shapes]
    best, name = max(scored)
    return (name if best >= MIN_ORDER else f"distorted (closest: {name})"), best


def _bond_summary(element: str, nn: list) -> list[tuple[str, float, int]]:
    """(neighbour element, distance, count), distances rounded to 0.01 Å, sorted by distance."""
    counts: dict[tuple[str, float], int] = {}
    for j_el, d in nn:
        key = (j_el, round(d, 2))
        counts[key] = counts.get(key, 0) + 1
    return sorted(((e, d, c) for (e, d), c in counts.items()), key=lambda t: (t[1], t[0]))


def _bond_text(element: str, bonds: list[tuple[str, float, int]]) -> str:
    parts = []
    for nb in sorted({e for e, _, _ in bonds}, key=lambda e: min(d for x, d, _ in bonds if x == e)):
        rows = [(d, c) for e, d, c in bonds if e == nb]
        if len(rows) > 3:  # many distinct lengths: a range says more than a list
            n = sum(c for _, c in rows)
            parts.append(f"{element}–{nb} {rows[0][0]:.2f}–{rows[-1][0]:.2f} Å ×{n}")
        else:
            parts += [f"{element}–{nb} {d:.2f} Å" + (f" ×{c}" if c > 1 else "") for d, c in rows]
    return ", ".join(parts)


def environments(structure, nn: list, max_types: int = 12) -> list[SiteEnvironment]:
    """One entry per cation site type (a site less electronegative than the mean of its neighbours), sites
    grouped by element, coordination number and bond lengths (rounded to 0.01 Å)."""
    groups: dict[tuple, list[int]] = {}
    for i, site in enumerate(structure):
        el = site.specie.symbol
        if not nn[i]:
            continue
        xs = [_electronegativity(structure[j].specie.symbol) for j, _, _, _ in nn[i]]
        if _electronegativity(el) >= float(np.mean(xs)):
            continue
        bonds = _bond_summary(el, [(structure[j].specie.symbol, d) for j, _, d, _ in nn[i]])
        groups.setdefault((el, len(nn[i]), tuple(bonds)), []).append(i)
    out = []
    for (el, cn, bonds), sites in sorted(groups.items(), key=lambda kv: (
            -_electronegativity(kv[0][0]), kv[0][0], kv[0][1], kv[0][2])):
        i = sites[0]
        geometry, order = geometry_name(structure[i], [s for _, _, _, s in nn[i]])
        label = f"{cn}-fold" + (f" {geometry}" if geometry else "")
        many = f" ({len(sites)} sites)" if len(sites) > 1 else ""
        out.append(SiteEnvironment(el, len(sites), cn, geometry, order, list(bonds),
                                   f"{el}: {label}, {_bond_text(el, list(bonds))}{many}"))
    if len(out) > max_types:
        rest = len(out) - max_types
        out = out[:max_types]
        out.append(SiteEnvironment("", 0, 0, "", float("nan"), [], f"… and {rest} more site types"))
    return out


# -------------------------------------------------------------------------------------------- hulls
def hull_triangles(points: np.ndarray) -> np.ndarray:
    """Triangles (k, 3) of the convex hull of ``points``; a flat set (a triangle, a square) is fanned in its
    plane; fewer than 3 points → no triangle."""
    from scipy.spatial import ConvexHull, QhullError

    p = np.asarray(points, float)
    if len(p) < 3:
        return np.zeros((0, 3), int)
    centred = p - p.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    if len(p) >= 4 and s[2] > 1e-3 * s[0]:
        try:
            return np.asarray(ConvexHull(p).simplices, int)
        except QhullError:
            pass
    # flat: order the points by angle in their best-fit plane and fan from the first
    u, v = np.linalg.svd(centred)[2][:2]
    order = np.argsort(np.arctan2(centred @ v, centred @ u))
    return np.array([[order[0], order[k], order[k + 1]] for k in range(1, len(order) - 1)], int)


def cell_edges(lattice_matrix: np.ndarray) -> np.ndarray:
    """The 12 edges (12, 2, 3) of the parallelepiped spanned by the rows of ``lattice_matrix``."""
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float) @ lattice_matrix
    return np.array([[corners[a], corners[b]] for a in range(8) for b in range(a + 1, 8)
                     if bin(a ^ b).count("1") == 1])


# ------------------------------------------------------------------------------------------- sketch
#: the sketch's fixed view: turned 25° about the vertical, then tilted 20° towards the viewer (an oblique look that
#: shows all three cell directions); a sketch is for telling materials apart at a glance, not for measuring
SKETCH_TURN, SKETCH_TILT = np.radians(25.0), np.radians(20.0)
#: a sketch's margin (px) and its smallest atom radius (px)
SKETCH_MARGIN, SKETCH_MIN_RADIUS = 6.0, 1.5


def cell_sketch(structure, size: int = 120) -> str:
    """A small static SVG of the unit cell: every site wrapped into the cell as a circle in its element's colour and
    relative radius, back to front, and the cell's 12 edges. No bonds or polyhedra (those need the neighbour search,
    ~0.1–1 s a material): a dozen sketches cost milliseconds, so a selection's gallery draws at once."""
    cell = _wrapped(structure)
    lattice = cell.lattice.matrix
    turn = np.array([[np.cos(SKETCH_TURN), 0, np.sin(SKETCH_TURN)], [0, 1, 0],
                     [-np.sin(SKETCH_TURN), 0, np.cos(SKETCH_TURN)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(SKETCH_TILT), -np.sin(SKETCH_TILT)],
                     [0, np.sin(SKETCH_TILT), np.cos(SKETCH_TILT)]])
    rot = (tilt @ turn).T
    atoms, edges = cell.cart_coords @ rot, cell_edges(lattice) @ rot
    corners = edges.reshape(-1, 3)
    lo, hi = corners[:, :2].min(axis=0), corners[:, :2].max(axis=0)
    symbols = [site.specie.symbol for site in cell]
    radius = np.array([element_radius(e) for e in symbols])
    scale = (size - 2 * SKETCH_MARGIN) / max(float((hi - lo).max()) + 2 * float(radius.max()) * 0.5, 1e-9)
    pad = SKETCH_MARGIN + float(radius.max()) * 0.5 * scale

    def xy(p):  # screen x right, y down
        return pad + (p[0] - lo[0]) * scale, size - (pad + (p[1] - lo[1]) * scale)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">']
    for a, b in edges:
        (x1, y1), (x2, y2) = xy(a), xy(b)
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{CELL_EDGE}" '
                     'stroke-width="1"/>')
    for i in np.argsort(atoms[:, 2]):  # far first
        x, y = xy(atoms[i])
        r = max(SKETCH_MIN_RADIUS, 0.5 * radius[i] * scale)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{element_colour(symbols[i])}" '
                     f'stroke="{ATOM_OUTLINE}" stroke-width="0.5"/>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------- build
def crystal_view(structure, supercell: tuple[int, int, int] = (1, 1, 1),
                 max_sites: int = CRYSTALNN_MAX_SITES, boundary_tol: float = BOUNDARY_TOL) -> CrystalView:
    """Everything to draw ``structure`` (a pymatgen Structure), repeated ``supercell`` times.

    The neighbours are found once on the unit cell (CrystalNN, or the distance rule above ``max_sites`` sites
    or when CrystalNN fails); a supercell repeats them. Atoms within ``boundary_tol`` (fractional) of a face of
    the drawn block are repeated on the opposite face; a polyhedron's vertices outside the block are drawn too.
    """
    t0 = time.perf_counter()
    rep = tuple(int(v) for v in supercell)
    if len(rep) != 3 or not all(1 <= v <= MAX_REPEAT for v in rep):
        raise ValueError(f"supercell must be three repeats between 1 and {MAX_REPEAT}, got {supercell}")
    if structure.is_ordered is False:
        raise ValueError("a disordered structure (partial occupancies) cannot be drawn site by site")
    s = _wrapped(structure)
    nn, method, note = neighbours(s, max_sites)
    symbols = [site.specie.symbol for site in s]
    frac0 = s.frac_coords
    lat = s.lattice.matrix
    rep_arr = np.array(rep)

    atoms: dict[tuple[int, tuple[int, int, int]], int] = {}
    rows: list[tuple[int, tuple[int, int, int], bool]] = []

    def add(i: int, t: tuple[int, int, int], image: bool) -> int:
        key = (i, t)
        if key not in atoms:
            atoms[key] = len(rows)
            rows.append((i, t, image))
        return atoms[key]

    # the block's own atoms
    cells = [(a, b, c) for a in range(rep[0]) for b in range(rep[1]) for c in range(rep[2])]
    for t in cells:
        for i in range(len(s)):
            add(i, t, False)
    # repeats on the block's faces, edges and corners: an atom on a low face (fractional ~0) is repeated on the
    # high face, one on a high face (~1) on the low face, in every combination over the axes
    for t in cells:
        for i in range(len(s)):
            options = []
            for k in range(3):
                opt = [0]
                if frac0[i][k] < boundary_tol and t[k] == 0:
                    opt.append(rep[k])
                if frac0[i][k] > 1 - boundary_tol and t[k] == rep[k] - 1:
                    opt.append(-rep[k])
                options.append(opt)
            for shift in itertools.product(*options):
                if any(shift):
                    add(i, (t[0] + shift[0], t[1] + shift[1], t[2] + shift[2]), True)
    # polyhedra of the block's own cation atoms, completing their vertices with images
    polyhedra_raw = []
    for (i, t, image) in list(rows):
        if image or not draws_polyhedron(symbols[i]):
            continue
        xi = _electronegativity(symbols[i])
        verts = [(j, tuple(int(a + b) for a, b in zip(t, img))) for j, img, _, _ in nn[i]
                 if _electronegativity(symbols[j]) > xi]
        if len(verts) >= 3:
            polyhedra_raw.append((atoms[(i, t)], [add(j, tt, True) for j, tt in verts]))

    site = np.array([r[0] for r in rows], int)
    cell = np.array([r[1] for r in rows], int).reshape(-1, 3)
    is_image = np.array([r[2] for r in rows], bool)
    cart = (frac0[site] + cell) @ lat
    # an atom added as a polyhedron vertex that lies inside the block is not an image (cannot happen for a
    # translation outside [0, rep) — kept as a check on the bookkeeping)
    inside = np.all((cell >= 0) & (cell < rep_arr), axis=1)
    assert not np.any(is_image & inside), "an image inside the drawn block"

    # bonds between drawn atoms
    bonds = set()
    for a, (i, t, _) in enumerate(rows):
        for j, img, _, _ in nn[i]:
            b = atoms.get((j, (t[0] + img[0], t[1] + img[1], t[2] + img[2])))
            if b is not None and b != a:
                bonds.add((min(a, b), max(a, b)))
    bonds_arr = np.array(sorted(bonds), int).reshape(-1, 2)

    polyhedra = [(c, np.array(v, int), hull_triangles(cart[v])) for c, v in polyhedra_raw]
    sym = np.array(symbols, dtype=object)[site]
    return CrystalView(
        symbols=sym, cart=cart, site=site, cell=cell, is_image=is_image,
        radius=np.array([element_radius(e) for e in sym], float),
        colour=np.array([element_colour(e) for e in sym], dtype=object),
        bonds=bonds_arr, polyhedra=polyhedra, cell_edges=cell_edges(lat * rep_arr[:, None]),
        environments=environments(s, nn), supercell=rep, method=method,
        note=(f"Neighbours: {note}" if note else ""), seconds=time.perf_counter() - t0,
        formula=structure.composition.reduced_formula)
