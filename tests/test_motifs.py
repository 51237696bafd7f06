"""Phosphate = the motif: P sites with four O neighbours (or the paper's P–H / P–F substituted units), by the
crystal analysis the viewer uses, on real Materials Project records; materials that merely contain P and O are not
phosphates."""

import gzip
import json

import pytest

from cfgp.data import DEFAULT_DATASET, parse_cif
from cfgp.motifs import is_phosphate, motif_of, p_site_units

#: the paper's three named phosphate outliers and three P- and O-containing oxides without a phosphate unit
EXPECTED = {"mp-24030": "HPO3",  # ZrP2(HO3)2: a phosphite, P–H apical
            "mp-555838": "PO3F",  # SnPO3F: a fluorophosphate, P–F apical
            "mp-28708": "PO4",  # In3(PO4)2
            "mp-29007": "other P",  # P4(SO2)3: P bonded to S
            "mp-23574": "other P",  # SbPCl8O: P–Cl
            "mp-624218": "other P"}  # P3SN4Cl5O: P–N, P–Cl


@pytest.fixture(scope="module")
def records():
    with gzip.open(DEFAULT_DATASET, "rt") as fh:
        return {r["material_id"]: r for r in json.load(fh) if r["material_id"] in EXPECTED}


@pytest.mark.parametrize("mid", sorted(EXPECTED))
def test_phosphate_units_are_found_by_their_bonds(records, mid):
    s = parse_cif(records[mid]["cif"])
    units = p_site_units(s)
    assert len(units) == sum(site.specie.symbol == "P" for site in s)  # one unit per P site
    assert motif_of(units) == EXPECTED[mid], units
    assert is_phosphate(motif_of(units)) == (EXPECTED[mid] != "other P")


def test_a_material_without_p_has_no_motif():
    assert motif_of([]) == "" and not is_phosphate("")


def test_the_run_carries_the_motif_and_keeps_contains_p(tiny_run):
    """A run's materials have both columns; every phosphate contains P and O, not the other way round needed."""
    f = tiny_run.materials.frame
    assert (tiny_run.dir / "motifs.json").exists()  # stored once when the run was made
    assert set(f["p_motif"]) <= {"", "PO4", "HPO3", "PO3F", "other P"}
    assert (f["is_phosphate"] <= f["contains_p"]).all()
    assert f["is_phosphate"].sum() > 0 and (f["p_motif"] != "").sum() == f["contains_p"].sum()
