"""A fast reader for the plain CIFs that screening mostly sees, with pymatgen's parser as the fallback.

Profiled on 256 shipped structures (``benchmarks/predict_scale.py``'s ``stage_ms``), pymatgen's ``CifParser``
took about two thirds of ``cfgp predict``'s time per structure: it tokenises with regular expressions,
matches every site against every symmetry image, and sorts sites by comparing ``Composition`` objects. The
CIFs the Materials Project (and pymatgen's ``CifWriter``) write are far simpler: space group P1 with the one
identity operation, every site listed once, fully occupied, typed by a plain element symbol. For exactly
those, :func:`read_plain_p1` reads the text with gemmi's CIF parser (C++) and builds the ``Structure``
pymatgen would build — same lattice (``Lattice.from_parameters``), same coordinates (wrapped into [0, 1)
with the same arithmetic), same site order (stable, by electronegativity then symbol, as
``Structure.get_sorted_structure``), same labels. Anything else — another symmetry, partial occupancy,
oxidation states, magnetic moments, Cartesian coordinates, an unknown tag, a number with an uncertainty —
returns ``None`` and the caller uses pymatgen, so the fast path changes speed, never a result. Every shipped
CIF is read both ways in the tests and must agree.
"""

from __future__ import annotations

import re

import numpy as np

from cfgp.structure_checks import MAX_ABS_FRACTIONAL, MAX_LATTICE_LENGTH, MAX_SITES

#: Tags the fast path understands or may ignore (what CifWriter and the Materials Project write, plus
#: harmless descriptive tags). A CIF with any other tag goes to pymatgen, which knows what it means.
KNOWN_TAGS = frozenset({
    "_symmetry_space_group_name_h-m", "_space_group_name_h-m_alt", "_symmetry_int_tables_number",
    "_space_group_it_number", "_cell_length_a", "_cell_length_b", "_cell_length_c", "_cell_angle_alpha",
    "_cell_angle_beta", "_cell_angle_gamma", "_cell_volume", "_cell_formula_units_z",
    "_chemical_formula_structural", "_chemical_formula_sum", "_chemical_name_systematic",
    "_symmetry_equiv_pos_site_id", "_symmetry_equiv_pos_as_xyz", "_space_group_symop_id",
    "_space_group_symop_operation_xyz", "_atom_site_type_symbol", "_atom_site_label",
    "_atom_site_symmetry_multiplicity", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z",
    "_atom_site_occupancy",
})
#: pymatgen's ``CifParser``: a fractional coordinate within ``frac_tolerance`` (relative) of 1/3 or 2/3 is that
IDEAL_FRACTIONS, FRACTION_TOLERANCE = (1 / 3, 2 / 3), 1e-4
SYMOP_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_IDENTITY = "x,y,z"
_ELEMENTS: dict[str, float] | None = None  # symbol → Pauling electronegativity (NaN where pymatgen has none)


def _electronegativities() -> dict[str, float]:
    """Element symbol (Z 1-118; not pymatgen's D and T pseudo-elements) → ``Element.X``, built once."""
    global _ELEMENTS
    if _ELEMENTS is None:
        import warnings

        from pymatgen.core import Element

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen warns for the elements without an electronegativity
            _ELEMENTS = {Element.from_Z(z).symbol: float(Element.from_Z(z).X) for z in range(1, 119)}
    return _ELEMENTS


class _SortKey:
    """pymatgen's ``Site.__lt__`` for an ordered single-element site — electronegativity, then symbol — so that
    Python's stable sort makes the very comparisons ``get_sorted_structure`` makes (NaN included)."""

    __slots__ = ("x", "symbol")

    def __init__(self, x: float, symbol: str):
        self.x, self.symbol = x, symbol

    def __lt__(self, other: "_SortKey") -> bool:
        if self.x < other.x:
            return True
        if self.x > other.x:
            return False
        return self.symbol < other.symbol


def _number(raw: str | None) -> float | None:
    """A plain decimal number (no uncertainty in brackets, no '?' or '.'), else None (not for the fast path)."""
    if raw is None or not _PLAIN_NUMBER.match(raw):
        return None
    return float(raw)


def _tags(block) -> list[str]:
    tags = []
    for item in block:
        if item.pair is not None:
            tags.append(item.pair[0])
        elif item.loop is not None:
            tags.extend(item.loop.tags)
        else:  # a save frame or something else this path does not read
            return ["<frame>"]
    return tags


def read_plain_p1(text: str):
    """The pymatgen ``Structure`` of a plain P1 CIF (see the module's docstring), or ``None`` when the text is
    anything else — including text gemmi cannot parse: the caller's pymatgen path then reads it or says why not.
    Only the bounds that keep the build cheap are checked here; the caller checks the structure."""
    import gemmi

    try:
        doc = gemmi.cif.read_string(text)
    except (RuntimeError, ValueError):
        return None
    if len(doc) != 1:
        return None
    block = doc[0]
    tags = _tags(block)
    if len(set(tags)) != len(tags) or not KNOWN_TAGS.issuperset(t.lower() for t in tags):
        return None
    ops = next((list(block.find_values(tag)) for tag in SYMOP_TAGS if block.find_values(tag)), None)
    if ops is None or len(ops) != 1 or gemmi.cif.as_string(ops[0]).replace(" ", "").lower() != _IDENTITY:
        return None
    cell = [_number(block.find_value(f"_cell_{k}")) for k in
            ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")]
    if any(v is None for v in cell) or not all(0 < v <= MAX_LATTICE_LENGTH for v in cell[:3]) or \
            not all(0 < v < 180 for v in cell[3:]):
        return None
    table = block.find("_atom_site_", ["type_symbol", "label", "fract_x", "fract_y", "fract_z", "?occupancy"])
    n = len(table)
    if not 0 < n <= MAX_SITES:
        return None
    electroneg = _electronegativities()
    symbols, labels, coords = [], [], np.empty((n, 3))
    has_occupancy = table.has_column(5)
    for i, row in enumerate(table):
        symbol = gemmi.cif.as_string(row[0])
        if symbol not in electroneg:
            return None
        if has_occupancy and _number(row[5]) != 1.0:
            return None
        for k in range(3):
            value = _number(row[2 + k])
            if value is None or not abs(value) <= MAX_ABS_FRACTIONAL:
                return None
            coords[i, k] = value
        symbols.append(symbol)
        labels.append(gemmi.cif.as_string(row[1]))
    return _structure(cell, symbols, labels, coords, electroneg)


def _structure(cell: list[float], symbols: list[str], labels: list[str], coords: np.ndarray,
               electroneg: dict[str, float]):
    from pymatgen.core import Lattice, Structure

    lattice = Lattice.from_parameters(*cell)
    coords = coords.copy()
    for ideal in IDEAL_FRACTIONS:  # pymatgen snaps 0.3333 and 0.6667 (finite precision) to 1/3 and 2/3
        coords[np.abs(coords / ideal - 1) <= FRACTION_TOLERANCE] = ideal
    wrapped = coords - np.floor(coords)  # pymatgen: i - math.floor(i) per coordinate, the same IEEE operations
    order = sorted(range(len(symbols)), key=lambda i: _SortKey(electroneg[symbols[i]], symbols[i]))
    return Structure(lattice, [symbols[i] for i in order], wrapped[order], labels=[labels[i] for i in order])


#: binary places of the lattice matrix (in Å) in a digest that is kept and compared on other machines: the matrix
#: comes from the CIF's cell angles through NumPy's sin and cos, whose last bit differs between CPUs (AVX-512 and AVX2
#: kernels; 1,187 of the shipped cells, all with an angle other than 90°, differ so), while parsing and wrapping the
#: coordinates is exact IEEE arithmetic everywhere. The step, 2⁻²⁰ Å ≈ 1e-6 Å, is far above those bits and far below any
#: difference between crystals; it is binary because a decimal step puts entries exactly on its rounding boundary
#: (half of a cell length given to 6 decimals, the x of a hexagonal cell's b, ends in 5 at the 7th).
PORTABLE_LATTICE_BITS = 20


def structure_digest(structure, lattice_bits: int | None = None) -> str:
    """A short hash of a structure, site by site: lattice matrix, species, fractional coordinates and labels.

    Bit for bit by default: equal digests mean the same ``Structure`` exactly, which is what the fast path promises
    on the machine it runs on. With ``lattice_bits`` (:data:`PORTABLE_LATTICE_BITS` for a stored reference) the
    lattice matrix is rounded to that many binary places first, so that a digest made on one CPU matches the same
    structure built on another.
    """
    import hashlib

    matrix = np.ascontiguousarray(structure.lattice.matrix, dtype=np.float64)
    if lattice_bits is not None:  # scaling by a power of two is exact; + 0.0: a rounded −0.0 hashes as 0.0
        matrix = np.round(matrix * 2.0 ** lattice_bits) + 0.0
    h = hashlib.sha256(matrix.tobytes())
    h.update("|".join(site.species_string for site in structure).encode())
    h.update(np.ascontiguousarray(structure.frac_coords, dtype=np.float64).tobytes())
    h.update("|".join(str(site.label) for site in structure).encode())
    return h.hexdigest()[:16]


__all__ = ["read_plain_p1", "structure_digest", "KNOWN_TAGS", "PORTABLE_LATTICE_BITS"]
