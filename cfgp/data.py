"""Load and validate materials: structure + DFT formation energy per atom.

Every record is checked; a bad one is either skipped (and listed in the load report)
or stops the load, as the caller chooses. Messages always name the record and the reason.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DEFAULT_DATASET = DATA_DIR / "mp_oxides.json.gz"

#: Formation energies outside this window (eV/atom) are treated as suspect and filtered by
#: default. It drops the six almost-certainly-bad legacy MP values listed in data/README.md
#: (e.g. mp-778012 Li3Fe2SbO6 at -13.6 eV/atom) and keeps every other oxide.
DEFAULT_ENERGY_WINDOW: tuple[float, float] = (-5.0, 1.0)

ID_COLUMNS = ("material_id", "id", "mp_id", "name")
ENERGY_COLUMNS = ("formation_energy_per_atom", "e_form", "formation_energy", "target", "energy")
CIF_COLUMNS = ("cif", "structure_cif")

OnError = Literal["skip", "raise"]


class DataError(ValueError):
    """A dataset or a record that cfgp cannot use; the message says which and why."""


@dataclass(frozen=True)
class RecordIssue:
    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.record}: {self.reason}"


@dataclass
class LoadReport:
    source: str
    n_read: int = 0
    n_kept: int = 0
    skipped: list[RecordIssue] = field(default_factory=list)
    filtered: list[RecordIssue] = field(default_factory=list)

    def summary(self, max_lines: int = 10) -> str:
        lines = [
            f"{self.source}: read {self.n_read}, kept {self.n_kept}, "
            f"skipped {len(self.skipped)} bad, filtered {len(self.filtered)} outside energy window"
        ]
        for issue in (self.skipped + self.filtered)[:max_lines]:
            lines.append(f"  - {issue}")
        more = len(self.skipped) + len(self.filtered) - max_lines
        if more > 0:
            lines.append(f"  ... and {more} more")
        return "\n".join(lines)


def parse_cif(text: str):
    """Parse CIF text to a pymatgen Structure, or raise DataError with the parser's reason."""
    from pymatgen.core import Structure

    if not isinstance(text, str) or not text.strip():
        raise DataError("empty CIF")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(text, fmt="cif")
    except Exception as exc:  # pymatgen raises many types for bad CIFs
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"unparsable CIF ({msg[:200]})") from None
    if len(structure) == 0:
        raise DataError("CIF has no atomic sites")
    if not structure.is_ordered:
        raise DataError("disordered structure (partial occupancies); the crystal graph needs an ordered cell")
    return structure


def _energy(value: Any) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        raise DataError("missing formation energy")
    if isinstance(value, bool):
        raise DataError(f"non-numeric formation energy {value!r}")
    try:
        energy = float(value)
    except (TypeError, ValueError):
        raise DataError(f"non-numeric formation energy {value!r}") from None
    if not math.isfinite(energy):
        raise DataError(f"non-finite formation energy {value!r}")
    return energy


class Materials:
    """A validated table of materials with lazily parsed pymatgen structures.

    ``frame`` has one row per material: material_id, formula, formation_energy_per_atom
    (NaN when unlabelled), cif, elements, nsites, spacegroup_symbol, is_phosphate.
    """

    def __init__(self, frame: pd.DataFrame, report: LoadReport, structures: Sequence | None = None):
        self.frame = frame.reset_index(drop=True)
        self.report = report
        self._structures: list = list(structures) if structures is not None else [None] * len(frame)

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"Materials({len(self)} from {self.report.source})"

    @property
    def ids(self) -> np.ndarray:
        return self.frame["material_id"].to_numpy()

    @property
    def y(self) -> np.ndarray:
        return self.frame["formation_energy_per_atom"].to_numpy(dtype=float)

    def structure(self, i: int):
        if self._structures[i] is None:
            self._structures[i] = parse_cif(self.frame["cif"].iat[i])
        return self._structures[i]

    def structures(self, indices: Iterable[int] | None = None, progress: bool = False) -> list:
        idx = range(len(self)) if indices is None else indices
        if progress:
            from tqdm.auto import tqdm

            idx = tqdm(list(idx), desc="parse CIFs", unit="cif")
        return [self.structure(int(i)) for i in idx]

    def index_of(self, ids: Iterable[str]) -> np.ndarray:
        lookup = pd.Series(np.arange(len(self)), index=self.frame["material_id"])
        missing = [i for i in ids if i not in lookup.index]
        if missing:
            raise KeyError(f"unknown material ids: {missing[:5]}")
        return lookup.loc[list(ids)].to_numpy()


def _pick(record: dict, names: Sequence[str]) -> Any:
    for name in names:
        if name in record:
            return record[name]
    return None


def validate_records(
    records: Iterable[dict],
    source: str,
    *,
    require_energy: bool = True,
    energy_window: tuple[float, float] | None = DEFAULT_ENERGY_WINDOW,
    parse_structures: bool = True,
    on_error: OnError = "skip",
    min_records: int = 1,
) -> Materials:
    """Check each record and build a Materials table.

    ``parse_structures=False`` trusts the CIFs (used for the shipped, pre-validated default,
    whose 16k CIFs take ~75 s to parse); structures are then parsed on first use.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError("on_error must be 'skip' or 'raise'")
    report = LoadReport(source=source)
    rows: list[dict] = []
    structures: list = []
    seen: set[str] = set()
    for i, record in enumerate(records):
        report.n_read += 1
        raw_id = _pick(record, ID_COLUMNS) if isinstance(record, dict) else None
        name = str(raw_id).strip() if raw_id is not None and str(raw_id).strip() and str(raw_id) != "nan" else ""
        label = name or f"record #{i + 1}"
        try:
            if not isinstance(record, dict):
                raise DataError(f"expected an object with id, cif and energy, got {type(record).__name__}")
            if not name:
                raise DataError("missing material id")
            if name in seen:
                raise DataError("duplicate material id (an earlier record has it)")
            raw_energy = _pick(record, ENERGY_COLUMNS)
            if require_energy or raw_energy not in (None, ""):
                energy = _energy(raw_energy)
            else:
                energy = float("nan")
            cif = _pick(record, CIF_COLUMNS)
            if not isinstance(cif, str) or not cif.strip():
                raise DataError("missing CIF text")
            structure = parse_cif(cif) if parse_structures else None
        except DataError as exc:
            issue = RecordIssue(label, str(exc))
            if on_error == "raise":
                raise DataError(f"{source}: {issue}") from None
            report.skipped.append(issue)
            continue
        seen.add(name)
        if energy_window is not None and math.isfinite(energy):
            lo, hi = energy_window
            if not lo <= energy <= hi:
                report.filtered.append(
                    RecordIssue(label, f"formation energy {energy:.3f} eV/atom outside [{lo}, {hi}]")
                )
                continue
        if structure is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                formula = structure.composition.reduced_formula
            elements = tuple(sorted(el.symbol for el in structure.composition.elements))
            nsites = len(structure)
        else:
            formula = record.get("formula", "")
            elements = tuple(record.get("elements", ()))
            nsites = int(record.get("nsites", 0) or 0)
        rows.append(
            {
                "material_id": name,
                "formula": formula,
                "formation_energy_per_atom": energy,
                "elements": elements,
                "nsites": nsites,
                "spacegroup_symbol": record.get("spacegroup_symbol", ""),
                "spacegroup_number": record.get("spacegroup_number", 0),
                "is_phosphate": "P" in elements and "O" in elements,
                "cif": cif,
            }
        )
        structures.append(structure)
    report.n_kept = len(rows)
    if not rows:
        reasons = f"; first problem: {report.skipped[0]}" if report.skipped else ""
        raise DataError(f"{source}: no usable records (read {report.n_read}){reasons}")
    if len(rows) < min_records:
        raise DataError(f"{source}: only {len(rows)} usable records, at least {min_records} are needed")
    frame = pd.DataFrame(rows)
    return Materials(frame, report, structures if parse_structures else None)


def _open_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        if raw[:2] != b"\x1f\x8b":
            raise DataError(f"{path}: named .gz but it is not gzip-compressed")
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupt gzip file ({exc})") from None
    elif raw[:2] == b"\x1f\x8b":
        raise DataError(f"{path}: gzip-compressed data in a file not named .gz")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None


def read_records(path: str | Path) -> list[dict]:
    """Read raw records from a JSON(.gz) array, a CSV with a CIF column, a CIF file, or a
    CGCNN-style folder (``id_prop.csv`` + ``<id>.cif``). Raises DataError if the file is not
    what its name says."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_cif_folder(path)
    kind = path.name.lower().removesuffix(".gz")
    if kind.endswith(".json"):
        text = _open_text(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict) and isinstance(data.get("records"), list):
            data = data["records"]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
        return data
    if kind.endswith(".csv"):
        text = _open_text(path)
        try:
            frame = pd.read_csv(io.StringIO(text), dtype={c: str for c in ID_COLUMNS})
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
        if not any(c in frame.columns for c in CIF_COLUMNS):
            raise DataError(f"{path}: CSV needs a 'cif' column with CIF text (columns: {list(frame.columns)})")
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in frame.to_dict(orient="records")]
    if kind.endswith(".cif"):
        return [{"material_id": path.stem, "cif": _open_text(path)}]
    raise DataError(f"{path}: unknown data format (use .json, .json.gz, .csv, .cif or a folder with id_prop.csv)")


def _read_cif_folder(folder: Path) -> list[dict]:
    id_prop = folder / "id_prop.csv"
    if not id_prop.exists():
        return [{"material_id": p.stem, "cif": p.read_text(errors="replace")} for p in sorted(folder.glob("*.cif"))]
    try:
        table = pd.read_csv(id_prop, header=None, dtype={0: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{id_prop}: not a readable id_prop.csv ({str(exc).splitlines()[0]})") from None
    if table.shape[1] < 2:
        raise DataError(f"{id_prop}: needs two columns, id and formation energy (CGCNN convention)")
    records = []
    for rid, energy in zip(table[0], table[1]):
        cif_path = folder / f"{rid}.cif"
        cif = cif_path.read_text(errors="replace") if cif_path.exists() else None
        records.append({"material_id": rid, "formation_energy_per_atom": energy, "cif": cif})
    return records


def load_materials(
    path: str | Path = DEFAULT_DATASET,
    *,
    require_energy: bool = True,
    energy_window: tuple[float, float] | None = DEFAULT_ENERGY_WINDOW,
    parse_structures: bool = True,
    on_error: OnError = "skip",
    min_records: int = 1,
) -> Materials:
    """Load a dataset file or folder into a validated :class:`Materials` table."""
    records = read_records(path)
    return validate_records(
        records,
        source=str(path),
        require_energy=require_energy,
        energy_window=energy_window,
        parse_structures=parse_structures,
        on_error=on_error,
        min_records=min_records,
    )
