"""Build the bad-input corpus: hostile or careless inputs made from real records, each with where it goes and
what its message must say.

Every input is cut from the real Materials Project oxides of ``tests/fixtures/oxides_small.json.gz`` (a real
CIF corrupted in one way, a real data set with one bad record among good ones) or made by a few lines of code
(a gzip bomb, a FIFO, a symbolic link to /dev/zero); nothing is a hand-copied binary. ``CASES`` is the table:

    name, target (predict | train | upload), expected phrase of the message, builder

``predict`` cases are files for ``cfgp predict``; ``train`` cases are data sets for ``cfgp train``'s loading
(:func:`cfgp.pipeline.init_run`); ``upload`` cases are the bytes of a file uploaded in the app's Predict tab.
A data set case holds good records too: they must still be kept or predicted.

    python tests/bad_inputs/make_corpus.py OUT_DIR     # writes the inputs and OUT_DIR/corpus.json, prints the table
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable


ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "tests" / "fixtures" / "oxides_small.json.gz"  # 302 real MP oxides (see tests/conftest.py)


# ------------------------------------------------------------------------------------------- real material
class Real:
    """The real records the corpus is cut from: the smallest cell inside the default energy window (4 sites)
    is the base that single-CIF cases corrupt; the next small ones are the good records mixed into data sets."""

    def __init__(self):
        from pymatgen.core import Structure

        records = json.load(gzip.open(REAL, "rt"))
        records = sorted(records, key=lambda r: (r["nsites"], r["material_id"]))
        # good records: small cells inside the default energy window, so that `cfgp train` keeps them
        self.good = [r for r in records if -5.0 <= r["formation_energy_per_atom"] <= 1.0][:8]
        self.base = self.good[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.structure = Structure.from_str(self.base["cif"], fmt="cif")
        lat = self.structure.lattice
        self.cell = [f"{v:.8f}" for v in (*lat.abc, *lat.angles)]
        self.sites = [[site.specie.symbol, f"{site.specie.symbol}{i}", *(f"{x:.8f}" for x in site.frac_coords), "1"]
                      for i, site in enumerate(self.structure)]


def cif_text(cell: list[str], sites: list[list[str]], symops: list[str] | None = ("x, y, z",),
             spacegroup: str = "P 1", comment: str = "") -> str:
    """A CIF in pymatgen's P1 layout from string values, so that any value can be corrupted verbatim."""
    lines = ["# generated using pymatgen" + comment, "data_corrupted", f"_symmetry_space_group_name_H-M   '{spacegroup}'"]
    for tag, value in zip(("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"), cell):
        lines.append(f"_cell_{tag}   {value}")
    if symops:
        lines += ["loop_", " _symmetry_equiv_pos_site_id", " _symmetry_equiv_pos_as_xyz"]
        lines += [f"  {i + 1}  '{op}'" for i, op in enumerate(symops)]
    lines += ["loop_", " _atom_site_type_symbol", " _atom_site_label", " _atom_site_symmetry_multiplicity",
              " _atom_site_fract_x", " _atom_site_fract_y", " _atom_site_fract_z", " _atom_site_occupancy"]
    lines += [f"  {sym}  {label}  1  {x}  {y}  {z}  {occ}" for sym, label, x, y, z, occ in sites]
    return "\n".join(lines) + "\n"


def corrupt(real: Real, *, cell: dict[int, str] | None = None, site: tuple[int, int, str] | None = None,
            scale: float | None = None) -> str:
    """The base CIF (4 sites, rows 0–3) with cell values replaced ({index: text}), one site value replaced ((row, column, text);
    columns 0 symbol, 1 label, 2–4 x y z, 5 occupancy) or the cell edges scaled to ``scale`` Å."""
    c = list(real.cell)
    if scale is not None:
        c[0] = c[1] = c[2] = f"{scale}"
    for k, v in (cell or {}).items():
        c[k] = v
    sites = [list(s) for s in real.sites]
    if site is not None:
        row, col, value = site
        sites[row][col] = value
        if col == 0:
            sites[row][1] = value + str(row)
    return cif_text(c, sites)


def supercell_cif(real: Real, n: int) -> str:
    """The base crystal repeated n×n×n (4n³ sites), as pymatgen writes it."""
    s = real.structure.copy()
    s.make_supercell([n, n, n])
    return s.to(fmt="cif")


def dense_cif(real: Real) -> str:
    """A 6×6×6 supercell (864 sites) squeezed to 2.1 Å³ per atom: every atom is still ≥ 0.5 Å from the next
    and the volume per atom is within range, but the crystal graph would hold ~200,000 neighbour pairs (real
    crystals: at most ~11,000). Verified here with pymatgen's own neighbour list."""
    s = real.structure.copy()
    s.make_supercell([6, 6, 6])
    s.scale_lattice(2.1 * len(s))
    _, _, _, d = s.get_neighbor_list(r=5.0)
    assert d[d > 1e-8].min() >= 0.5 and len(d) > 150_000, "the dense case is not what it claims"
    return s.to(fmt="cif")


def symmetry_bomb_cif(real: Real) -> str:
    """300 listed sites and a space-group symbol but no operations: pymatgen would expand each site by up to
    192 operations and merge the 57,600 positions pairwise."""
    sites = [[sym, f"{sym}{k}", f"{(k * 0.0031) % 1:.6f}", f"{(k * 0.0057) % 1:.6f}", f"{(k * 0.0093) % 1:.6f}", "1"]
             for k, (sym, *_rest) in enumerate(real.sites * 75)]
    return cif_text(["20", "20", "20", "90", "90", "90"], sites, symops=None, spacegroup="F m -3 m")


# ------------------------------------------------------------------------------------------------- inputs
@dataclass
class Built:
    """One built case: the input's path (predict, train) or file name and bytes path (upload)."""

    name: str
    target: str
    expect: str
    record: str  # the name the message must carry: a record's id, or "" when it names the file itself
    path: str
    good: list[str] = field(default_factory=list)  # ids of good records in the same data set


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # "predict" | "train" | "upload"
    expect: str  # phrase the message must contain (case-insensitive)
    build: Callable  # (Ctx) -> (path, record, good ids)


class Ctx:
    def __init__(self, out: Path, real: Real):
        self.out, self.real = out, real

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.out / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def whole(self, name: str, content: str | bytes):
        """A file that is unusable as a whole: the message must name the file."""
        return self.file(name, content), "", []

    def cif(self, name: str, text: str | bytes):
        """A single CIF file: its record is the file's stem."""
        path = self.file(name, text)
        return path, path.stem, []

    def dataset(self, name: str, bad: dict | list | int | str, fmt: str = "json", n_good: int = 2):
        """A data set with ``n_good`` real good records around one bad record."""
        good = [{k: r[k] for k in ("material_id", "formula", "formation_energy_per_atom", "cif")}
                for r in self.real.good[1:1 + n_good]]
        records = good[: n_good // 2] + [bad] + good[n_good // 2:]
        # a record without a usable id is named by its position
        record = bad.get("material_id", "") if isinstance(bad, dict) else f"record #{n_good // 2 + 1}"
        if len(str(record)) > 200:
            record = f"record #{n_good // 2 + 1}"
        if fmt == "json":
            text = json.dumps(records)
        else:
            import pandas as pd

            text = pd.DataFrame(records).to_csv(index=False)
        return self.file(name, text), str(record), [g["material_id"] for g in good]

    def bad_record(self, material_id: str, cif: str | None = None, **fields) -> dict:
        base = self.real.base
        out = {"material_id": material_id, "formula": base["formula"],
               "formation_energy_per_atom": base["formation_energy_per_atom"], "cif": base["cif"] if cif is None else cif}
        out.update(fields)
        return out

    def folder(self, name: str, rows: list[tuple[str, str]], extra: Callable[[Path], None] | None = None,
               n_good: int = 4, record: str = ""):
        """A CGCNN folder: real good records (a .cif each) plus id_prop.csv rows ``rows`` (id, energy); without
        ``record`` the folder is unusable as a whole (its good records cannot be read either)."""
        folder = self.out / name
        folder.mkdir()
        good = self.real.good[1:1 + n_good]
        for r in good:
            (folder / f"{r['material_id']}.cif").write_text(r["cif"])
        lines = [f"{r['material_id']},{r['formation_energy_per_atom']}" for r in good] + [f"{i},{e}" for i, e in rows]
        if extra is not None:
            extra(folder)
        if not (folder / "id_prop.csv").exists() and not (folder / "id_prop.csv").is_symlink():
            (folder / "id_prop.csv").write_text("\n".join(lines) + "\n")
        return folder, record, [r["material_id"] for r in good] if record else []

    def huge_int_dataset(self, name: str):
        """A JSON data set whose bad record's energy is an integer of 5,000 digits (Python refuses to convert
        more than 4,300 and would abort the whole file), written as raw JSON text."""
        path, record, good = self.dataset(name, self.bad_record("bad-e5000", formation_energy_per_atom=12345))
        text = path.read_text().replace('"formation_energy_per_atom": 12345', '"formation_energy_per_atom": ' + "9" * 5000)
        path.write_text(text)
        return path, record, good

    def upload(self, name: str, content: str | bytes):
        """An upload: the bytes are stored under ``name``; the message must name the file."""
        path = self.file(name, content)
        return path, name, []

    def special(self, name: str, make: Callable[[Path], None]):
        path = self.out / name
        make(path)
        return path, "", []


def gzip_bomb(path: Path, megabytes: int = 1100) -> None:
    """1.1 MB of gzip that expands to 1.1 GB of white space inside a JSON array (as in issue 12)."""
    block = b" " * (1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(b"[")
        for _ in range(megabytes):
            fh.write(block)
        fh.write(b"]")


def truncated_gzip(real: Real) -> bytes:
    data = gzip.compress(json.dumps([real.base]).encode())
    return data[: len(data) // 2]


def fifo(path: Path) -> None:
    os.mkfifo(path)


def link_to_dev_zero(path: Path) -> None:
    os.symlink("/dev/zero", path)


def overlapping(real: Real, gap: float = 0.0) -> str:
    """Site 3 (O) moved onto site 2 (Au), or ``gap`` Å from it along c."""
    sites = [list(s) for s in real.sites]
    au = [float(v) for v in sites[1][2:5]]
    c = real.structure.lattice.c
    sites[2][2:5] = [f"{au[0]:.8f}", f"{au[1]:.8f}", f"{au[2] + gap / c:.8f}"]
    return cif_text(list(real.cell), sites)


CASES: list[Case] = [
    # ------------------------------------------------------------------ cfgp predict: single CIF files
    Case("cell_0.1A", "predict", "volume per atom", lambda x: x.cif("cell_0.1A.cif", corrupt(x.real, scale=0.1))),
    Case("cell_0.3A", "predict", "volume per atom", lambda x: x.cif("cell_0.3A.cif", corrupt(x.real, scale=0.3))),
    Case("overlapping_atoms", "predict", "overlap", lambda x: x.cif("overlapping_atoms.cif", overlapping(x.real))),
    Case("atoms_0.2A_apart", "predict", "too close: 0.20 Å", lambda x: x.cif("atoms_0.2A_apart.cif",
                                                                              overlapping(x.real, 0.2))),
    Case("frac_1e300", "predict", "fractional coordinate x = 1e300 is absurd",
         lambda x: x.cif("frac_1e300.cif", corrupt(x.real, site=(2, 2, "1e300")))),
    Case("frac_nan", "predict", "not a finite number", lambda x: x.cif("frac_nan.cif", corrupt(x.real, site=(2, 3, "nan")))),
    Case("frac_inf", "predict", "not a finite number", lambda x: x.cif("frac_inf.cif", corrupt(x.real, site=(2, 4, "-inf")))),
    Case("lattice_1e5", "predict", "cell length a = 100000 Å is longer than the 300 Å limit",
         lambda x: x.cif("lattice_1e5.cif", corrupt(x.real, cell={0: "100000"}))),
    Case("lattice_1e300", "predict", "longer than the 300 Å limit",
         lambda x: x.cif("lattice_1e300.cif", corrupt(x.real, cell={1: "1e300"}))),
    Case("lattice_nan", "predict", "cell length c = nan is not a finite number",
         lambda x: x.cif("lattice_nan.cif", corrupt(x.real, cell={2: "nan"}))),
    Case("lattice_zero", "predict", "is not positive", lambda x: x.cif("lattice_zero.cif", corrupt(x.real, cell={0: "0"}))),
    Case("lattice_negative", "predict", "is not positive",
         lambda x: x.cif("lattice_negative.cif", corrupt(x.real, cell={1: "-4.2"}))),
    Case("angle_0", "predict", "outside (0°, 180°)", lambda x: x.cif("angle_0.cif", corrupt(x.real, cell={5: "0"}))),
    Case("angle_180", "predict", "outside (0°, 180°)", lambda x: x.cif("angle_180.cif", corrupt(x.real, cell={3: "180"}))),
    Case("angles_no_cell", "predict", "do not form a cell",
         lambda x: x.cif("angles_no_cell.cif", corrupt(x.real, cell={3: "10", 5: "170"}))),
    Case("unknown_element", "predict", "unknown element symbol 'Xx'",
         lambda x: x.cif("unknown_element.cif", corrupt(x.real, site=(1, 0, "Xx")))),
    Case("element_beyond_megnet", "predict", "Z ≤ 94", lambda x: x.cif("element_beyond_megnet.cif",
                                                                         corrupt(x.real, site=(1, 0, "Am")))),
    Case("5324_sites", "predict", "atom sites listed; the limit is 1,000",
         lambda x: x.cif("5324_sites.cif", supercell_cif(x.real, 11))),
    Case("symmetry_bomb", "predict", "symmetry operations", lambda x: x.cif("symmetry_bomb.cif", symmetry_bomb_cif(x.real))),
    Case("volume_per_atom_huge", "predict", "is above 500 Å³", lambda x: x.cif("volume_per_atom_huge.cif",
                                                                              corrupt(x.real, scale=60))),
    Case("dense_graph", "predict", "neighbour pairs within the 4 Å cut-off", lambda x: x.cif("dense_graph.cif",
                                                                                           dense_cif(x.real))),
    Case("disordered", "predict", "disordered", lambda x: x.cif("disordered.cif", corrupt(x.real, site=(3, 5, "0.5")))),
    Case("occupancy_2", "predict", "occupancies of one site sum to more than 1",
         lambda x: x.cif("occupancy_2.cif", corrupt(x.real, site=(3, 5, "2")))),
    Case("junk_cif", "predict", "unparsable CIF", lambda x: x.cif("junk_cif.cif", "data_x\n_cell_length_a 3\nloop_\n junk\n")),
    Case("empty_cif", "predict", "empty file (0 bytes)", lambda x: x.cif("empty_cif.cif", "")),
    Case("binary_cif", "predict", "not a UTF-8 text file", lambda x: x.whole("binary_cif.cif", bytes(range(256)) * 8)),
    Case("gzip_named_cif", "predict", "gzip-compressed data in a file not named .gz",
         lambda x: x.whole("gzip_named_cif.cif", gzip.compress(x.real.base["cif"].encode()))),
    Case("cif_3MB", "predict", "the limit is 2,000,000 bytes",
         lambda x: x.whole("cif_3MB.cif", x.real.base["cif"] + ("# padding " + "x" * 90 + "\n") * 30_000)),
    Case("symlink_dev_zero", "predict", "not a regular file (a character device",
         lambda x: x.special("symlink_dev_zero.cif", link_to_dev_zero)),
    Case("fifo_cif", "predict", "not a regular file (a named pipe", lambda x: x.special("fifo_cif.cif", fifo)),
    Case("no_such_file", "predict", "no such file", lambda x: (x.out / "no_such_file.cif", "", [])),
    Case("unknown_format", "predict", "unknown data format", lambda x: x.whole("unknown_format.xyz", "3\nH 0 0 0\n")),
    # ------------------------------------------------------------------ cfgp predict: data set files
    Case("gzip_bomb", "predict", "decompresses to more than", lambda x: x.special("gzip_bomb.json.gz", gzip_bomb)),
    Case("truncated_gzip", "predict", "corrupt gzip file", lambda x: x.whole("truncated_gzip.json.gz", truncated_gzip(x.real))),
    Case("fake_gzip", "predict", "named .gz but it is not gzip-compressed",
         lambda x: x.whole("fake_gzip.json.gz", "[not gzip]")),
    Case("json_nested_200000", "predict", "nested too deeply",
         lambda x: x.whole("json_nested_200000.json", "[" * 200_000 + "]" * 200_000)),
    Case("json_invalid", "predict", "not valid JSON", lambda x: x.whole("json_invalid.json", '[{"material_id": "x", ')),
    Case("json_object", "predict", "expected a JSON array", lambda x: x.whole("json_object.json", '{"a": 1}')),
    Case("energy_401_digits", "predict", "too large for a number",
         lambda x: x.dataset("energy_401_digits.json", x.bad_record("bad-e401", formation_energy_per_atom=int("7" * 401)))),
    Case("energy_5000_digits", "predict", "an integer of 5,000 digits", lambda x: x.huge_int_dataset("energy_5000_digits.json")),
    Case("energy_1e400", "predict", "not a finite number",
         lambda x: x.dataset("energy_1e400.json", x.bad_record("bad-e1e400", formation_energy_per_atom="1e400"))),
    Case("energy_text", "predict", "non-numeric formation energy",
         lambda x: x.dataset("energy_text.json", x.bad_record("bad-etext", formation_energy_per_atom="low"))),
    Case("record_not_object", "predict", "expected an object", lambda x: x.dataset("record_not_object.json", 42)),
    Case("cif_not_text", "predict", "CIF field must be text",
         lambda x: x.dataset("cif_not_text.json", x.bad_record("bad-cifdict", cif={"a": 1}))),
    Case("cif_field_3MB", "predict", "the limit is 2,000,000",
         lambda x: x.dataset("cif_field_3MB.json", x.bad_record("bad-cif3mb", cif=x.real.base["cif"] + "#" * 3_000_000))),
    Case("id_100k_chars", "predict", "material id of 100,000 characters",
         lambda x: x.dataset("id_100k_chars.json", x.bad_record("i" * 100_000))),
    Case("dataset_tiny_cell", "predict", "volume per atom",
         lambda x: x.dataset("dataset_tiny_cell.json", x.bad_record("bad-tinycell", cif=corrupt(x.real, scale=0.1)))),
    Case("dataset_unknown_element", "predict", "unknown element symbol 'Qq'",
         lambda x: x.dataset("dataset_unknown_element.json", x.bad_record("bad-qq", cif=corrupt(x.real, site=(0, 0, "Qq"))))),
    Case("csv_no_cif_column", "predict", "needs a 'cif' column", lambda x: x.whole("csv_no_cif_column.csv", "id,energy\na,1\n")),
    Case("csv_energy_401_digits", "predict", "not a finite number",
         lambda x: x.dataset("csv_energy_401_digits.csv", x.bad_record("bad-csv401", formation_energy_per_atom="9" * 401),
                             fmt="csv")),
    Case("csv_frac_1e300", "predict", "is absurd",
         lambda x: x.dataset("csv_frac_1e300.csv", x.bad_record("bad-csv1e300", cif=corrupt(x.real, site=(3, 2, "1e300"))),
                             fmt="csv")),
    # ------------------------------------------------------------------ cfgp predict: CIF folders
    Case("folder_dotdot", "predict", "outside the folder",
         lambda x: x.folder("folder_dotdot", [("../../etc/passwd", "1.0")], record="../../etc/passwd")),
    Case("folder_absolute", "predict", "outside the folder",
         lambda x: x.folder("folder_absolute", [("/etc/passwd", "1.0")], record="/etc/passwd")),
    Case("folder_missing_file", "predict", "no file missing-1.cif",
         lambda x: x.folder("folder_missing_file", [("missing-1", "-1.0")], record="missing-1")),
    Case("folder_entry_is_folder", "predict", "not a regular file (a folder)",
         lambda x: x.folder("folder_entry_is_folder", [("sub", "-1.0")], extra=lambda f: (f / "sub.cif").mkdir(),
                            record="sub")),
    Case("folder_entry_dev_zero", "predict", "not a regular file (a character device",
         lambda x: x.folder("folder_entry_dev_zero", [("zero", "-1.0")], extra=lambda f: link_to_dev_zero(f / "zero.cif"),
                            record="zero")),
    Case("folder_entry_fifo", "predict", "not a regular file (a named pipe",
         lambda x: x.folder("folder_entry_fifo", [("pipe", "-1.0")], extra=lambda f: fifo(f / "pipe.cif"), record="pipe")),
    Case("folder_id_prop_fifo", "predict", "id_prop.csv: not a regular file",
         lambda x: x.folder("folder_id_prop_fifo", [], extra=lambda f: fifo(f / "id_prop.csv"))),
    # ------------------------------------------------------------------ cfgp train: loading a data set
    Case("train_tiny_cell", "train", "volume per atom",
         lambda x: x.dataset("train_tiny_cell.json", x.bad_record("bad-tiny", cif=corrupt(x.real, scale=0.1)), n_good=6)),
    Case("train_overlapping_atoms", "train", "overlap",
         lambda x: x.dataset("train_overlap.json", x.bad_record("bad-overlap", cif=overlapping(x.real)), n_good=6)),
    Case("train_frac_1e300", "train", "is absurd",
         lambda x: x.dataset("train_frac.json", x.bad_record("bad-frac", cif=corrupt(x.real, site=(2, 2, "1e300"))),
                             n_good=6)),
    Case("train_lattice_1e5", "train", "longer than the 300 Å limit",
         lambda x: x.dataset("train_lattice.json", x.bad_record("bad-lattice", cif=corrupt(x.real, cell={0: "1e5"})),
                             n_good=6)),
    Case("train_unknown_element", "train", "unknown element symbol 'Xx'",
         lambda x: x.dataset("train_element.csv", x.bad_record("bad-xx", cif=corrupt(x.real, site=(1, 0, "Xx"))),
                             fmt="csv", n_good=6)),
    Case("train_energy_401_digits", "train", "too large for a number",
         lambda x: x.dataset("train_e401.json", x.bad_record("bad-e401", formation_energy_per_atom=int("7" * 401)),
                             n_good=6)),
    Case("train_energy_missing", "train", "missing formation energy",
         lambda x: x.dataset("train_emissing.json", x.bad_record("bad-enone", formation_energy_per_atom=None), n_good=6)),
    Case("train_duplicate_id", "train", "duplicate material id",
         lambda x: x.dataset("train_duplicate.json", x.bad_record(x.real.good[1]["material_id"]), n_good=6)),
    Case("train_nested_json", "train", "nested too deeply",
         lambda x: x.whole("train_nested.json", "[" * 200_000 + "]" * 200_000)),
    Case("train_gzip_bomb", "train", "decompresses to more than",
         lambda x: x.special("train_bomb.json.gz", gzip_bomb)),
    Case("train_folder_dotdot", "train", "outside the folder",
         lambda x: x.folder("train_folder_dotdot", [("../secret", "-1.0")], n_good=6, record="../secret")),
    Case("train_folder_absolute", "train", "outside the folder",
         lambda x: x.folder("train_folder_absolute", [("/etc/hostname", "-1.0")], n_good=6, record="/etc/hostname")),
    Case("train_folder_missing_file", "train", "no file gone.cif",
         lambda x: x.folder("train_folder_missing", [("gone", "-1.0")], n_good=6, record="gone")),
    Case("train_folder_dev_zero", "train", "not a regular file",
         lambda x: x.folder("train_folder_zero", [("zero", "-1.0")], n_good=6,
                            extra=lambda f: link_to_dev_zero(f / "zero.cif"), record="zero")),
    Case("train_folder_fifo", "train", "not a regular file (a named pipe",
         lambda x: x.folder("train_folder_fifo", [("pipe", "-1.0")], n_good=6, extra=lambda f: fifo(f / "pipe.cif"),
                            record="pipe")),
    Case("train_fifo_dataset", "train", "not a regular file (a named pipe",
         lambda x: x.special("train_fifo.json", fifo)),
    # ------------------------------------------------------------------ the app's upload handler
    Case("upload_cell_0.1A", "upload", "volume per atom", lambda x: x.upload("up_cell_0.1A.cif", corrupt(x.real, scale=0.1))),
    Case("upload_cell_0.3A", "upload", "volume per atom", lambda x: x.upload("up_cell_0.3A.cif", corrupt(x.real, scale=0.3))),
    Case("upload_overlapping_atoms", "upload", "overlap", lambda x: x.upload("up_overlap.cif", overlapping(x.real))),
    Case("upload_frac_1e300", "upload", "is absurd", lambda x: x.upload("up_frac.cif", corrupt(x.real, site=(2, 2, "1e300")))),
    Case("upload_lattice_1e5", "upload", "longer than the 300 Å limit",
         lambda x: x.upload("up_lattice.cif", corrupt(x.real, cell={0: "100000"}))),
    Case("upload_unknown_element", "upload", "unknown element symbol 'Xx'",
         lambda x: x.upload("up_element.cif", corrupt(x.real, site=(1, 0, "Xx")))),
    Case("upload_5324_sites", "upload", "the limit is 1,000", lambda x: x.upload("up_sites.cif", supercell_cif(x.real, 11))),
    Case("upload_dense_graph", "upload", "neighbour pairs", lambda x: x.upload("up_dense.cif", dense_cif(x.real))),
    Case("upload_symmetry_bomb", "upload", "symmetry operations", lambda x: x.upload("up_symmetry.cif",
                                                                                    symmetry_bomb_cif(x.real))),
    Case("upload_3MB", "upload", "the limit is 2 MB",
         lambda x: x.upload("up_big.cif", x.real.base["cif"] + "#" * 3_000_000)),
    Case("upload_binary", "upload", "not a text CIF file", lambda x: x.upload("up_binary.cif", bytes(range(256)) * 8)),
    Case("upload_empty", "upload", "is empty (0 bytes)", lambda x: x.upload("up_empty.cif", b"")),
    Case("upload_whitespace", "upload", "is empty (only white space)", lambda x: x.upload("up_blank.cif", " \n\t\n")),
    Case("upload_disordered", "upload", "disordered", lambda x: x.upload("up_disordered.cif",
                                                                        corrupt(x.real, site=(3, 5, "0.5")))),
]


def build(out: str | Path) -> list[Built]:
    """Write every case's input under ``out`` and the table to ``out/corpus.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(out, Real())
    built = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's notes on supercell site labels
        for case in CASES:
            path, record, good = case.build(ctx)
            built.append(Built(case.name, case.target, case.expect, record, str(path), good))
    good_cif = ctx.file("good_" + ctx.real.base["material_id"] + ".cif", ctx.real.base["cif"])
    other = ctx.real.good[1]
    good_other = ctx.file("good_" + other["material_id"] + ".cif", other["cif"])
    table = {"cases": [asdict(b) for b in built], "good": [str(good_cif), str(good_other)],
             "good_formulas": {str(good_cif): ctx.real.base["formula"], str(good_other): other["formula"]}}
    (out / "corpus.json").write_text(json.dumps(table, indent=1))
    return built


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    built = build(argv[0])
    for b in built:
        print(f"{b.target:8s} {b.name:28s} {b.expect}")
    counts = {t: sum(b.target == t for b in built) for t in ("predict", "train", "upload")}
    print(f"{len(built)} cases: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
