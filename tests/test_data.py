"""Loading and validating real MP records, and every bad-input case named in the issue."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from cfgp.data import DataError, load_materials, parse_cif, validate_records
from tests.conftest import SMALL


def _write_json(path, records):
    path.write_text(json.dumps(records))
    return path


def test_load_fixture_filters_suspect_energies_with_named_reasons():
    m = load_materials(SMALL)
    assert m.report.n_read == 302
    assert len(m) == 300
    filtered = {i.record for i in m.report.filtered}
    assert filtered == {"mp-778012", "mp-694932"}  # -13.6 and +3.8 eV/atom, listed as suspect in data/README
    assert all("outside" in i.reason for i in m.report.filtered)
    assert m.frame["contains_p"].sum() == 30
    phosphates = m.frame[m.frame.contains_p]
    assert all("P" in e and "O" in e for e in phosphates.elements)
    assert m.structure(0).composition.reduced_formula == m.frame.formula.iat[0]
    assert np.isfinite(m.y).all()


def test_energy_window_can_be_switched_off():
    m = load_materials(SMALL, energy_window=None, parse_structures=False)
    assert len(m) == 302 and not m.report.filtered


def test_trusted_load_matches_parsed_load():
    fast = load_materials(SMALL, parse_structures=False)
    full = load_materials(SMALL)
    assert fast.ids.tolist() == full.ids.tolist()
    assert fast.structure(5) == full.structure(5)


@pytest.fixture
def good(small_records):
    return [dict(r) for r in small_records[:6]]


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda r: r.update(cif="data_broken\n_cell_length_a 3\nloop_\n junk"), "unparsable CIF"),
        (lambda r: r.update(cif=""), "missing CIF"),
        (lambda r: r.pop("formation_energy_per_atom"), "missing formation energy"),
        (lambda r: r.update(formation_energy_per_atom="abc"), "non-numeric formation energy"),
        (lambda r: r.update(formation_energy_per_atom=float("inf")), "formation energy inf is not a finite number"),
        (lambda r: r.update(formation_energy_per_atom=10 ** 400), "formation energy is too large for a number"),
        (lambda r: r.update(formation_energy_per_atom=None), "missing formation energy"),
        (lambda r: r.pop("material_id"), "missing material id"),
    ],
)
def test_bad_record_is_skipped_with_its_name_and_reason(good, mutate, reason):
    mutate(good[2])
    m = validate_records(good, "test.json")
    assert len(m) == 5
    assert len(m.report.skipped) == 1
    issue = m.report.skipped[0]
    assert reason in issue.reason
    assert issue.record in (good[2].get("material_id", ""), "record #3")
    assert reason in m.report.summary()


@pytest.mark.parametrize("bad", ["unparsable", "duplicate"])
def test_on_error_raise_stops_and_names_the_record(good, bad):
    if bad == "unparsable":
        good[3]["cif"] = "not a cif"
        expect = good[3]["material_id"]
    else:
        good[4]["material_id"] = good[1]["material_id"]
        expect = good[1]["material_id"]
    with pytest.raises(DataError, match=expect):
        validate_records(good, "test.json", on_error="raise")


def test_duplicate_id_keeps_first(good):
    good[4]["material_id"] = good[1]["material_id"]
    m = validate_records(good, "test.json")
    assert len(m) == 5
    assert "duplicate" in m.report.skipped[0].reason
    assert m.frame.formation_energy_per_atom.iat[1] == good[1]["formation_energy_per_atom"]


def test_disordered_structure_is_rejected(good):
    from pymatgen.io.cif import CifWriter

    s = parse_cif(good[0]["cif"])
    s.replace(0, {s[0].specie.symbol: 0.5, "Fe": 0.5})
    good[0]["cif"] = str(CifWriter(s))
    m = validate_records(good, "test.json")
    assert m.report.skipped[0].record == good[0]["material_id"]
    assert "disordered" in m.report.skipped[0].reason


def test_empty_and_too_small_datasets(tmp_path, good):
    with pytest.raises(DataError, match="no usable records"):
        load_materials(_write_json(tmp_path / "empty.json", []))
    with pytest.raises(DataError, match="only 6 usable records, at least 50"):
        load_materials(_write_json(tmp_path / "six.json", good), min_records=50)
    all_bad = [dict(r, cif="junk") for r in good]
    with pytest.raises(DataError, match="no usable records.*unparsable"):
        load_materials(_write_json(tmp_path / "bad.json", all_bad))


def test_files_that_are_not_what_they_claim(tmp_path, good):
    (tmp_path / "fake.json.gz").write_text("plain text")
    with pytest.raises(DataError, match="not gzip"):
        load_materials(tmp_path / "fake.json.gz")
    (tmp_path / "zipped.json").write_bytes(gzip.compress(b"[]"))
    with pytest.raises(DataError, match="gzip-compressed data"):
        load_materials(tmp_path / "zipped.json")
    (tmp_path / "notjson.json").write_text("{material_id: mp-1")
    with pytest.raises(DataError, match="not valid JSON"):
        load_materials(tmp_path / "notjson.json")
    (tmp_path / "scalar.json").write_text("42")
    with pytest.raises(DataError, match="JSON array"):
        load_materials(tmp_path / "scalar.json")
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)))
    with pytest.raises(DataError, match="not a UTF-8"):
        load_materials(tmp_path / "binary.csv")
    (tmp_path / "nocif.csv").write_text("material_id,e_form\nmp-1,-1.0\n")
    with pytest.raises(DataError, match="'cif' column"):
        load_materials(tmp_path / "nocif.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match="unknown data format"):
        load_materials(tmp_path / "data.xlsx")
    with pytest.raises(DataError, match="no such file"):
        load_materials(tmp_path / "missing.json")


def test_csv_with_cif_column(tmp_path, good):
    good[1]["formation_energy_per_atom"] = "n/a"
    frame = pd.DataFrame([{"material_id": r["material_id"], "cif": r["cif"],
                           "formation_energy_per_atom": r["formation_energy_per_atom"]} for r in good])
    frame.to_csv(tmp_path / "mine.csv", index=False)
    m = load_materials(tmp_path / "mine.csv")
    assert len(m) == 5
    assert m.report.skipped[0].record == good[1]["material_id"]


def test_cgcnn_folder(tmp_path, good):
    for r in good[:5]:
        (tmp_path / f"{r['material_id']}.cif").write_text(r["cif"])
    lines = [f"{r['material_id']},{r['formation_energy_per_atom']}" for r in good]  # last one has no CIF file
    (tmp_path / "id_prop.csv").write_text("\n".join(lines) + "\n")
    m = load_materials(tmp_path)
    assert m.ids.tolist() == [r["material_id"] for r in good[:5]]
    np.testing.assert_allclose(m.y, [r["formation_energy_per_atom"] for r in good[:5]])
    assert m.report.skipped[0].record == good[5]["material_id"]
    assert f"no file {good[5]['material_id']}.cif" in m.report.skipped[0].reason


def test_single_cif_needs_no_energy(tmp_path, good):
    path = tmp_path / "mine.cif"
    path.write_text(good[0]["cif"])
    m = load_materials(path, require_energy=False)
    assert m.ids.tolist() == ["mine"] and np.isnan(m.y[0])


def test_a_gzip_bomb_is_stopped_at_the_limit_without_decompressing_it(tmp_path):
    """Decompression stops at the limit: memory stays ~the limit, not the 50 MB the file expands to."""
    import tracemalloc

    from cfgp.data import _read_bounded

    bomb = tmp_path / "bomb.json.gz"
    with gzip.open(bomb, "wb") as fh:
        for _ in range(50):
            fh.write(b" " * (1 << 20))
    tracemalloc.start()
    with pytest.raises(DataError, match="decompresses to more than 2,000,000 bytes"):
        _read_bounded(bomb, 2_000_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8_000_000, peak


def test_a_folder_hash_follows_names_and_contents_not_order(tmp_path, good):
    from cfgp.artefacts import file_sha256
    from cfgp.data import dataset_sha256

    a, b = tmp_path / "a", tmp_path / "b"
    for folder, order in ((a, good[:3]), (b, good[:3][::-1])):  # same files, written in another order
        folder.mkdir()
        for r in order:
            (folder / f"{r['material_id']}.cif").write_text(r["cif"])
        (folder / "id_prop.csv").write_text("".join(f"{r['material_id']},{r['formation_energy_per_atom']}\n"
                                                    for r in good[:3]))
        (folder / "notes.txt").write_text(str(folder))  # not part of the data set
    assert dataset_sha256(a) == dataset_sha256(b)
    (b / f"{good[0]['material_id']}.cif").write_text(good[1]["cif"])
    assert dataset_sha256(a) != dataset_sha256(b)
    (a / f"{good[0]['material_id']}.cif").rename(a / "renamed.cif")
    assert dataset_sha256(a) != dataset_sha256(b)
    assert dataset_sha256(SMALL) == file_sha256(SMALL)  # a file: its own sha256, so existing runs still match


def test_optional_properties_are_kept_and_volume_per_atom_derived(small_records):
    m = load_materials(SMALL, parse_structures=False)
    by_id = {r["material_id"]: r for r in small_records}
    f = m.frame
    for i in (0, 7, 99):
        r = by_id[f.material_id.iat[i]]
        assert f.band_gap.iat[i] == pytest.approx(r["band_gap"]) and f.efermi.iat[i] == pytest.approx(r["efermi"])
        assert f.total_magnetization.iat[i] == pytest.approx(r["total_magnetization"])
        assert f.volume_per_atom.iat[i] == pytest.approx(r["volume"] / r["nsites"])
    parsed = load_materials(SMALL).frame  # parsed structures agree with the stored volumes
    np.testing.assert_allclose(parsed.volume_per_atom, f.volume_per_atom, rtol=1e-3)


def test_absent_or_bad_optional_properties_are_nan_not_errors(tmp_path, good):
    for r in good:
        for k in ("band_gap", "efermi", "total_magnetization", "volume"):
            r.pop(k, None)
    good[0]["band_gap"] = "big"
    good[1]["efermi"] = 10 ** 400
    m = load_materials(_write_json(tmp_path / "bare.json", good))
    assert len(m) == len(good)
    assert m.frame[["band_gap", "efermi", "total_magnetization"]].isna().all().all()
    # the volume comes from the parsed structure when the record lacks it
    assert (m.frame.volume_per_atom > 3).all()
    trusted = load_materials(tmp_path / "bare.json", parse_structures=False)
    assert trusted.frame.volume_per_atom.isna().all()
