"""Find materials as a researcher names them: by id, by formula (reduced or not), or by the elements they contain.

    "mp-555838"                      one material by its id
    "SnPO3F", "Zr2P4H4O12"           every polymorph with that reduced formula (ZrP2(HO3)2 and ZrP2H2O6 are the same)
    "P F -Si", "contains P and F, no Si", "P,F,!Si"
                                     every material containing P and F and no Si

A query is read in that order: an id of the data set wins, then a formula that pymatgen reads (only when the query
has digits or parentheses, or is a single compound-like token, so that "P F" is an element set), then an element
set. Anything else is a :class:`SearchError` that says what was not understood. Pure functions over a materials
frame (``material_id``, ``formula``, ``elements``), so the dashboard, the notebooks and the tests share them.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

#: the longest query read (a query is user text; anything longer is refused, not truncated silently)
MAX_QUERY = 200
#: the most rows a search returns (the result list shows them; the count says how many matched)
MAX_RESULTS = 200
_EXCLUDE_WORDS = {"no", "not", "without", "except", "excluding"}
_FILLER_WORDS = {"contains", "containing", "contain", "with", "and", "or", "has", "having", "elements", "element"}


class SearchError(ValueError):
    """A query that cannot be read; the message says why, in words a user can act on."""


@dataclass
class SearchResult:
    kind: str  # "id", "formula" or "elements"
    rows: np.ndarray  # matching row positions, at most MAX_RESULTS
    n_matches: int
    description: str  # what was searched for, in words
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def _symbols() -> frozenset[str]:
    from pymatgen.core.periodic_table import Element

    return frozenset(e.symbol for e in Element)


def reduced(formula: str) -> str | None:
    """pymatgen's reduced formula of ``formula``, None if it is not a formula of known elements."""
    from pymatgen.core import Composition

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comp = Composition(formula)
        if not len(comp) or any(el.symbol not in _symbols() for el in comp.elements):
            return None
        return comp.reduced_formula
    except Exception:  # noqa: BLE001 — pymatgen raises assorted errors for text that is not a formula
        return None


def _element_query(text: str) -> tuple[list[str], list[str]]:
    """(include, exclude) element symbols of an element-set query; SearchError naming what is not an element."""
    tokens = re.findall(r"[!\-]?[A-Za-z]+", text.replace(",", " "))
    include, exclude, negate, unknown = [], [], False, []
    for tok in tokens:
        low = tok.lower().lstrip("!-")
        if low in _EXCLUDE_WORDS:
            negate = True
            continue
        if low in _FILLER_WORDS:
            continue
        neg = negate or tok[0] in "!-"
        sym = tok.lstrip("!-")
        sym = sym[:1].upper() + sym[1:].lower()
        if sym not in _symbols():
            unknown.append(tok)
            continue
        (exclude if neg else include).append(sym)
    if unknown:
        raise SearchError(f"not an element symbol, formula or material id: {', '.join(unknown[:5])}")
    if not include and not exclude:
        raise SearchError("type a material id (mp-…), a formula (SnPO3F) or elements (P F -Si)")
    return sorted(set(include)), sorted(set(exclude))


def search(frame: pd.DataFrame, query: str, formula_index: dict[str, np.ndarray] | None = None) -> SearchResult:
    """Rows of ``frame`` matching ``query`` (see the module docstring). ``formula_index`` (reduced formula → rows)
    saves recomputing every material's reduced formula; :func:`formula_index` builds it once."""
    text = (query or "").strip()
    if not text:
        raise SearchError("type a material id (mp-…), a formula (SnPO3F) or elements (P F -Si)")
    if len(text) > MAX_QUERY:
        raise SearchError(f"a query of {len(text):,} characters is too long (at most {MAX_QUERY})")
    ids = frame["material_id"].astype(str).str.lower().to_numpy()
    hit = np.flatnonzero(ids == text.lower())
    if len(hit):
        return SearchResult("id", hit[:1], 1, f"material {frame['material_id'].iat[int(hit[0])]}")
    looks_like_formula = bool(re.search(r"[\d()]", text)) or (" " not in text and "," not in text and
                                                             len(re.findall(r"[A-Z][a-z]?", text)) > 1)
    if looks_like_formula and not re.search(r"[!\-,]|\s", text):
        red = reduced(text)
        if red is not None:
            index = formula_index if formula_index is not None else build_formula_index(frame)
            rows = np.sort(index.get(red, np.zeros(0, int)))
            return SearchResult("formula", rows[:MAX_RESULTS], int(len(rows)), f"formula {red}")
    include, exclude = _element_query(text)
    sets = frame["elements"].to_numpy()
    mask = np.array([all(e in s for e in include) and not any(e in s for e in exclude) for s in sets], dtype=bool)
    rows = np.flatnonzero(mask)
    words = (f"containing {', '.join(include)}" if include else "") + \
        ((" and " if include else "") + f"no {', '.join(exclude)}" if exclude else "")
    return SearchResult("elements", rows[:MAX_RESULTS], int(len(rows)), f"materials {words}", include, exclude)


def build_formula_index(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Reduced formula (normalised with pymatgen; as written when pymatgen cannot read it) → row positions: the
    candidates of a formula search, an upload's "already in the data set" and a material's polymorphs."""
    formulas = frame["formula"].astype(str).to_numpy()
    normal = {f: reduced(f) or f for f in set(formulas)}  # one parse per distinct formula
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(formulas):
        groups.setdefault(normal[f], []).append(i)
    return {k: np.asarray(v, dtype=int) for k, v in groups.items()}
