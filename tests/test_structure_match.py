"""Is a crystal already in the data set: the same material, its structure type, or neither — on the shipped default's
real crystals (read only), as a supercell, with noise, strained."""

import numpy as np
import pytest

from cfgp.structure_match import MAX_MATCH_CANDIDATES, find_match, primitive_cell


@pytest.fixture(scope="module")
def default():
    """The default's materials, standardised latents and formula index (what an upload is matched against)."""
    from cfgp.artefacts import DEFAULT_RUN
    from cfgp.pipeline import Run, load_gp
    from cfgp.search import build_formula_index

    run = Run(DEFAULT_RUN)
    xs = load_gp(run, conditioned=False).scaler_.transform(np.nan_to_num(run.latents()))
    return run.materials, xs, build_formula_index(run.materials.frame)


def _match(default, structure, row):
    materials, xs, index = default
    return find_match(materials, index.get(structure.composition.reduced_formula), xs, structure, xs[row])


def test_a_strained_crystal_is_the_same_structure_type_not_the_same_material(default):
    """SnPO3F (mp-555838, one of the paper's named phosphates) strained by 4 %: the same structure type, with the
    lattice and volume differences measured; unstrained, the same material."""
    materials = default[0]
    row = int(materials.index_of(["mp-555838"])[0])
    original = materials.structure(row)
    same = _match(default, original.copy(), row)
    assert same.row == row and same.same_material and abs(same.length_diff) < 1e-6
    strained = original.copy()
    strained.apply_strain(0.04)
    m = _match(default, strained, row)
    assert m.row == row and not m.same_material
    assert m.length_diff == pytest.approx(0.04, abs=1e-3) and m.volume_diff == pytest.approx(1.04**3 - 1, abs=1e-3)


def test_a_supercell_is_the_same_material_even_with_noise_and_at_the_upload_limit(default):
    """A 2×1×1 supercell with 0.002 Å or 0.05 Å of noise (spglib keeps the noisy one's supercell; the matcher
    reduces it) and a supercell at the upload's 1,000-site limit are the material they repeat, with no lattice
    difference; a crystal of another formula has no candidates."""
    from cfgp.structure_checks import MAX_SITES

    materials = default[0]
    row = int(materials.index_of(["mp-555838"])[0])
    s = materials.structure(row)
    for noise in (0.002, 0.05):
        sc = s.copy()
        sc.make_supercell([2, 1, 1])
        sc.perturb(noise)
        m = _match(default, sc, row)
        assert m.row == row and m.same_material and m.length_diff < 0.01, (noise, m)
    n = int(np.floor((MAX_SITES / len(s)) ** (1 / 3)))
    big = s.copy()
    big.make_supercell([n, n, n])
    assert MAX_SITES // 8 < len(big) <= MAX_SITES
    assert len(primitive_cell(big)) == len(s)
    m = _match(default, big, row)
    assert m.row == row and m.same_material and m.compared <= MAX_MATCH_CANDIDATES
    other = s.copy()
    other.replace_species({"Sn": "Pb"})
    assert find_match(materials, default[2].get("PbPO3F_not_a_formula"), default[1], other, default[1][row]).row is None
