"""The fast CIF reader builds the structure pymatgen's parser builds — on every shipped CIF — and
hands every other kind of CIF to pymatgen, so that `cfgp predict`'s lines and messages do not depend on it.

The stored reference (pymatgen's structures, made once) rounds the lattice matrix to ``PORTABLE_LATTICE_BITS`` binary
places: the matrix comes from sin and cos, whose last bit differs between CPUs, so an exact digest kept in a file
holds on one kind of machine only. Bit for bit is checked live, against pymatgen on this machine, on a seeded sample."""

from __future__ import annotations

import gzip
import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from cfgp.cif_reader import PORTABLE_LATTICE_BITS, read_plain_p1, structure_digest
from cfgp.data import DEFAULT_DATASET, DataError, parse_cif
from cfgp.record_streams import iter_records

FIXTURES = Path(__file__).parent / "fixtures"
DIGESTS = FIXTURES / "shipped_cif_digests.json.gz"  # made by tests/fixtures/make_cif_digests.py


@pytest.fixture(scope="module")
def shipped() -> list[dict]:
    return [{"material_id": r["material_id"], "cif": r["cif"]} for r in iter_records(DEFAULT_DATASET)]


@pytest.fixture(scope="module")
def pymatgen_digests() -> dict[str, str]:
    payload = json.load(gzip.open(DIGESTS, "rt"))
    assert payload["lattice_bits"] == PORTABLE_LATTICE_BITS
    return payload["digests"]


@pytest.mark.slow
def test_every_shipped_cif_reads_to_the_structure_pymatgen_builds(shipped, pymatgen_digests):
    """All 16,394 shipped CIFs take the fast path, and each gives pymatgen's structure (lattice matrix to 2⁻²⁰ Å,
    site order, species, fractional coordinates — 0.3333 snapped to 1/3 as pymatgen does — and labels exactly).
    A long job (20 s): the README's test command checks a seeded sample of 300 against pymatgen itself (below)."""
    assert len(shipped) == len(pymatgen_digests) == 16394
    differ, slow = [], []
    margins = []
    for r in shipped:
        s = read_plain_p1(r["cif"])
        if s is None:
            slow.append(r["material_id"])
            continue
        if structure_digest(s, PORTABLE_LATTICE_BITS) != pymatgen_digests[r["material_id"]]:
            differ.append(r["material_id"])
        scaled = s.lattice.matrix * 2.0 ** PORTABLE_LATTICE_BITS
        margins.append(float(np.min(np.abs(scaled - np.floor(scaled) - 0.5))))
    assert not slow, f"{len(slow)} plain P1 CIFs left the fast path, e.g. {slow[:5]}"
    assert not differ, f"{len(differ)} structures differ from pymatgen's, e.g. {differ[:5]}"
    # the rounding holds on any CPU: no lattice entry lies near a rounding boundary, where a last-bit difference
    # (~2e-15 Å on a 10 Å cell, 2e-9 of a step) could flip it; 1e-7 of a step is ~1e-13 Å
    assert min(margins) > 1e-7, min(margins)


def test_the_fast_reader_is_pymatgen_bit_for_bit_and_the_file_is_what_pymatgen_builds(shipped, pymatgen_digests):
    """On a seeded sample of 300, parsed by the installed pymatgen now: the fast reader's structure is pymatgen's to
    the last bit on this machine, and the stored reference is not taken on trust."""
    for r in random.Random(0).sample(shipped, 300):
        mine, theirs = read_plain_p1(r["cif"]), parse_cif(r["cif"], reader="pymatgen")
        assert structure_digest(mine) == structure_digest(theirs), r["material_id"]
        assert structure_digest(theirs, PORTABLE_LATTICE_BITS) == pymatgen_digests[r["material_id"]], r["material_id"]


def _structure(shipped, material_id="mp-1019535"):
    from pymatgen.core import Structure

    cif = next(r["cif"] for r in shipped if r["material_id"] == material_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cif, Structure.from_str(cif, fmt="cif")


def _variants(shipped) -> dict[str, str]:
    """Real CIFs in forms the fast path must leave to pymatgen."""
    from pymatgen.io.cif import CifWriter

    cif, s = _structure(shipped)
    oxi = s.copy()
    oxi.add_oxidation_state_by_guess()
    disordered = s.copy()
    disordered.replace(0, {s[0].specie.symbol: 0.5, "Li": 0.5})
    lines = cif.splitlines()
    x_row = next(i for i, line in enumerate(lines) if line.strip().endswith(" 1") and "0." in line)
    fields = lines[x_row].split()
    fields[3] = fields[3] + "(3)"
    with_uncertainty = "\n".join([*lines[:x_row], "  " + "  ".join(fields), *lines[x_row + 1:]])
    return {
        "symmetrised (several operations)": str(CifWriter(s, symprec=0.1)),
        "oxidation states": str(CifWriter(oxi)),
        "partial occupancy": str(CifWriter(disordered)),
        "a number with an uncertainty": with_uncertainty,
        "an unknown tag": cif.replace("_cell_volume", "_exptl_crystal_density_diffrn 3.1\n_cell_volume"),
        "two data blocks": cif + "\n" + cif.replace("data_", "data_second_"),
        "a type symbol that is not an element": cif.replace("  O  O", "  O2-  O", 1),
    }


def test_other_cifs_go_to_pymatgen_and_read_as_it_reads_them(shipped):
    for what, text in _variants(shipped).items():
        assert read_plain_p1(text) is None, what
        try:
            expected = structure_digest(parse_cif(text, reader="pymatgen"))
        except DataError as exc:
            expected = f"error: {exc}"
        try:
            got = structure_digest(parse_cif(text))
        except DataError as exc:
            got = f"error: {exc}"
        assert got == expected, what


def test_a_bad_plain_cif_gets_pymatgens_message(shipped):
    """Overlapping atoms and a crushed cell in the plain layout: the fast reader builds them, the checks refuse
    them, and the message is the one pymatgen's path gives (it reads the text again to say why)."""
    cif, s = _structure(shipped)
    rows = [line for line in cif.splitlines() if line.strip().endswith(" 1") and "0." in line]
    overlapping = cif.replace(rows[1], rows[1] + "\n" + rows[1].replace(rows[1].split()[1], "X99"))
    crushed = cif.replace(f"_cell_length_a   {s.lattice.a:.8f}", "_cell_length_a   0.10000000")
    for text in (overlapping, crushed):
        assert read_plain_p1(text) is not None  # the plain layout: the fast reader reads it
        with pytest.raises(DataError) as fast:
            parse_cif(text)
        with pytest.raises(DataError) as slow:
            parse_cif(text, reader="pymatgen")
        assert str(fast.value) == str(slow.value)


def test_every_bad_cif_of_the_corpus_gets_the_same_message_from_both_readers(tmp_path):
    """The corpus's corrupted CIFs (tests/bad_inputs), most in the plain layout the fast reader takes."""
    from tests.bad_inputs.make_corpus import CASES, Ctx, Real

    ctx = Ctx(tmp_path, Real())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = [case.build(ctx)[0] for case in CASES if case.name != "gzip_bomb"]  # a gigabyte, not a CIF
    cifs = sorted(p for p in paths if p.suffix == ".cif" and p.is_file() and not p.is_symlink())
    assert len(cifs) >= 20
    fast = 0
    for path in cifs:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        fast += read_plain_p1(text) is not None
        outcomes = []
        for reader in ("auto", "pymatgen"):
            try:
                outcomes.append(structure_digest(parse_cif(text, reader=reader)))
            except DataError as exc:
                outcomes.append(f"error: {exc}")
        assert outcomes[0] == outcomes[1], path.name
    assert fast >= 10  # the fast path met them, and handed each to pymatgen's message


def test_an_unknown_reader_is_refused():
    with pytest.raises(ValueError, match="unknown CIF reader 'gemmi'"):
        parse_cif("data_x", reader="gemmi")
