"""Read the records of a data set one at a time, with the bounds of :mod:`cfgp.data`, for screening.

:func:`cfgp.data.read_records` reads a whole file into memory, which is right for training (the whole set
is needed) but not for screening millions of hypothetical structures: :func:`iter_records` yields the same
records lazily, so that memory holds one chunk of records, not the file. Formats: a JSON array
(``.json``, the shipped format), JSON lines (``.jsonl``/``.ndjson``: one record per line), CSV with a
``cif`` column, each optionally gzip-compressed (``.gz``), a single ``.cif`` file, and a CIF folder
(``id_prop.csv`` + ``<id>.cif``, or just ``*.cif``).

The bounds are those of :mod:`cfgp.data`: regular files only; a file's size, stored and decompressed, and
a folder's CIFs together at most ``max_bytes`` (default ``MAX_DATASET_BYTES``) — a gzip file is decompressed
once, counting, before its first record is yielded, so a gzip bomb is refused whole as before, not after
some of its records; one CIF at most ``MAX_CIF_CHARS``; huge JSON integers and deep nesting give messages.
New, because a record is now read on its own: one record (a JSON array element, a line) may hold at most
``MAX_RECORD_CHARS`` characters, eight times the largest CIF allowed. A problem of the file stops that file
(``DataError``, the file named); a problem of one record (a JSON line that does not parse, a CIF of a folder
that cannot be read) is passed on as that record's ``READ_ERROR``, and the next records are read.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import math
import os
import zlib
from pathlib import Path
from typing import Iterator

import pandas as pd

from cfgp.data import (CIF_COLUMNS, ID_COLUMNS, MAX_CIF_CHARS, MAX_DATASET_BYTES, READ_ERROR, DataError,
                       read_records)
from cfgp.data import FolderBudget, cif_record, first_line, folder_entry_problem, json_int, open_regular

#: Most characters one record may hold (a JSON array element or one JSON line): 8× the largest CIF allowed
#: (``MAX_CIF_CHARS``), so that a record with an oversized CIF is still read and refused on its own.
MAX_RECORD_CHARS = 8 * MAX_CIF_CHARS
#: Characters decoded per read.
READ_CHARS = 1 << 20
JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class BoundedBytes:
    """The bytes of a regular file, gunzipped if it is named ``.gz``; never more than ``limit`` of either.

    A gzip file is decompressed once, counting, when opened (no memory kept), so that one that expands past
    the limit is refused before any of its records is used; the count is enforced again while reading.
    """

    def __init__(self, path: Path, limit: int = MAX_DATASET_BYTES):
        self.path, self.limit, self.count = Path(path), limit, 0
        fd, size = open_regular(self.path)
        self._raw = os.fdopen(fd, "rb")
        try:
            head = self._raw.read(2)
            self._raw.seek(0)
            self.gzipped = self.path.suffix == ".gz"
            if self.gzipped and head != b"\x1f\x8b":
                raise DataError(f"{self.path}: named .gz but it is not gzip-compressed")
            if not self.gzipped and head == b"\x1f\x8b":
                raise DataError(f"{self.path}: gzip-compressed data in a file not named .gz")
            if size > limit:
                raise DataError(f"{self.path}: {size:,} bytes; the limit is {limit:,} bytes")
            self.size = size
            if self.gzipped:
                self._check_decompressed_size()
                self._raw.seek(0)
                self._src = gzip.GzipFile(fileobj=self._raw, mode="rb")
            else:
                self._src = self._raw
        except BaseException:
            self._raw.close()
            raise

    def _too_much(self) -> DataError:
        if self.gzipped:
            return DataError(f"{self.path}: decompresses to more than {self.limit:,} bytes (the limit; "
                             f"{self.size:,} bytes compressed): a gzip bomb or a data set too large")
        return DataError(f"{self.path}: more than {self.limit:,} bytes (the limit)")

    def _check_decompressed_size(self) -> None:
        total = 0
        try:
            with gzip.GzipFile(fileobj=self._raw, mode="rb") as gz:
                while chunk := gz.read(1 << 20):
                    total += len(chunk)
                    if total > self.limit:
                        raise self._too_much()
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{self.path}: corrupt gzip file ({first_line(exc)})") from None

    def read(self, n: int) -> bytes:
        try:
            chunk = self._src.read(n)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{self.path}: corrupt gzip file ({first_line(exc)})") from None
        self.count += len(chunk)
        if self.count > self.limit:
            raise self._too_much()
        return chunk

    def close(self) -> None:
        if self._src is not self._raw:
            self._src.close()
        self._raw.close()

    def __enter__(self) -> "BoundedBytes":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def text_chunks(stream: BoundedBytes, size: int = READ_CHARS) -> Iterator[str]:
    """UTF-8 text of ``stream`` in pieces of about ``size`` bytes (a character split between reads is kept whole)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    while True:
        raw = stream.read(size)
        try:
            text = decoder.decode(raw, final=not raw)
        except UnicodeDecodeError:
            raise DataError(f"{stream.path}: not a UTF-8 text file") from None
        if text:
            yield text
        if not raw:
            return


class _NotAnArray(Exception):
    """The JSON document does not start with '[': read it whole, as :func:`cfgp.data.read_records` does."""


def _json_array(path: Path, chunks: Iterator[str]) -> Iterator:
    """The elements of a top-level JSON array, one at a time."""
    decoder = json.JSONDecoder(parse_int=json_int)
    buf, pos, eof, lines_before, n = "", 0, False, 0, 0

    def more() -> bool:
        nonlocal buf, pos, eof, lines_before
        try:
            piece = next(chunks)
        except StopIteration:
            eof = True
            return False
        lines_before += buf.count("\n", 0, pos)
        buf, pos = buf[pos:] + piece, 0
        return True

    def next_char() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not more():
                return ""

    def invalid(what: str, at: int) -> DataError:
        return DataError(f"{path}: not valid JSON ({what} at line {lines_before + buf.count(chr(10), 0, at) + 1})")

    if next_char() != "[":
        raise _NotAnArray  # an object ({"records": [...]}), a scalar or not JSON: cfgp.data reads and names it
    pos += 1
    if next_char() == "]":
        pos += 1
    else:
        while True:
            n += 1
            next_char()
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    if eof:
                        raise invalid(exc.msg, exc.pos) from None
                    if len(buf) - pos > MAX_RECORD_CHARS:
                        raise DataError(f"{path}: record #{n} is not valid JSON ({exc.msg}) or holds more than "
                                        f"{MAX_RECORD_CHARS:,} characters (the limit for one record)") from None
                    more()
                    continue
                except RecursionError:
                    raise DataError(f"{path}: JSON nested too deeply (a data set needs 3 levels: a list of records "
                                    "with fields)") from None
                except ValueError as exc:
                    raise DataError(f"{path}: not valid JSON ({first_line(exc)})") from None
                if end >= len(buf) and not eof and more():
                    continue  # a number or literal may go on in the next piece: decode again
                break
            pos = end
            yield value
            c = next_char()
            if c == ",":
                pos += 1
                continue
            if c == "]":
                pos += 1
                break
            if not c:
                raise invalid("Expecting ',' delimiter", len(buf))
            raise invalid("Expecting ',' delimiter", pos)
    if next_char():
        raise invalid("Extra data", pos)


def _lines(path: Path, chunks: Iterator[str]) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of each line; text None for a line longer than ``MAX_RECORD_CHARS`` (skipped)."""
    rest, number, skipping = "", 0, False
    for piece in chunks:
        start = 0
        while True:
            nl = piece.find("\n", start)
            if nl < 0:
                if not skipping:
                    rest += piece[start:]
                    if len(rest) > MAX_RECORD_CHARS:
                        number += 1
                        yield number, None
                        rest, skipping = "", True
                break
            if skipping:
                skipping = False
            else:
                number += 1
                yield number, rest + piece[start:nl]
            rest, start = "", nl + 1
    if rest and not skipping:
        yield number + 1, rest


def _json_lines(path: Path, chunks: Iterator[str]) -> Iterator:
    """One record per line; a line that is not JSON is that record's read error, the next lines are read."""
    decoder = json.JSONDecoder(parse_int=json_int)
    for number, text in _lines(path, chunks):
        label = f"line {number}"
        if text is None:
            yield {"material_id": label, READ_ERROR: f"{path}: {label} holds more than {MAX_RECORD_CHARS:,} "
                                                     "characters (the limit for one record)"}
            continue
        if not text.strip():
            continue
        try:
            yield decoder.decode(text)
        except json.JSONDecodeError as exc:
            yield {"material_id": label, READ_ERROR: f"{path}: {label} is not valid JSON ({exc.msg})"}
        except RecursionError:
            yield {"material_id": label, READ_ERROR: f"{path}: {label}: JSON nested too deeply"}
        except ValueError as exc:
            yield {"material_id": label, READ_ERROR: f"{path}: {label} is not valid JSON ({first_line(exc)})"}


class _TextReader(io.TextIOBase):
    """A read-only text stream over :func:`text_chunks`, for pandas' chunked CSV reader."""

    def __init__(self, chunks: Iterator[str]):
        self._chunks, self._buf = chunks, ""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        if size is None or size < 0:
            out = self._buf + "".join(self._chunks)
            self._buf = ""
            return out
        while len(self._buf) < size:
            piece = next(self._chunks, None)
            if piece is None:
                break
            self._buf += piece
        out, self._buf = self._buf[:size], self._buf[size:]
        return out


def _csv(path: Path, chunks: Iterator[str], rows: int = 256) -> Iterator[dict]:
    try:
        reader = pd.read_csv(_TextReader(chunks), dtype={c: str for c in ID_COLUMNS}, chunksize=rows)
        for frame in reader:
            if not any(c in frame.columns for c in CIF_COLUMNS):
                raise DataError(f"{path}: CSV needs a 'cif' column with CIF text (columns: {list(frame.columns)[:20]})")
            for record in frame.to_dict(orient="records"):
                yield {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: not a readable CSV ({first_line(exc)})") from None


def _cif_folder(folder: Path, limit: int) -> Iterator[dict]:
    """The records of a CIF folder, each CIF read when its record is due (the folder's CIFs together at most
    ``limit`` bytes: their sizes are summed before the first record, and counted again as they are read)."""
    id_prop = folder / "id_prop.csv"
    budget = FolderBudget(folder, limit)
    if not id_prop.exists() and not id_prop.is_symlink():
        names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".cif"))
        if not names:
            raise DataError(f"{folder}: a data set folder needs id_prop.csv (CGCNN convention) or .cif files; "
                            "it has neither")
        _check_folder_size(folder, names, limit)
        for name in names:
            yield cif_record(budget, folder / name, name[:-4])
        return
    with BoundedBytes(id_prop, limit) as stream:  # ids and energies: small, read whole
        text = "".join(text_chunks(stream))
    try:
        table = pd.read_csv(io.StringIO(text), header=None, dtype={0: str}, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as exc:
        raise DataError(f"{id_prop}: not a readable id_prop.csv ({first_line(exc)})") from None
    del text
    if table.shape[1] < 2:
        raise DataError(f"{id_prop}: needs two columns, id and formation energy (CGCNN convention)")
    _check_folder_size(folder, [f"{rid}.cif" for rid in table[0] if isinstance(rid, str)
                                and folder_entry_problem(rid) is None], limit)
    for line, (rid, energy) in enumerate(zip(table[0], table[1]), start=1):
        problem = folder_entry_problem(rid)
        if problem:
            yield {"material_id": rid if isinstance(rid, str) and problem.startswith("id ")
                   else f"id_prop.csv line {line}", "formation_energy_per_atom": energy,
                   READ_ERROR: f"{problem} (id_prop.csv line {line})"}
            continue
        cif_path = folder / f"{rid}.cif"
        if not cif_path.exists() and not cif_path.is_symlink():
            yield {"material_id": rid, "formation_energy_per_atom": energy,
                   READ_ERROR: f"no file {rid}.cif in {folder} (named on line {line} of id_prop.csv)"}
            continue
        yield cif_record(budget, cif_path, rid, energy)


def _check_folder_size(folder: Path, names: list[str], limit: int) -> None:
    total = 0
    for name in names:
        try:
            st = os.stat(folder / name)
        except OSError:
            continue  # a missing or unreadable file is that record's problem
        if os.path.isfile(folder / name):
            total += st.st_size
            if total > limit:
                raise DataError(f"{folder}: its CIF files hold more than {limit:,} bytes together (the limit)")


def iter_records(path: str | Path, max_bytes: int = MAX_DATASET_BYTES) -> Iterator:
    """The raw records of a data set, one at a time (see the module docstring for formats and bounds).

    Raises :class:`DataError` naming the file when the file (or what is left of it) cannot be read; the
    records yielded before stay valid. A record's own read problem comes as its ``READ_ERROR`` field.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        yield from _cif_folder(path, max_bytes)
        return
    kind = path.name.lower().removesuffix(".gz")
    if kind.endswith(".cif"):
        yield from read_records(path)  # one CIF, at most MAX_CIF_CHARS
        return
    if not kind.endswith(JSON_SUFFIXES + JSONL_SUFFIXES + (".csv",)):
        raise DataError(f"{path}: unknown data format (use .json, .jsonl, .csv, each optionally .gz, .cif or a "
                        "folder with id_prop.csv)")
    whole = False
    with BoundedBytes(path, max_bytes) as stream:
        chunks = text_chunks(stream)
        if kind.endswith(JSONL_SUFFIXES):
            yield from _json_lines(path, chunks)
        elif kind.endswith(".csv"):
            yield from _csv(path, chunks)
        else:
            try:
                yield from _json_array(path, chunks)
            except _NotAnArray:
                whole = True
    if whole:  # {"records": [...]}, a scalar or not JSON at all: read whole (bounded) as cfgp.data does
        yield from read_records(path)
