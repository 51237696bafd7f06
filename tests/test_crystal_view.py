"""The crystal viewer's analysis on real Materials Project structures of the shipped data (read only):
PO4 tetrahedra and their P–H / P–F variants, a cubic perovskite's octahedron, repeated boundary atoms,
the supercell, the bounded cost on the largest cell, and the Plotly figure built from it."""

from __future__ import annotations

import numpy as np
import pytest

from cfgp import plotly_crystal
from cfgp.crystal_view import CRYSTALNN_MAX_SITES, crystal_view, element_colour, hull_triangles
from cfgp.pipeline import Run

IN3PO42 = "mp-28708"      # In3(PO4)2, 52 sites
ZRP2HO3 = "mp-24030"      # ZrP2(HO3)2: PO3H, one apical O replaced by H (a paper outlier)
SNPO3F = "mp-555838"      # SnPO3F: PO3F (a paper outlier)
BASIO3 = "mp-1016821"     # cubic perovskite, Ba at the corner, Si at the body centre, O on the face centres
CAFEO3 = "mp-1001571"     # cubic perovskite, Fe at the corner, Ca at the body centre, O on the edge centres


@pytest.fixture(scope="module")
def materials():
    return Run("data/default").materials


def structure(materials, mid):
    return materials.structure(int(materials.index_of([mid])[0]))


def polyhedra_of(view, element):
    return [p for p in view.polyhedra if view.symbols[p[0]] == element]


def test_phosphate_p_is_a_po4_tetrahedron(materials):
    s = structure(materials, IN3PO42)
    v = crystal_view(s)
    assert v.method == "CrystalNN" and v.note == ""
    n_p = sum(site.specie.symbol == "P" for site in s)
    polys = polyhedra_of(v, "P")
    assert len(polys) == n_p == 8
    for centre, verts, tri in polys:
        assert list(v.symbols[verts]) == ["O"] * 4
        d = np.linalg.norm(v.cart[verts] - v.cart[centre], axis=1)
        assert np.all((d > 1.45) & (d < 1.65)), d
        assert tri.shape == (4, 3)  # a tetrahedron's hull: four triangles over the four O
        # each P–O of the polyhedron is also a drawn bond
        bonded = {tuple(b) for b in v.bonds}
        assert all((min(centre, o), max(centre, o)) in bonded for o in verts)
    p_lines = [e for e in v.environments if e.element == "P"]
    assert p_lines and all(e.text.startswith("P: 4-fold tetrahedral") for e in p_lines)
    assert p_lines[0].order_parameter > 0.9
    assert v.coordination_text().startswith("P: 4-fold tetrahedral, P–O 1.55 Å ×3, P–O 1.58 Å (8 sites)")


@pytest.mark.parametrize("mid, apical", [(ZRP2HO3, "H"), (SNPO3F, "F")])
def test_outlier_phosphates_show_the_apical_substitution(materials, mid, apical):
    """The paper's outliers: one O of PO4 replaced by H or F, which the text and the polyhedra must show."""
    v = crystal_view(structure(materials, mid))
    text = [e.text for e in v.environments if e.element == "P"]
    assert text and "4-fold tetrahedral" in text[0] and f"P–{apical} " in text[0] and "P–O " in text[0], text
    for centre, verts, _ in polyhedra_of(v, "P"):
        assert sorted(v.symbols[verts]) == sorted(["O", "O", "O", apical])
    env = [e for e in v.environments if e.element == "P"][0]
    assert {e for e, _, _ in env.bonds} == {"O", apical}
    assert sum(c for e, _, c in env.bonds if e == "O") == 3


def test_cubic_perovskite_b_site_is_octahedral_and_boundary_atoms_repeat(materials):
    s = structure(materials, BASIO3)
    a = s.lattice.a
    v = crystal_view(s)
    si = [e for e in v.environments if e.element == "Si"]
    assert len(si) == 1 and si[0].text.startswith("Si: 6-fold octahedral") and si[0].order_parameter > 0.99
    assert si[0].bonds == [("O", round(a / 2, 2), 6)]
    (centre, verts, tri), = polyhedra_of(v, "Si")
    assert len(verts) == 6 and len(tri) == 8  # octahedron: 6 vertices, 8 faces
    # Ba on the corner → 8 copies, Si in the body → 1, O on the 3 face centres → 2 each
    drawn = dict(zip(*np.unique(v.symbols.astype(str), return_counts=True)))
    assert drawn == {"Ba": 8, "Si": 1, "O": 6}
    assert v.n_cell_atoms == len(s) == 5
    assert np.all(v.cart.min(axis=0) > -1e-6) and np.all(v.cart.max(axis=0) < a + 1e-6)  # all inside the cell


def test_edge_centred_atoms_repeat_four_times(materials):
    v = crystal_view(structure(materials, CAFEO3))
    own = dict(zip(*np.unique(v.symbols[~v.is_image].astype(str), return_counts=True)))
    assert own == {"Ca": 1, "Fe": 1, "O": 3}
    # the Fe octahedron is completed with O outside the cell: 12 O on the edges + 3 more (the Fe at the origin
    # has O at −a/2 along each axis)
    drawn = dict(zip(*np.unique(v.symbols.astype(str), return_counts=True)))
    assert drawn["Fe"] == 8 and drawn["Ca"] == 1 and drawn["O"] == 12 + 3
    (centre, verts, _), = polyhedra_of(v, "Fe")
    assert len(verts) == 6


def test_supercell_repeats_the_cell_eight_times(materials):
    s = structure(materials, BASIO3)
    one, two = crystal_view(s), crystal_view(s, supercell=(2, 2, 2))
    assert two.n_cell_atoms == 8 * one.n_cell_atoms == 40
    drawn = dict(zip(*np.unique(two.symbols.astype(str), return_counts=True)))
    assert drawn == {"Ba": 27, "Si": 8, "O": 36}  # 3×3×3 corners; 2×2×3 face centres per orientation
    assert len(polyhedra_of(two, "Si")) == 8
    lengths = np.linalg.norm(two.cell_edges[:, 1] - two.cell_edges[:, 0], axis=1)
    assert np.allclose(sorted(lengths), 2 * s.lattice.a)
    with pytest.raises(ValueError, match="supercell"):
        crystal_view(s, supercell=(0, 1, 1))
    with pytest.raises(ValueError, match="supercell"):
        crystal_view(s, supercell=(4, 4, 4))


def test_bonds_are_neighbour_distances_in_both_directions(materials):
    v = crystal_view(structure(materials, IN3PO42))
    d = np.linalg.norm(v.cart[v.bonds[:, 0]] - v.cart[v.bonds[:, 1]], axis=1)
    assert len(v.bonds) > 0 and np.all(d > 1.0) and np.all(d < 3.5)
    assert len({tuple(b) for b in v.bonds}) == len(v.bonds) and np.all(v.bonds[:, 0] < v.bonds[:, 1])


def test_large_cells_use_the_bounded_distance_rule_and_say_so(materials):
    f = materials.frame
    big = f.loc[f.nsites.idxmax()]
    assert big.nsites > CRYSTALNN_MAX_SITES
    v = crystal_view(materials.structure(int(big.name)))
    assert v.method.startswith("distance rule")
    assert f"{big.nsites} sites > {CRYSTALNN_MAX_SITES}" in v.note and "distance rule" in v.coordination_text()
    assert v.n_cell_atoms == big.nsites and len(v.bonds) > big.nsites / 2
    # the same rule on a phosphate still finds PO4 tetrahedra (forced with max_sites=0)
    w = crystal_view(structure(materials, IN3PO42), max_sites=0)
    assert all(list(w.symbols[p[1]]) == ["O"] * 4 for p in polyhedra_of(w, "P"))
    assert "distance rule" in w.note


def test_hull_triangles_of_ideal_shapes():
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
    oct_ = np.vstack([np.eye(3), -np.eye(3)])
    square = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]], float)
    assert len(hull_triangles(tet)) == 4 and len(hull_triangles(oct_)) == 8
    sq = hull_triangles(square)  # flat: fanned in its plane, covering the square once
    assert len(sq) == 2 and len(set(sq.ravel())) == 4
    assert len(hull_triangles(square[:2])) == 0


def test_vesta_colours_and_radii(materials):
    v = crystal_view(structure(materials, IN3PO42))
    rgb = {e: tuple(int(element_colour(e)[k:k + 2], 16) for k in (1, 3, 5)) for e in ("O", "P", "In")}
    assert rgb["O"][0] > 200 and rgb["O"][1] < 60 and rgb["O"][2] < 60  # oxygen is red
    assert len(set(rgb.values())) == 3
    r = {e: v.radius[v.symbols == e][0] for e in ("O", "P", "In")}
    assert r["O"] < r["P"] < r["In"]


def test_figure_has_spheres_bonds_polyhedra_cell_and_a_legend(materials):
    s = structure(materials, IN3PO42)
    fig = plotly_crystal.structure_figure(s, title="x")
    names = [t.name for t in fig.data]
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert {"O", "P", "In", "bonds", "P polyhedra"} <= set(legend), legend
    assert "In polyhedra" not in names  # In is a post-transition metal: no polyhedron (P, Si, S, B, TMs, …)
    own = [t for t in fig.data if t.type == "scatter3d" and t.mode == "markers" and t.showlegend is not False]
    assert sum(len(t.x) for t in own) == len(s)
    mesh = next(t for t in fig.data if t.name == "P polyhedra")
    assert mesh.type == "mesh3d" and 0 < mesh.opacity < 1
    assert list(mesh.meta["sizes"]) == [4] * 8 and list(mesh.text) == ["O"] * 32
    assert sum(v is None for v in fig.data[names.index("cell")].x) == 12
    big = plotly_crystal.structure_figure(s, supercell=(2, 2, 2))
    own2 = [t for t in big.data if t.type == "scatter3d" and t.mode == "markers" and t.showlegend is not False]
    assert sum(len(t.x) for t in own2) == 8 * len(s)


def test_cell_sketch_draws_every_site_in_its_colour_and_the_cell(materials):
    """The gallery's sketch: one circle per site of the cell in its element's colour, the 12 cell edges, everything
    inside the picture; far atoms drawn before near ones."""
    import xml.etree.ElementTree as ET

    from cfgp.crystal_view import cell_sketch

    s = structure(materials, IN3PO42)
    svg = ET.fromstring(cell_sketch(s, size=120))
    ns = "{http://www.w3.org/2000/svg}"
    circles, lines = svg.findall(f"{ns}circle"), svg.findall(f"{ns}line")
    assert len(circles) == len(s) and len(lines) == 12
    fills = [c.get("fill") for c in circles]
    assert {f: fills.count(f) for f in set(fills)} == {element_colour(e): n for e, n in
                                                       s.composition.get_el_amt_dict().items()}
    for c in circles:
        x, y, r = (float(c.get(k)) for k in ("cx", "cy", "r"))
        assert 0 <= x - r and x + r <= 120 and 0 <= y - r and y + r <= 120, (x, y, r)
    other = ET.fromstring(cell_sketch(structure(materials, ZRP2HO3)))
    assert len(other.findall(f"{ns}circle")) == len(structure(materials, ZRP2HO3))
