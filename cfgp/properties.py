"""The properties a researcher colours, sizes, plots and filters materials by, and filters over them.

A materials or results frame carries the data set's own properties (band gap, Fermi energy, magnetisation, sites,
volume per atom, space group: :mod:`cfgp.data`) beside the run's results (DFT and GP E_f, σ, residual, z, split).
:data:`CATALOGUE` names each one once — column, label with unit, numeric or categorical — so the dashboard's colour,
size, axis and filter menus, the saved figures and the link all speak of the same things.

A filter is a tuple: ``(column, min, max)`` for a numeric property (either bound ``None`` for open; NaN never
passes) or ``(column, {values})`` for a categorical one. :func:`filter_mask` applies several at once (all must
hold). A link carries them as text, ``band_gap:0.5..3;spacegroup_symbol=P2_1/c|Pnma``, read by
:func:`parse_filters` (a :class:`ValueError` saying what is wrong: the text comes from a URL and is untrusted) and
written by :func:`format_filters`. Pure functions over a pandas frame, no UI.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Union

import numpy as np
import pandas as pd

from cfgp.quoting import quoted

NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Property:
    column: str
    label: str  # with its unit: what a colour bar, axis or menu shows
    kind: str  # NUMERIC or CATEGORICAL


#: Every property a view may colour, size, plot or filter by, in menu order.
CATALOGUE: dict[str, Property] = {p.column: p for p in (
    Property("dft", "DFT E_f (eV/atom)", NUMERIC),
    Property("gp", "GP E_f (eV/atom)", NUMERIC),
    Property("sigma", "GP σ (eV/atom)", NUMERIC),
    Property("residual", "residual GP − DFT (eV/atom)", NUMERIC),
    Property("z", "z = (GP − DFT) / σ", NUMERIC),
    Property("band_gap", "band gap (eV)", NUMERIC),
    Property("efermi", "Fermi energy (eV)", NUMERIC),
    Property("total_magnetization", "magnetisation (μB/cell)", NUMERIC),
    Property("volume_per_atom", "volume per atom (Å³)", NUMERIC),
    Property("nsites", "sites per cell", NUMERIC),
    Property("spacegroup_number", "space group number", NUMERIC),
    Property("spacegroup_symbol", "space group", CATEGORICAL),
    Property("split", "split", CATEGORICAL),
)}

#: The longest filter text read from a link, and the most filters at once (a link is untrusted text).
MAX_FILTER_TEXT = 600
MAX_FILTERS = 8
#: The longest categorical value (the longest space-group symbol has 10 characters).
MAX_VALUE_CHARS = 40

Filter = Union[tuple[str, Union[float, None], Union[float, None]], tuple[str, frozenset]]

_VALUE = re.compile(r"^[A-Za-z0-9_\-/.+ ]+$")  # space-group symbols, split names: no markup, no separators


def numeric_properties(frame: pd.DataFrame | None = None) -> list[str]:
    """Numeric catalogue columns (those ``frame`` has, when given)."""
    return [c for c, p in CATALOGUE.items() if p.kind == NUMERIC and (frame is None or c in frame)]


def categorical_properties(frame: pd.DataFrame | None = None) -> list[str]:
    """Categorical catalogue columns (those ``frame`` has, when given)."""
    return [c for c, p in CATALOGUE.items() if p.kind == CATEGORICAL and (frame is None or c in frame)]


def _property(column: str) -> Property:
    if column not in CATALOGUE:
        raise ValueError(f"unknown property {quoted(column)}; choose from {', '.join(CATALOGUE)}")
    return CATALOGUE[column]


def check_filter(f: Filter) -> Filter:
    """A filter in its normal form — ``(column, min, max)`` with float bounds or ``None``, or ``(column,
    frozenset)`` — or a ValueError saying what is wrong with it."""
    if not isinstance(f, tuple) or len(f) not in (2, 3):
        raise ValueError(f"a filter is (property, min, max) or (property, {{values}}), got {quoted(f)}")
    prop = _property(f[0])
    if len(f) == 3:
        if prop.kind != NUMERIC:
            raise ValueError(f"{prop.label} is categorical: filter it by values, not a range")
        lo, hi = (None if b is None else float(b) for b in f[1:])
        for b in (lo, hi):
            if b is not None and not math.isfinite(b):
                raise ValueError(f"{prop.label}: a bound must be a finite number")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"{prop.label}: the minimum {lo:g} is above the maximum {hi:g}")
        return (prop.column, lo, hi)
    if prop.kind != CATEGORICAL:
        raise ValueError(f"{prop.label} is numeric: filter it by a range min..max")
    values = frozenset(str(v) for v in f[1])
    if not values:
        raise ValueError(f"{prop.label}: name at least one value")
    return (prop.column, values)


def filter_mask(frame: pd.DataFrame, filters: Iterable[Filter]) -> np.ndarray:
    """Boolean mask of the rows of ``frame`` that pass every filter (all rows for none). A numeric property's NaN
    (a data set without band gaps, say) passes no range; a missing column is a ValueError naming it."""
    mask = np.ones(len(frame), dtype=bool)
    for f in filters:
        f = check_filter(f)
        column = f[0]
        if column not in frame:
            raise ValueError(f"this data has no {CATALOGUE[column].label}")
        if len(f) == 3:
            v = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(v)
            if f[1] is not None:
                ok &= v >= f[1]
            if f[2] is not None:
                ok &= v <= f[2]
        else:
            ok = frame[column].astype(str).isin(f[1]).to_numpy()
        mask &= ok
    return mask


def _number(text: str, what: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: {quoted(text)} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what}: a bound must be a finite number")
    return value


def parse_filters(text: str) -> list[Filter]:
    """Filters from link text: ``column:min..max`` (either bound may be left out) or ``column=a|b``, joined by
    ``;``. Empty text is no filter. A ValueError says which part is not understood."""
    if not isinstance(text, str):
        raise ValueError("filters must be text")
    if len(text) > MAX_FILTER_TEXT:
        raise ValueError(f"filter text of {len(text):,} characters; the limit is {MAX_FILTER_TEXT}")
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if len(parts) > MAX_FILTERS:
        raise ValueError(f"{len(parts)} filters; at most {MAX_FILTERS} at once")
    out: list[Filter] = []
    for part in parts:
        if "=" in part:
            column, _, values = part.partition("=")
            prop = _property(column.strip())
            vals = [v.strip() for v in values.split("|") if v.strip()]
            for v in vals:
                if len(v) > MAX_VALUE_CHARS or not _VALUE.match(v):
                    raise ValueError(f"{prop.label}: {quoted(v)} is not a value it can have")
            out.append(check_filter((prop.column, frozenset(vals))))
        elif ":" in part:
            column, _, bounds = part.partition(":")
            prop = _property(column.strip())
            if ".." not in bounds:
                raise ValueError(f"{prop.label}: write a range as min..max (either may be left out), "
                                 f"got {quoted(bounds)}")
            lo, _, hi = bounds.partition("..")
            out.append(check_filter((prop.column, _number(lo, prop.label), _number(hi, prop.label))))
        else:
            raise ValueError(f"{quoted(part)} is not a filter: write property:min..max or property=value|value")
    return out


def _bound(b: float | None) -> str:
    return "" if b is None else f"{b:g}"


def format_filters(filters: Iterable[Filter]) -> str:
    """Link text of ``filters``; :func:`parse_filters` reads it back to the same filters (numbers to 6 significant
    digits)."""
    parts = []
    for f in filters:
        f = check_filter(f)
        if len(f) == 3:
            parts.append(f"{f[0]}:{_bound(f[1])}..{_bound(f[2])}")
        else:
            parts.append(f"{f[0]}=" + "|".join(sorted(f[1])))
    return ";".join(parts)


def describe_filters(filters: Iterable[Filter]) -> str:
    """The filters in words for a caption or a status line: "0.5 ≤ band gap (eV) ≤ 3; space group ∈ {Pnma}"."""
    parts = []
    for f in filters:
        f = check_filter(f)
        label = CATALOGUE[f[0]].label
        if len(f) == 3:
            lo, hi = f[1], f[2]
            if lo is not None and hi is not None:
                parts.append(f"{lo:g} ≤ {label} ≤ {hi:g}")
            elif lo is not None:
                parts.append(f"{label} ≥ {lo:g}")
            elif hi is not None:
                parts.append(f"{label} ≤ {hi:g}")
            else:
                parts.append(f"{label} known")
        else:
            parts.append(f"{label} ∈ {{{', '.join(sorted(f[1]))}}}")
    return "; ".join(parts)


#: marker sizes (px) of a map sized by a property: the 1st percentile draws at the first, the 99th at the second
SIZE_RANGE = (2.0, 12.0)


def marker_sizes(values: np.ndarray, size_range: tuple[float, float] = SIZE_RANGE) -> np.ndarray:
    """Marker sizes for a numeric property: linear between its 1st and 99th percentiles (outliers clipped, so one
    huge cell does not shrink all others), the smallest size for NaN (a material without the property)."""
    v = np.asarray(values, dtype=float)
    lo_px, hi_px = size_range
    out = np.full(len(v), lo_px)
    ok = np.isfinite(v)
    if ok.any():
        lo, hi = np.percentile(v[ok], [1, 99])
        scaled = np.clip((v[ok] - lo) / (hi - lo), 0, 1) if hi > lo else np.full(ok.sum(), 0.5)
        out[ok] = lo_px + scaled * (hi_px - lo_px)
    return out
