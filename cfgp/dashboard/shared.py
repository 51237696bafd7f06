"""What every browser session reads (built once per server) and what each session owns.

A classroom opens the dashboard ten times at once on a 2-core machine, so everything that does not
depend on the session — the results frame, the t-SNE coordinates, per-element membership, the
colour limits, the committed active-learning runs — is computed once per server
(:func:`server_data`) and shared read-only. A session owns only its widgets, its Bokeh models and
a :class:`SessionState`, and releases them when its browser tab closes (:func:`on_session_end`).
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param

from cfgp.artefacts import DEFAULT_RUN
from cfgp.dashboard import untrusted
from cfgp.crystal_view import cell_sketch
from cfgp.embedding import TSNESettings, run_tsne
from cfgp.neighbours import LatentNeighbours
from cfgp.pipeline import Run, load_al_histories
from cfgp.properties import CATALOGUE, NUMERIC, filter_mask
from cfgp.results import load_results
from cfgp.search import build_formula_index, search

#: Numeric colourings of a map: frame column → (colour-bar title, palette name, symmetric around 0)
NUMERIC_COLOURS = {
    "dft": ("DFT E_f (eV/atom)", "Viridis256", False),
    "gp": ("GP E_f (eV/atom)", "Viridis256", False),
    "sigma": ("GP σ (eV/atom)", "Plasma256", False),
    "residual": ("residual GP − DFT (eV/atom)", "signed", True),
    "z": ("z = (GP − DFT) / σ", "signed", True),
}
#: The data set's own numeric properties a map may be coloured by (cfgp.properties' catalogue): frame column →
#: (colour-bar title, palette name, symmetric); their values travel to a browser only when chosen
PROPERTY_COLOURS = {c: (p.label, "Viridis256", False) for c, p in CATALOGUE.items()
                    if p.kind == NUMERIC and c not in NUMERIC_COLOURS}
#: how much of a mistyped element box is quoted back (a symbol has at most 3 letters)
ELEMENT_QUOTE = 20


def element_symbols() -> frozenset[str]:
    from pymatgen.core.periodic_table import Element

    return frozenset(e.symbol for e in Element)


def parse_element(text: str) -> str:
    """A validated element symbol from user text ('li' → 'Li'); ValueError with a readable reason."""
    s = (text or "").strip()
    if not s:
        raise ValueError("type an element symbol, e.g. Li or P")
    if len(s) > 3 or not s.isalpha():
        raise ValueError(f"{untrusted.quoted(s, ELEMENT_QUOTE)} is not an element symbol (one capital letter, "
                         "optionally a small one: Li, P)")
    sym = s[0].upper() + s[1:].lower()
    if sym not in element_symbols():
        raise ValueError(f"{untrusted.quoted(s, ELEMENT_QUOTE)} is not an element symbol")
    return sym


def reduced_formula(formula: str) -> str:
    """pymatgen's reduced formula of a formula string (as written when pymatgen cannot read it)."""
    from pymatgen.core import Composition

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Composition(formula).reduced_formula
    except Exception:  # an odd formula string: compare it as written
        return str(formula)


#: the Panel extensions every page (server or notebook) loads
EXTENSIONS = ("tabulator",)  # plotly.js loads on demand, see details.py


class ServerData:
    """Read-only results of one run folder, shared by all sessions of a server."""

    def __init__(self, run_dir: str | Path):
        self.run = Run(run_dir)
        #: the run's results (cfgp.results): GP, predictions, domain model and σ calibration, the results frame
        self.results = load_results(self.run)
        self.gp = self.results.gp
        self.applicability = self.results.applicability
        self.domain_check = self.results.check
        self.frame: pd.DataFrame = self.results.frame
        frame = self.frame
        self.X = self.run.latents()
        self.Xs = self.gp.scaler_.transform(np.nan_to_num(self.X))
        self.xy = np.asarray(run_tsne(self.run, TSNESettings(), reader=True), dtype=float)  # run left as is
        self.al_histories = load_al_histories(self.run)
        #: committed AL runs (the run folder's own, not the user's): name built from the header's settings →
        #: (header, records)
        self.committed: dict[str, tuple[dict, list[dict]]] = {}
        for saved in self.run.al_histories(committed_only=True):
            header, records = saved.read()
            if header is not None and len(records) > 1:
                self.committed[saved.stem] = (header, records)
        self.row_of_id: dict[str, int] = dict(zip(frame.material_id, frame.row))
        self._sketches: dict[int, str] = {}  # row → cell sketch (SVG), shared by every session
        self.lock = threading.Lock()  # TensorFlow model building / featurising: one at a time

    # ------------------------------------------------------------ lookups
    def sketch(self, row: int) -> str:
        """The SVG sketch of material ``row``'s cell (:func:`cfgp.crystal_view.cell_sketch`), made once per server."""
        row = int(row)
        if row not in self._sketches:
            self._sketches[row] = cell_sketch(self.run.materials.structure(row))
        return self._sketches[row]

    @cached_property
    def neighbours(self) -> LatentNeighbours:
        """Nearest training materials in the GP's latent space (the compare view's numbers; built on first use)."""
        return LatentNeighbours(self.gp, self.X, self.run.split.train, self.run.split.test,
                                self.frame["material_id"].to_numpy())

    @cached_property
    def element_rows(self) -> dict[str, np.ndarray]:
        """Element symbol → sorted rows of the materials that contain it."""
        out: dict[str, list[int]] = {}
        for i, els in enumerate(self.run.materials.frame["elements"]):
            for e in els:
                out.setdefault(e, []).append(i)
        return {e: np.asarray(r, dtype=int) for e, r in out.items()}

    @cached_property
    def formula_rows(self) -> dict[str, np.ndarray]:
        """Reduced formula (normalised with pymatgen) → rows of the materials with it: an upload's candidates for
        "already in the data set", and a material's polymorphs."""
        return build_formula_index(self.frame)

    @cached_property
    def search_frame(self) -> pd.DataFrame:
        """What a search reads: id, formula and element set of every material, in frame order."""
        frame = self.frame[["material_id", "formula"]].copy()
        frame["elements"] = self.run.materials.frame["elements"].to_numpy()
        return frame

    def find(self, query: str):
        """:func:`cfgp.search.search` over this run's materials (SearchError for a query it cannot read)."""
        return search(self.search_frame, query, self.formula_rows)

    def contains(self, element: str) -> np.ndarray:
        """Boolean mask of materials containing ``element`` (a validated symbol)."""
        mask = np.zeros(len(self.frame), bool)
        mask[self.element_rows.get(element, np.zeros(0, int))] = True
        return mask

    @cached_property
    def colour_limits(self) -> dict[str, tuple[float, float]]:
        out = {}
        for key, (_, _, symmetric) in {**NUMERIC_COLOURS, **PROPERTY_COLOURS}.items():
            v = self.frame[key].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            if symmetric:
                lim = float(np.percentile(np.abs(v), 98)) if len(v) else 1.0
                out[key] = (-lim, lim)
            else:
                lo, hi = np.percentile(v, [1, 99]) if len(v) else (0.0, 1.0)
                out[key] = (float(lo), float(hi))
        return out

    @cached_property
    def map_columns(self) -> dict[str, np.ndarray]:
        """Columns of the per-session map source; arrays are shared by reference between sessions."""
        f = self.frame
        return {
            "x": self.xy[:, 0], "y": self.xy[:, 1], "row": f["row"].to_numpy(),
            "material_id": f["material_id"].to_numpy(dtype=object), "formula": f["formula"].to_numpy(dtype=object),
            "dft": f["dft"].to_numpy(float), "gp": f["gp"].to_numpy(float), "sigma": f["sigma"].to_numpy(float),
            "sigma_cal": f["sigma_cal"].to_numpy(float), "residual": f["residual"].to_numpy(float), "z": f["z"].to_numpy(float),
            "split": np.where(f["split"].to_numpy() == "", "unused", f["split"].to_numpy()).astype(object),
            "domain": f["domain_label"].to_numpy(dtype=object),
            **{c: f[c].to_numpy(float) for c in PROPERTY_COLOURS},
        }

    @cached_property
    def browser_map_columns(self) -> dict[str, np.ndarray]:
        """``map_columns`` with floats as float32: what travels to each browser (half the bytes; display
        precision is ample)."""
        return {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in self.map_columns.items()}

    def featurizer(self):
        """The run's MEGNet, built on first use (~20 s once per server), then shared."""
        with self.lock:
            if getattr(self, "_featurizer", None) is None:
                self._featurizer = self.run.featurizer()
            return self._featurizer


_DATA: dict[str, ServerData] = {}
_DATA_LOCK = threading.Lock()


def server_data(run_dir: str | Path | None = None) -> ServerData:
    """The shared data of a run folder (default: $CFGP_RUN or the embedded default), built once."""
    key = str(Path(run_dir or os.environ.get("CFGP_RUN", DEFAULT_RUN)).resolve())
    with _DATA_LOCK:
        if key not in _DATA:
            _DATA[key] = ServerData(key)
        return _DATA[key]


class SessionState(param.Parameterized):
    """Per-session state that several tabs read: one instance per browser session."""

    selected = param.List(default=[], doc="rows of the results frame brushed or clicked on any plot")
    picked = param.List(default=[], doc="material ids labelled by this session's active-learning run")
    focus = param.Integer(default=None, allow_None=True, doc="row of the one material whose details are shown")
    filters = param.List(default=[], doc="property filters (cfgp.properties tuples) every tab applies")
    filter_mask = param.Parameter(default=None, doc="boolean mask of the rows passing `filters` (None: all)")

    def set_filters(self, frame: pd.DataFrame, filters: list) -> None:
        """Set the session's filters and their mask over ``frame`` (ValueError from cfgp.properties when bad)."""
        mask = filter_mask(frame, filters) if filters else None
        self.param.update(filters=list(filters), filter_mask=mask)

    def select(self, rows) -> None:
        """Set the shared selection (no event when nothing changes: plots echo selections back)."""
        rows = sorted(int(r) for r in rows)
        if rows != self.selected:
            self.selected = rows


_cleanups: dict[str, list] = {}
_heap_frozen = False


def freeze_server_heap(force: bool = False) -> bool:
    """Once per server process, before the first browser session builds its page: collect, then move every object
    alive (the imported libraries, the run's :class:`ServerData`) to the collector's permanent generation.

    Why: a full collection walks every tracked object (~740,000 with the predictor warmed up and two sessions:
    TensorFlow, pymatgen, Bokeh, the committed AL histories), 0.40 s on the quiet 2-core machine and more under
    load, and the event loop, so every browser session, waits for it. Each session ends with one
    (:func:`_run_cleanups`) and Python runs its own now and then; after the freeze they walk only what came
    later: 0.11 s (``benchmarks/session_gc.py``, docs/measurements/session_gc.json). What is frozen is the
    server's own state, which lives as long as the process, plus the first session's Bokeh document made just
    before (kept until the server stops: a few objects, its widgets and plots come after). Only in a server
    session (or ``force``): a notebook kernel's heap is left alone. Returns whether this call froze it."""
    global _heap_frozen
    doc = pn.state.curdoc
    if _heap_frozen or not (force or (doc is not None and getattr(doc, "session_context", None) is not None)):
        return False
    gc.collect()
    gc.freeze()
    _heap_frozen = True
    return True


def on_session_end(fn) -> None:
    """Run ``fn()`` when this browser session ends (stop timers, drop per-session arrays)."""
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return
    sid = doc.session_context.id
    if sid not in _cleanups:
        _cleanups[sid] = []
        pn.state.on_session_destroyed(_run_cleanups)
    _cleanups[sid].append(fn)


def _run_cleanups(session_context) -> None:
    for fn in _cleanups.pop(session_context.id, []):
        try:
            fn()
        except Exception:  # a failing cleanup must not stop the others
            pass
    gc.collect()
    try:  # hand freed memory back to the OS so a closed classroom does not leave the server bloated
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def in_document(fn) -> None:
    """Run ``fn`` where Bokeh accepts data-source edits (``source.data[col] = …``, ``stream``, ``patch``).

    Panel processes widget events with the document unlocked and forwards plain property changes itself,
    but column-data events raised there fail ("_pending_writes should be non-None"). The session's next
    tick holds the document lock, so source edits (and the property changes that go with them) are
    made there; outside a server session (notebooks, tests) ``fn`` runs at once.
    """
    doc = pn.state.curdoc
    if doc is None or getattr(doc, "session_context", None) is None:
        fn()
        return
    doc.add_next_tick_callback(fn)


def _session_loop(doc):
    """The event loop serving ``doc`` (None outside a Bokeh server)."""
    try:
        return doc.session_context.server_context.application_context.io_loop
    except AttributeError:
        return None


def on_session_tick(doc, fn) -> None:
    """Run ``fn`` on ``doc``'s next tick with ``doc`` current: safe from a worker thread, and a no-op once the
    session has closed (nothing is left to show the result to); at once when there is no document.

    A worker thread never calls ``doc.add_next_tick_callback`` itself: while the event loop holds the document
    (Panel does so around every event) the callback is parked in the hold's event list, and a worker appending
    to that list while the loop drains it (``events = list(held); held = []``) loses the callback for good --
    a live active-learning step then never lands. The worker hands the call to the loop (tornado's
    ``add_callback`` is thread-safe), so the hold only ever changes on its own thread."""
    if doc is None:
        fn()
        return
    from panel.io.document import unlocked
    from panel.io.state import set_curdoc
    from tornado.ioloop import IOLoop

    def run():
        # unlocked(): the changes go out the way Panel's own do -- queued behind messages still waiting for a busy
        # socket, never past them. A plain Bokeh model changed outside it (the Predict tab's cross) was sent at once
        # and could overtake an older queued change of the same model: the cross of a new prediction was then
        # emptied by the previous upload's "clear" arriving after it (seen once in CI, in the quick-reupload test)
        with set_curdoc(doc), unlocked():
            fn()

    def post():
        try:
            doc.add_next_tick_callback(run)
        except RuntimeError:  # "Attempting to add session callback to already-destroyed Document"
            pass

    loop = _session_loop(doc)
    if loop is None or IOLoop.current(instance=False) is loop:
        post()
    else:
        loop.add_callback(post)


def note(text: str) -> pn.pane.Markdown:
    """A tab's explanatory paragraph (one size and margin on every tab)."""
    return pn.pane.Markdown(text, styles={"font-size": "0.95em"}, margin=(0, 10))


def controls(*widgets, css_classes: list[str] | None = None):
    """A tab's row of widgets that wraps onto a second line when the window (or the space beside the lesson
    panel) is narrower than the row: a plain Row's minimum width is the sum of its widgets' and pushed the whole
    tab wider than a 1366-px window."""
    return pn.FlexBox(*widgets, flex_wrap="wrap", align_items="flex-end", sizing_mode="stretch_width",
                      css_classes=css_classes or [])
