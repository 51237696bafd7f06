"""Load and validate materials: structure + DFT formation energy per atom.

Every record is checked; a bad one is either skipped (and listed in the load report)
or stops the load, as the caller chooses. Messages always name the record and the reason.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import stat
import sys
import time
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import pandas as pd

from cfgp.cif_reader import read_plain_p1
from cfgp.structure_checks import ImplausibleStructure, check_cif_blocks, check_structure

if TYPE_CHECKING:
    from pymatgen.core import Structure

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

#: Largest data set file cfgp reads, in bytes, both as stored and after gzip decompression: 256 MiB, 5× the
#: shipped data set (48.5 MB of JSON for 16,394 oxides). Reading and decompressing stop at the limit, so a
#: gzip bomb (1.1 MB that expands to 1.1 GB) costs at most this much memory before its message. A CIF folder's
#: files together have the same budget.
MAX_DATASET_BYTES = 256 * 2**20
#: Largest CIF text, in characters (bytes for a file): one .cif file, one record's CIF field or one upload in
#: the app. 2 MB is 180× the largest of the 35,537 real CIFs (11 kB); with the site limits of
#: :mod:`cfgp.structure_checks` it bounds parsing time.
MAX_CIF_CHARS = 2_000_000
#: Longest material id, in characters (real ids such as mp-1234567 have ~10).
MAX_ID_CHARS = 200
#: JSON integers with more digits than this are kept as a description ("an integer of 5,000 digits") that
#: only their record refuses: Python refuses to convert more than 4,300 digits, which would abort the whole file.
_MAX_JSON_INT_DIGITS = 4000
#: Key under which a reader passes a per-record read problem (a missing or unreadable CIF of a folder) to
#: :func:`validate_records`, which reports it for that record and goes on with the others.
READ_ERROR = "__cfgp_read_error__"


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


#: How :func:`parse_cif` reads CIF text: "auto" (gemmi's fast path for plain P1 CIFs, pymatgen for the rest:
#: :mod:`cfgp.cif_reader`) or "pymatgen" (always pymatgen's parser; the same structures, ~4x slower to read).
CIF_READERS = ("auto", "pymatgen")


def parse_cif(text: str, reader: str = "auto", timings: dict[str, float] | None = None) -> Structure:
    """Parse CIF text to a pymatgen Structure that is physically possible, or raise DataError saying why.

    The raw numbers of the CIF are checked before pymatgen builds the structure (it silently wraps a
    coordinate of 1e300 into the cell and is quadratic in the number of listed sites), the structure after
    (overlapping atoms, volume per atom, elements, cell size: :mod:`cfgp.structure_checks`). A plain P1 CIF
    (``reader="auto"``) is read by :func:`cfgp.cif_reader.read_plain_p1` instead, into the identical
    structure; if that structure fails a check, pymatgen's path reads the text again, so every error
    message is the one pymatgen's path gives. ``timings`` (if given) accumulates seconds under "parse" and
    "checks" (screening's per-stage profile).
    """
    from pymatgen.io.cif import CifParser

    if reader not in CIF_READERS:
        raise ValueError(f"unknown CIF reader {reader!r}; choose from {', '.join(CIF_READERS)}")
    if not isinstance(text, str) or not text.strip():
        raise DataError("empty CIF")
    if len(text) > MAX_CIF_CHARS:
        raise DataError(f"CIF text of {len(text):,} characters; the limit is {MAX_CIF_CHARS:,}")
    lap = StageLaps(timings)
    fast = read_plain_p1(text) if reader == "auto" else None
    lap("parse")
    if fast is not None:
        try:
            check_structure(fast)
            return fast
        except ImplausibleStructure:
            pass  # pymatgen's path below says why, in its words
        finally:
            lap("checks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parser = CifParser.from_str(text)
            blocks = parser.as_dict()
        except Exception as exc:  # pymatgen raises many types for bad CIFs
            raise DataError(f"unparsable CIF ({first_line(exc)})") from None
        finally:
            lap("parse")
        with checked(lap):
            check_cif_blocks(blocks)
        try:
            structures = parser.parse_structures(primitive=False)
            structure = structures[0]
        except Exception as exc:
            reasons = [w.strip().splitlines()[-1] for w in parser.warnings if w.strip()]
            detail = reasons[-1] if reasons else first_line(exc)
            if "Occupancy" in detail and "exceeded" in detail:
                detail += ": atoms overlap, or the occupancies of one site sum to more than 1"
            raise DataError(f"unparsable CIF ({detail[:200]})") from None
        finally:
            lap("parse")
    if len(structure) == 0:
        raise DataError("CIF has no atomic sites")
    if not structure.is_ordered:
        raise DataError("disordered structure (partial occupancies); the crystal graph needs an ordered cell")
    with checked(lap):
        check_structure(structure)
    return structure


@contextmanager
def checked(lap: "StageLaps") -> Iterator[None]:
    """A plausibility check of :func:`parse_cif`: its failure is the DataError users see (the check's own words),
    and its time counts as "checks"."""
    try:
        yield
    except ImplausibleStructure as exc:
        raise DataError(str(exc)) from None
    finally:
        lap("checks")


class StageLaps:
    """Adds the seconds since the previous lap to ``timings[stage]``; does nothing without ``timings``."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.t = timings, time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.t
            self.t = now


def first_line(exc: BaseException) -> str:
    """An exception's first line (≤ 200 characters) for a per-record reason: parsers' messages can be pages long."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _short(value: Any, limit: int = 40) -> str:
    """A value for a message, never huge: long texts are cut, and integers are described by their size
    (printing an integer of more than 4,300 digits raises in Python)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of ~{int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_energy(value: Any) -> float:
    """A record's formation energy as a finite float (eV/atom); DataError saying why a value cannot be one."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and value == ""):
        raise DataError("missing formation energy")
    if isinstance(value, bool):
        raise DataError(f"non-numeric formation energy {value!r}")
    if isinstance(value, _HugeInt):
        raise DataError(f"formation energy is too large for a number ({value}; not a finite float)")
    try:
        energy = float(value)
    except OverflowError:
        raise DataError(f"formation energy is too large for a number ({_short(value)}; not a finite float)") from None
    except (TypeError, ValueError):
        raise DataError(f"non-numeric formation energy {_short(value)}") from None
    if not math.isfinite(energy):
        raise DataError(f"formation energy {_short(value)} is not a finite number")
    return energy


#: Numeric properties a record may carry beside its energy (Materials Project's names); absent or unreadable → NaN,
#: so data sets and run folders without them load as before.
OPTIONAL_NUMBERS = ("band_gap", "efermi", "total_magnetization")


def record_float(value: Any) -> float:
    """An optional numeric field of a record as a float; NaN when absent, not a finite number, or not a number at
    all (an optional property never rejects its record)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    try:
        out = float(value)
    except (OverflowError, ValueError):  # an integer too large for a float
        return float("nan")
    return out if math.isfinite(out) else float("nan")


def record_name(raw: Any) -> str:
    """The material id as text ('' if missing); DataError if it cannot serve as one."""
    if raw is None:
        return ""
    if isinstance(raw, _HugeInt):
        raise DataError(f"material id is {raw}, not a usable name")
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 128:
        raise DataError(f"material id is {_short(raw)}, not a usable name")
    if not isinstance(raw, (str, int, float)):
        raise DataError(f"material id must be text, got {type(raw).__name__}")
    text = str(raw).strip()
    if text == "nan":
        return ""
    if len(text) > MAX_ID_CHARS:
        raise DataError(f"material id of {len(text):,} characters; the limit is {MAX_ID_CHARS}")
    return text


class Materials:
    """A validated table of materials with lazily parsed pymatgen structures.

    ``frame`` has one row per material: material_id, formula, formation_energy_per_atom
    (NaN when unlabelled), cif, elements, nsites, spacegroup_symbol, spacegroup_number, band_gap (eV), efermi (eV),
    total_magnetization (μB per cell), volume (Å³ per cell), volume_per_atom (Å³; NaN where the data set lacks
    them: :data:`OPTIONAL_NUMBERS`), contains_p (P and O: a candidate phosphate;
    whether it holds phosphate units is a structural question, answered by :mod:`cfgp.motifs` for a run).
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
        """Rows of the materials ``ids`` names, in that order. A DataError naming a few unknown ids and the data
        set if any is missing: ids come from saved files (a split, a history), which may belong to another data set."""
        ids = list(ids)
        lookup = pd.Series(np.arange(len(self)), index=self.frame["material_id"])
        missing = [i for i in ids if i not in lookup.index]
        if missing:
            raise DataError(f"{len(missing):,} material id(s) not in the data set {self.report.source}, e.g. "
                            f"{', '.join(_short(i) for i in missing[:5])} (named by a file of another data set?)")
        return lookup.loc[ids].to_numpy()


def pick_field(record: dict, names: Sequence[str]) -> Any:
    """The first of ``names`` a record has (data sets name the id, CIF and energy columns differently)."""
    for name in names:
        if name in record:
            return record[name]
    return None


class RecordError(DataError):
    """A DataError about one record, with the id it can be named by ('' before the id is read)."""

    def __init__(self, label: str, reason: str):
        super().__init__(reason)
        self.label = label


def check_record(record: Any, seen: set[str], require_energy: bool = True) -> tuple[str, float, str]:
    """The id, formation energy (NaN when absent and not required) and CIF text of one input record, checked
    the same way wherever records are read: data sets (:func:`validate_records`) and streamed predictions
    (:mod:`cfgp.screening`). ``seen`` holds the ids already accepted (the caller adds this one when it keeps
    the record). Raises :class:`RecordError` naming why, labelled with the id when the record has one."""
    name = ""
    try:
        if not isinstance(record, dict):
            raise DataError(f"expected an object with id, cif and energy, got {type(record).__name__}")
        name = record_name(pick_field(record, ID_COLUMNS))
        if record.get(READ_ERROR):
            raise DataError(str(record[READ_ERROR]))
        if not name:
            raise DataError("missing material id")
        if name in seen:
            raise DataError("duplicate material id (an earlier record has it)")
        raw_energy = pick_field(record, ENERGY_COLUMNS)
        energy = record_energy(raw_energy) if require_energy or raw_energy not in (None, "") else float("nan")
        cif = pick_field(record, CIF_COLUMNS)
        if cif is not None and not isinstance(cif, str):
            raise DataError(f"CIF field must be text, got {type(cif).__name__}")
        if not isinstance(cif, str) or not cif.strip():
            raise DataError("missing CIF text")
    except RecordError:
        raise
    except DataError as exc:
        raise RecordError(name, str(exc)) from None
    return name, energy, cif


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
        label = f"record #{i + 1}"
        try:
            name, energy, cif = check_record(record, seen, require_energy)
            label = name
            structure = parse_cif(cif) if parse_structures else None
        except DataError as exc:
            issue = RecordIssue(getattr(exc, "label", None) or label, str(exc))
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
            volume = record_float(record.get("volume"))
            if not math.isfinite(volume):
                volume = float(structure.volume)
        else:
            formula = record.get("formula", "")
            elements = tuple(record.get("elements", ()))
            nsites = int(record.get("nsites", 0) or 0)
            volume = record_float(record.get("volume"))
        rows.append(
            {
                "material_id": name,
                "formula": formula,
                "formation_energy_per_atom": energy,
                "elements": elements,
                "nsites": nsites,
                "spacegroup_symbol": record.get("spacegroup_symbol", ""),
                "spacegroup_number": record.get("spacegroup_number", 0),
                "contains_p": "P" in elements and "O" in elements,
                **{name: record_float(record.get(name)) for name in OPTIONAL_NUMBERS},
                "volume": volume,
                "volume_per_atom": volume / nsites if nsites > 0 else float("nan"),
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


def _describe(path: Path, mode: int) -> str:
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    if path.is_symlink():
        kind += f", through a symbolic link to {os.readlink(path)}"
    return kind


def open_regular(path: Path, what: str = "file") -> tuple[int, int]:
    """Open ``path`` for reading if it is a regular file (a symbolic link to one is fine): (fd, size).

    Opened non-blocking and checked with fstat before any read, so a FIFO cannot hang the reader and
    ``/dev/zero`` cannot feed it without end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DataError(f"{path}: not a regular file ({_describe(path, st.st_mode)}); cfgp reads only regular files")
    return fd, st.st_size


def _read_bounded(path: Path, limit: int, what: str = "file") -> bytes | bytearray:
    """The bytes of a regular file, decompressed if it is named .gz, never more than ``limit`` of either."""
    fd, size = open_regular(path, what)
    with os.fdopen(fd, "rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        gzipped = path.suffix == ".gz"
        if gzipped and head != b"\x1f\x8b":
            raise DataError(f"{path}: named .gz but it is not gzip-compressed")
        if not gzipped and head == b"\x1f\x8b":
            raise DataError(f"{path}: gzip-compressed data in a file not named .gz")
        if size > limit:
            raise DataError(f"{path}: {size:,} bytes; the limit is {limit:,} bytes")
        if not gzipped:
            raw = fh.read(limit + 1)
            if len(raw) > limit:
                raise DataError(f"{path}: more than {limit:,} bytes (the limit)")
            return raw
        out = bytearray()
        try:
            with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                while True:
                    chunk = gz.read(min(1 << 20, limit + 1 - len(out)))
                    if not chunk:
                        break
                    out += chunk
                    if len(out) > limit:
                        raise DataError(f"{path}: decompresses to more than {limit:,} bytes (the limit; "
                                        f"{size:,} bytes compressed): a gzip bomb or a data set too large")
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip file ({first_line(exc)})") from None
        return out


def read_bounded_text(path: Path, limit: int = MAX_DATASET_BYTES, what: str = "file") -> str:
    """The UTF-8 text of a regular file (gunzipped if named .gz), never more than ``limit`` bytes of either: how
    cfgp reads a whole file it was pointed at (data sets, CIFs, JSON artefacts), so that a FIFO, a folder, a gzip
    bomb or a huge file gets a DataError naming the path (and the limit) instead of hanging or filling memory."""
    raw = _read_bounded(path, limit, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None


class _HugeInt(str):
    """A JSON integer too long for Python to convert (Python refuses more than 4,300 digits), kept as a
    description so that only its record is refused, not the whole file."""


def json_int(text: str) -> int | _HugeInt:
    """``json.loads``' ``parse_int``: a description instead of an integer Python refuses to convert (over 4,300
    digits would abort the whole file), so that only the record holding it is refused, by name."""
    digits = len(text.lstrip("-"))
    return int(text) if digits <= _MAX_JSON_INT_DIGITS else _HugeInt(f"an integer of {digits:,} digits")


def read_records(path: str | Path) -> list[dict]:
    """Read raw records from a JSON(.gz) array, a CSV with a CIF column, a CIF file, or a
    CGCNN-style folder (``id_prop.csv`` + ``<id>.cif``). Raises DataError if the file is not
    what its name says, is not a regular file, or is larger than the limits (``MAX_DATASET_BYTES``,
    ``MAX_CIF_CHARS``). Problems of single CIFs of a folder are passed on per record (``READ_ERROR``)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_cif_folder(path)
    kind = path.name.lower().removesuffix(".gz")
    if kind.endswith(".json"):
        text = read_bounded_text(path)
        try:
            data = json.loads(text, parse_int=json_int)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except RecursionError:
            raise DataError(f"{path}: JSON nested too deeply (more than ~{sys.getrecursionlimit():,} levels; a data "
                            "set needs 3: a list of records with fields)") from None
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON ({first_line(exc)})") from None
        del text
        if isinstance(data, dict) and isinstance(data.get("records"), list):
            data = data["records"]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
        return data
    if kind.endswith(".csv"):
        text = read_bounded_text(path)
        try:
            frame = pd.read_csv(io.StringIO(text), dtype={c: str for c in ID_COLUMNS})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as exc:
            raise DataError(f"{path}: not a readable CSV ({first_line(exc)})") from None
        if not any(c in frame.columns for c in CIF_COLUMNS):
            raise DataError(f"{path}: CSV needs a 'cif' column with CIF text (columns: {list(frame.columns)[:20]})")
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in frame.to_dict(orient="records")]
    if kind.endswith(".cif"):
        record = {"material_id": path.stem, "cif": read_bounded_text(path, MAX_CIF_CHARS, "CIF file")}
        return [_with_empty_check(record, path)]
    raise DataError(f"{path}: unknown data format (use .json, .json.gz, .csv, .cif or a folder with id_prop.csv)")


class FolderBudget:
    """Bytes a folder's files may still take together (``MAX_DATASET_BYTES``)."""

    def __init__(self, folder: Path, limit: int = MAX_DATASET_BYTES):
        self.folder, self.left, self.limit = folder, limit, limit

    def read_cif(self, path: Path) -> str:
        text = read_bounded_text(path, MAX_CIF_CHARS, "CIF file")
        self.left -= len(text)
        if self.left < 0:
            raise DataError(f"{self.folder}: its CIF files hold more than {self.limit:,} bytes together (the limit)")
        return text


def cif_record(budget: FolderBudget, path: Path, material_id: Any, energy: Any = None) -> dict:
    record = {"material_id": material_id, "formation_energy_per_atom": energy, "cif": None}
    try:
        record["cif"] = budget.read_cif(path)
    except DataError as exc:
        if budget.left < 0:
            raise
        record[READ_ERROR] = str(exc)
    return _with_empty_check(record, path)


def _with_empty_check(record: dict, path: Path) -> dict:
    """Say "empty file" (not "missing CIF text") for a CIF file with nothing in it."""
    text = record.get("cif")
    if isinstance(text, str) and not text.strip() and not record.get(READ_ERROR):
        record[READ_ERROR] = f"{path}: empty file" + (" (only white space)" if text else " (0 bytes)")
    return record


def folder_entry_problem(rid: Any) -> str | None:
    """Why an id of id_prop.csv cannot name a file ``<id>.cif`` inside the folder (None if it can)."""
    if not isinstance(rid, str) or not rid.strip():
        return "empty id"
    if rid in (".", "..") or "/" in rid or "\\" in rid or "\0" in rid or Path(rid).name != rid:
        return (f"id {rid[:80]!r} is not a plain file name: it would read {rid[:80]}.cif outside the folder "
                "(ids may not contain '/', '\\' or be '..'), refused")
    if len(rid) > MAX_ID_CHARS:
        return f"id of {len(rid):,} characters; the limit is {MAX_ID_CHARS}"
    return None


def _read_cif_folder(folder: Path) -> list[dict]:
    id_prop = folder / "id_prop.csv"
    budget = FolderBudget(folder)
    if not id_prop.exists() and not id_prop.is_symlink():
        paths = sorted(folder.glob("*.cif"))
        if not paths:
            raise DataError(f"{folder}: a data set folder needs id_prop.csv (CGCNN convention) or .cif files; "
                            "it has neither")
        return [cif_record(budget, p, p.stem) for p in paths]
    text = read_bounded_text(id_prop)
    try:
        table = pd.read_csv(io.StringIO(text), header=None, dtype={0: str}, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as exc:
        raise DataError(f"{id_prop}: not a readable id_prop.csv ({first_line(exc)})") from None
    if table.shape[1] < 2:
        raise DataError(f"{id_prop}: needs two columns, id and formation energy (CGCNN convention)")
    records = []
    for line, (rid, energy) in enumerate(zip(table[0], table[1]), start=1):
        problem = folder_entry_problem(rid)
        if problem:
            records.append({"material_id": rid if isinstance(rid, str) and problem.startswith("id ")
                            else f"id_prop.csv line {line}", "formation_energy_per_atom": energy,
                            READ_ERROR: f"{problem} (id_prop.csv line {line})"})
            continue
        cif_path = folder / f"{rid}.cif"
        if not cif_path.exists() and not cif_path.is_symlink():
            records.append({"material_id": rid, "formation_energy_per_atom": energy,
                            READ_ERROR: f"no file {rid}.cif in {folder} (named on line {line} of id_prop.csv)"})
            continue
        records.append(cif_record(budget, cif_path, rid, energy))
    return records


def dataset_sha256(path: str | Path) -> str:
    """sha256 of a data set: of its file, or for a CIF folder of its id_prop.csv and .cif files (names and
    contents, in sorted order), so that a run can tell whether its data changed. Reads only regular files,
    in chunks; a non-regular entry of a folder counts by name only."""
    path = Path(path)

    def file_digest(p: Path) -> str:
        fd, _ = open_regular(p)
        h = hashlib.sha256()
        with os.fdopen(fd, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    if not path.is_dir():
        return file_digest(path)
    h = hashlib.sha256()
    entries = sorted(p for p in path.iterdir() if p.name == "id_prop.csv" or p.name.endswith(".cif"))
    for p in entries:
        try:
            digest = file_digest(p)
        except DataError:
            digest = "not a regular file"
        h.update(f"{p.name}\0{digest}\n".encode())
    return h.hexdigest()


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
