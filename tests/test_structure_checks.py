"""Plausibility checks on real crystals: every real structure passes, the chunked distance and pair counts
agree with pymatgen's own neighbour list, and the neighbour search is refused before it could blow up."""

import math
import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from cfgp.data import parse_cif
from cfgp.structure_checks import (CHUNK, MIN_NN_DISTANCE, ImplausibleStructure, check_graph_size, check_structure,
                                   nearest_pair, shortest_lattice_vector)


@pytest.fixture(scope="module")
def real_structures(small_records):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {r["material_id"]: Structure.from_str(r["cif"], fmt="cif") for r in small_records}


def test_every_real_structure_of_the_fixture_passes(small_records):
    """302 real MP oxides: parsed with the checks, each is the same crystal pymatgen reads, and its graph fits."""
    for r in small_records:
        s = parse_cif(r["cif"])
        assert len(s) == r["nsites"] and s.composition.reduced_formula == r["formula"]
        assert 0 < check_graph_size(s, 5.0) < 11_000


def test_nearest_pair_is_the_shortest_distance_pymatgen_finds(real_structures):
    """The chunked distance search agrees with pymatgen's neighbour list, atoms and own images included, also on
    a supercell larger than one chunk."""
    structures = list(real_structures.values())[::10]
    big = structures[0].copy()
    big.make_supercell([4, 4, 4])
    assert len(big) > CHUNK
    for s in [*structures, big]:
        d, i, j = nearest_pair(s.lattice, s.frac_coords)
        _, _, _, dist = s.get_neighbor_list(r=d + 0.5)
        assert d == pytest.approx(dist[dist > 1e-8].min(), abs=1e-6)
        if i != j:  # the pair it names is that far apart
            assert s.get_distance(i, j) == pytest.approx(d, abs=1e-6)


def test_shortest_lattice_vector_of_a_skewed_cell():
    lattice = Lattice.from_parameters(3.0, 11.0, 7.0, 70.0, 80.0, 40.0)
    points = lattice.get_points_in_sphere(np.zeros((1, 3)), [0, 0, 0], 12.0)
    expected = min(p[1] for p in points if p[1] > 1e-8)
    assert shortest_lattice_vector(lattice) == pytest.approx(expected, abs=1e-9)


def test_pair_count_is_the_crystal_graphs_bond_count(real_structures):
    """check_graph_size counts, chunk by chunk, exactly the pairs of MEGNet's graph (pymatgen's neighbour list
    within the cut-off, without an atom paired with itself)."""
    s = max(real_structures.values(), key=len).copy()
    s.make_supercell([3, 3, 3])
    assert len(s) > CHUNK
    for structure in (s, *list(real_structures.values())[:20]):
        _, _, _, dist = structure.get_neighbor_list(r=5.0)
        assert check_graph_size(structure, 5.0) == len(dist)


def test_counting_stops_at_the_limit(real_structures):
    s = min(real_structures.values(), key=len).copy()
    s.make_supercell([5, 5, 5])
    with pytest.raises(ImplausibleStructure, match=r"more than 1,000 neighbour pairs .* for the first 64 of 500 atoms"):
        check_graph_size(s, 5.0, max_bonds=1_000)


def test_a_cell_spanning_a_huge_box_is_refused_before_the_neighbour_search():
    """Three ≤ 300 Å edges almost in one plane tilted to all axes (built through the API; a CIF would put a
    along x): the atoms span ~410 Å each way, and pymatgen's grid would need ~600,000 cells."""
    u = 290 / math.sqrt(2)
    a, b = np.array([u, -u, 0.0]), np.array([0.0, u, -u])
    lattice = Lattice(np.array([a, b, a + b + 5.0 * np.ones(3) / math.sqrt(3)]))
    coords = [(i / 10, j / 10, k / 8) for i in range(10) for j in range(10) for k in range(8)]
    s = Structure(lattice, ["O"] * len(coords), coords)
    check_structure(s)  # physically legal: 455 Å³ per atom, atoms far apart
    with pytest.raises(ImplausibleStructure, match="neighbour search would need"):
        check_graph_size(s, 5.0)


@pytest.mark.parametrize("spacing, ok", [(MIN_NN_DISTANCE * 0.99, False), (MIN_NN_DISTANCE * 1.01, True)])
def test_the_minimum_distance_is_the_stated_one(spacing, ok):
    """Two atoms at just below / just above MIN_NN_DISTANCE in a legal cell."""
    s = Structure(Lattice.cubic(3.0), ["H", "H"], [[0, 0, 0], [spacing / 3.0, 0, 0]])
    if ok:
        check_structure(s)
    else:
        with pytest.raises(ImplausibleStructure, match=f"atoms 1 \\(H\\) and 2 \\(H\\) are too close: .* the minimum is {MIN_NN_DISTANCE} Å"):
            check_structure(s)
