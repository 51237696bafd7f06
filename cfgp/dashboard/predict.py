"""Predict tab: upload a CIF, get the GP's formation energy ± σ, whether the material is inside the model's
domain of applicability (a prominent warning with the reason when not; cfgp.uncertainty.applicability), see where it falls
on the latent map, and learn whether the crystal is already in the data set.

The map is drawn from the session's shared map source (the 16k materials are already in the browser);
the uploaded material is a one-row source (``predict-cross-source``) whose data is replaced on success
and emptied on failure, so a stale cross never outlives its message. Parsing, featurising and the GP
run in a worker thread and post their results back through ``on_session_tick``: a 20 s network
load or a slow CIF never stalls the other sessions' event loop. ``data.lock`` serialises the TensorFlow
model use across sessions.
"""

from __future__ import annotations

import io
import re
import threading
import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.models import FileInput as BkFileInput

from cfgp.dashboard.downloads import csv_bytes, download_button
from cfgp.dashboard.bokeh_figures import Colouring, hover, map_figure
from cfgp.dashboard.theme import current_options
from cfgp.dashboard.shared import ServerData, SessionState, note, on_session_end, on_session_tick
from cfgp.data import MAX_CIF_CHARS, DataError, parse_cif
from cfgp.embedding import place
from cfgp.palette import IN_DOMAIN_MARK, IN_DOMAIN_MARK_DARK, OUT_OF_DOMAIN_MARK
from cfgp.structure_match import SAME_MATERIAL, Match, find_match
from cfgp.uncertainty.embedding_draws import spread_text
from cfgp.dashboard import untrusted

MAX_UPLOAD_BYTES = MAX_CIF_CHARS  # as for any CIF cfgp reads
#: the upload limit as the page says it
UPLOAD_LIMIT = f"{MAX_UPLOAD_BYTES / 1e6:g} MB"
#: the upload widget's class: its handle in the page and in the session's document (Predict._forget_upload)
UPLOAD_CLASS = "predict-upload"
#: Runs in the browser when the input's value changes. Once the browser has sent a file (the patch is built when
#: the value is set), the input forgets it in the browser -- silently, so nothing is sent back: choosing the same
#: (perhaps edited) file again is then a change the browser reports and sends. (The server's FileInput.clear()
#: made the browser send an empty value back; that crossed a file chosen right after, Panel merged the two into
#: the empty value, and the file was never predicted.) The server forgets its copy too (Predict._forget_upload).
FORGET_SENT_FILE_JS = """
if (!cb_obj.value || cb_obj.value.length == 0) { return; }
setTimeout(() => {
  cb_obj.setv({value: "", filename: "", mime_type: ""}, {silent: true});
  const view = Bokeh.index.find_one(cb_obj);
  if (view != null && view.input_el != null) { view.input_el.value = ""; }
}, 0);
"""
PLACEHOLDER = f"Upload a CIF file (up to {UPLOAD_LIMIT}) to predict its formation energy."
EMPTY_CROSS = {"x": [], "y": [], "label": [], "domain": [], "colour": []}
#: the prediction download's columns → headers (units in the headers, like every other download)
PREDICTION_COLUMNS = {"file": "file", "formula": "formula", "gp_ef": "predicted E_f (eV/atom)",
                      "sigma": "sigma, calibrated (eV/atom)", "sigma_raw": "sigma, GP (eV/atom)",
                      "sigma_emb": "sigma_emb, unseen-element draws (eV/atom)",
                      "lower_2sigma": "E_f - 2 sigma (eV/atom)", "upper_2sigma": "E_f + 2 sigma (eV/atom)",
                      "in_domain": "in domain", "domain": "domain (reason)", "map_x": "map x", "map_y": "map y",
                      "run": "model (run folder)"}


def safe_stem(name: str) -> str:
    """A file name's stem reduced to letters, digits, '-' and '_' (it goes into the download's name)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem)[:60].strip("_")
    return stem or "upload"


# ---------------------------------------------------------------- per-server lookups (built on first use)
@lru_cache(maxsize=4)
def placeable_rows(data: ServerData) -> np.ndarray:
    """Rows with both a latent and a map position (the reference points for placing a new material)."""
    return np.flatnonzero(np.isfinite(data.X).all(axis=1) & np.isfinite(data.xy).all(axis=1))


_WARM: set[int] = set()
_WARM_LOCK = threading.Lock()


def ready_featurizer(data: ServerData):
    """The run's MEGNet, loaded and its forward pass traced (once for every graph size, ~2 s on 2 cores) on the
    smallest material that places on the map, done once per server while the user is told the network is
    loading, so that every later prediction takes well under a second."""
    fz = data.featurizer()
    with _WARM_LOCK:
        if id(data) not in _WARM:
            ok = placeable_rows(data)
            if len(ok):
                sizes = data.frame["nsites"].to_numpy()
                for r in ok[np.argsort(sizes[ok], kind="stable")]:  # the smallest that parses and featurises
                    try:
                        structure = data.run.materials.structure(int(r))
                        with data.lock:
                            fz.transform([structure])
                    except DataError:
                        continue
                    break
            _WARM.add(id(data))
    return fz


_STARTED: set[int] = set()


def warm_up_in_background(data: ServerData, delay: float = 5.0) -> None:
    """Load and trace the network once per server in a background thread, shortly after the first page,
    so that a class's first upload does not wait ~20 s for it; the formula lookup first (0.67 s on the default),
    since every tab's material details use it."""
    with _WARM_LOCK:
        if id(data) in _STARTED:
            return
        _STARTED.add(id(data))

    def work():
        time.sleep(delay)
        try:
            data.formula_rows
            ready_featurizer(data)
        except Exception:  # the Predict tab reports problems when it is used
            pass

    threading.Thread(target=work, daemon=True, name="cfgp-warm-up").start()


def match_upload(data: ServerData, structure, formula: str, xs: np.ndarray) -> Match:
    """Whether an upload is already in the data set (:func:`cfgp.structure_match.find_match` over the materials of
    its reduced formula; ``xs`` its standardised latent)."""
    return find_match(data.run.materials, data.formula_rows.get(formula), data.Xs, structure, xs)


def match_text(data: ServerData, formula: str, match: Match) -> str:
    if match.row is not None:
        r = data.frame.iloc[match.row]
        dft = "unlabelled" if not np.isfinite(r.dft) else f"DFT E_f {r.dft:.3f} eV/atom"
        mid = untrusted.text(r.material_id)
        if match.same_material:
            return (f"**Already in the data set: {mid}** ({dft}, split {r.split or 'unused'}; "
                    f"the GP's value for it is {r.gp:.3f} ± {r.sigma:.3f} eV/atom).")
        return (f"**Same structure type as {mid}** ({dft}), but not the same material within DFT-relaxation "
                f"tolerances: its lattice lengths differ by up to {100 * match.length_diff:.1f} % and its volume per "
                f"atom by {100 * match.volume_diff:+.1f} % (the same material would be within "
                f"{100 * SAME_MATERIAL['ltol']:.0f} %).")
    if match.n_candidates == 0:
        return f"Not in the data set: no material with formula {untrusted.text(formula)}."
    checked = (f"all {match.n_candidates}" if match.compared >= match.n_candidates
               else f"the {match.compared} with the nearest latents of {match.n_candidates}")
    return (f"Not in the data set: no structure match among {checked} materials with formula "
            f"{untrusted.text(formula)}.")


def domain_text(reason: str, inside: bool, sigma_emb: float = float("nan"), mean_from_draws: bool = False) -> str:
    """What the user reads right under E_f ± σ: a prominent warning when the material is out of the domain (with
    σ_emb when its never-trained elements' embeddings were drawn, and whether E_f is the mean over the draws)."""
    if inside:
        return ("<small>In the model's domain: composition, elements and latent vector like the training "
                "materials'.</small>")
    drawn = f" ({untrusted.text(spread_text(sigma_emb, mean_from_draws))})" if np.isfinite(sigma_emb) else ""
    return (f'<div class="domain-warning" style="background:#f8d7da;border:2px solid {OUT_OF_DOMAIN_MARK};'
            'color:#842029;'
            'padding:8px 12px;border-radius:4px;font-size:1.05em">⚠ <b>Out of domain: do not trust this value.</b> '
            f"{untrusted.text(reason)}. σ has been widened for it{drawn}, but a material this unlike the training "
            "set can be predicted wrong by more.</div>")


def upload_text(name: str, value: bytes | None) -> str:
    """The text of an uploaded CIF, or DataError saying why it cannot be used (empty, too large, not UTF-8).

    The upload handler's first step, on the event loop; the worker thread then parses the text with
    :func:`cfgp.data.parse_cif`, which rejects impossible crystals (overlapping atoms, a 0.1 Å cell, unknown
    elements, absurd coordinates) before any graph is built, and the featuriser bounds the graph's size —
    the same checks as ``cfgp predict`` and ``cfgp train``.
    """
    if value is None or len(value) == 0:
        raise DataError(f"{name} is empty (0 bytes)")
    if len(value) > MAX_UPLOAD_BYTES:
        raise DataError(f"{name} is {len(value) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{name} is not a text CIF file (not UTF-8 text)") from None
    if not text.strip():
        raise DataError(f"{name} is empty (only white space)")
    return text


def upload_structure(name: str, text: str):
    """The upload's crystal (worker thread): :func:`cfgp.data.parse_cif`, its message prefixed by the file name."""
    try:
        return parse_cif(text)
    except DataError as exc:
        raise DataError(f"{name}: {exc}") from None


# ---------------------------------------------------------------- the tab
class Predict(pn.viewable.Viewer):
    """Upload a CIF → E_f ± σ, a cross on the latent map and an 'already in the data set' check."""

    busy = param.Boolean(default=False, doc="a prediction of this session is running")

    def __init__(self, data: ServerData, state: SessionState, source: ColumnDataSource, **params):
        params.setdefault("name", "Predict")
        super().__init__(**params)
        self.data, self.state, self.source = data, state, source
        self.upload = pn.widgets.FileInput(accept=".cif", multiple=False, label="CIF file", css_classes=[UPLOAD_CLASS])
        #: the last prediction as a table row (PREDICTION_COLUMNS), for its download; None before one
        self.record: dict | None = None
        self.download = download_button("Download prediction (CSV)", "prediction.csv", self._prediction_csv,
                                        "prediction-download", visible=False, width=240)
        self.result = pn.pane.Markdown(PLACEHOLDER, name="prediction", css_classes=["prediction"],
                                       sizing_mode="stretch_width")
        self.cross = ColumnDataSource(EMPTY_CROSS, name="predict-cross-source")
        self.fig, self.renderer = map_figure(source, "Latent map coloured by DFT E_f; × marks your material",
                                             "predict-map", height=480)
        self.colouring = Colouring(data, self.fig, self.renderer, source, "predict-map")
        self.colouring.numeric("dft")
        # red when the material is out of the model's domain, as the warning beside E_f ± σ; in the domain black
        # (white on the dark theme's plot)
        self._in_domain_mark = IN_DOMAIN_MARK_DARK if current_options().dark else IN_DOMAIN_MARK
        cross = self.fig.scatter("x", "y", source=self.cross, marker="x", size=22, line_width=4,
                                 line_color="colour", name="predict-cross")
        self.fig.add_tools(hover(renderers=[self.renderer]),
                           HoverTool(tooltips=[("your material", "@label"), ("in domain", "@domain")],
                                     renderers=[cross]))
        # onlychanged=False: when the same file again arrives before _forget_upload's empty value is processed,
        # Panel merges the two into the value the parameter still holds, which param would otherwise swallow; one
        # call per upload (value and filename come in one batch)
        self.upload.param.watch(self._on_upload, ["value", "filename"], onlychanged=False)
        self.upload.jscallback(value=FORGET_SENT_FILE_JS)
        self._job = 0  # only the latest upload may write its results
        self._closed = False
        on_session_end(self._close)

    def _close(self) -> None:
        self._closed = True
        self._job += 1

    # ------------------------------------------------------------ upload
    def _on_upload(self, *events) -> None:
        value, name = self.upload.value, self.upload.filename
        if value is None and not name:
            return  # the input was emptied (by the user, or by _forget_upload below)
        self._forget_upload()
        name = name or "upload.cif"
        self._job += 1
        job = self._job
        self.cross.data = dict(EMPTY_CROSS)  # the old cross belongs to the old file
        try:
            text = upload_text(name, value)
        except DataError as exc:
            self._fail(str(exc))
            return
        cold = getattr(self.data, "_featurizer", None) is None or id(self.data) not in _WARM
        self.result.object = (f"Reading **{untrusted.text(name)}**…"
                              + (" The first prediction on this server loads the network (~20 s)." if cold else ""))
        self.busy = True
        doc = pn.state.curdoc
        threading.Thread(target=self._work, args=(job, doc, name, text), daemon=True, name="cfgp-predict").start()

    def _forget_upload(self) -> None:
        """Empty the server's copy of the input (the Bokeh model), as the browser empties its own: Bokeh ignores a
        value equal to the one it holds, so the same file again would otherwise never reach ``_on_upload``. Set
        here, on the server, the empty value comes back to this view as one change (ignored above) and is queued
        before any file the browser sends next, so it never replaces one."""
        doc = pn.state.curdoc
        if doc is None:
            return
        for model in doc.select({"type": BkFileInput}):
            if UPLOAD_CLASS in (model.css_classes or []):
                for prop in ("value", "filename", "mime_type"):
                    model.set_from_json(prop, "")

    def _post(self, job: int, doc, fn) -> None:
        """Run ``fn`` on the session's event loop if this upload is still the latest and the session open."""
        if self._closed or job != self._job:
            return

        def guarded():
            if not self._closed and job == self._job:
                fn()
        on_session_tick(doc, guarded)

    def _fail(self, reason: str) -> None:
        self.result.object = f"**Could not use this file.** {untrusted.text(reason)}"
        self.cross.data = dict(EMPTY_CROSS)
        self.record, self.download.visible = None, False
        self.busy = False

    def _prediction_csv(self) -> io.BytesIO:
        """The prediction shown, one row with units in the headers (what the text says, as numbers)."""
        return csv_bytes(pd.DataFrame([self.record or {}], columns=list(PREDICTION_COLUMNS)), PREDICTION_COLUMNS)

    def _work(self, job: int, doc, name: str, text: str) -> None:
        """Parse, featurise, predict, place, then look for the same crystal in the data set (worker thread)."""
        d = self.data
        started = time.perf_counter()
        try:
            structure = upload_structure(name, text)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                formula = structure.composition.reduced_formula
            if getattr(d, "_featurizer", None) is None or id(d) not in _WARM:
                self._post(job, doc, lambda: setattr(
                    self.result, "object", f"Parsed **{untrusted.text(formula)}** ({len(structure)} atoms per cell); "
                                           "loading the network… (~20 s, once per server)"))
            fz = ready_featurizer(d)
            graphs = fz.to_graphs([structure], names=[name], on_error="raise")[0]
            with d.lock:  # TensorFlow: one model call at a time across sessions
                X = fz.transform_graphs(graphs)
            # as `cfgp predict` does: GP mean, the domain check and the σ it calibrates (the GP's own σ shown too;
            # σ_emb drawn for an oxide with a never-trained element, each forward pass of the draws under the lock)
            pred = d.applicability.predict(d.gp, X, [[el.symbol for el in structure.composition.elements]],
                                           featurizer=fz, graphs=graphs, lock=d.lock)
            check, std = pred["check"], pred["sigma_raw"]
            inside = bool(check.in_domain[0])
            s_cal, mean = float(pred["sigma"][0]), pred["mean"]
            xs = d.gp.scaler_.transform(X)
            ref = placeable_rows(d)
            pos = place(d.Xs[ref], d.xy[ref], xs)[0]
            ms = 1000 * (time.perf_counter() - started)
            m, s = float(mean[0]), s_cal
            head = (f"### {untrusted.text(formula)} ({untrusted.text(name)})\n"
                    f"Predicted formation energy **{m:.3f} ± {s:.3f} eV/atom** (95 % interval {m - 2 * s:.3f} to "
                    f"{m + 2 * s:.3f}; the GP's own σ is {float(std[0]):.3f}).\n\n"
                    + domain_text(check.reason[0], inside, float(pred["sigma_emb"][0]),
                                  bool(pred["mean_from_draws"][0])) +
                    "\n\nThe × on the map sits among the materials with the nearest latents.")
            timing = f"\n\n<small>prediction {ms:,.0f} ms</small>"

            record = {"file": name, "formula": formula, "gp_ef": m, "sigma": s, "sigma_raw": float(std[0]),
                      "sigma_emb": float(pred["sigma_emb"][0]),
                      "lower_2sigma": m - 2 * s, "upper_2sigma": m + 2 * s, "in_domain": inside,
                      "domain": "yes" if inside else str(check.short[0]), "map_x": float(pos[0]),
                      "map_y": float(pos[1]), "run": str(d.run.dir.name)}

            def show_prediction():
                self.result.object = head + "\n\nChecking whether it is already in the data set…" + timing
                self.record, self.download.filename = record, f"prediction-{safe_stem(name)}.csv"
                self.download.visible = True
                self.cross.data = {"x": [float(pos[0])], "y": [float(pos[1])], "label": [f"{formula} ({name})"],
                                   "domain": ["yes" if inside else f"NO: {check.short[0]}"],
                                   "colour": [self._in_domain_mark if inside else OUT_OF_DOMAIN_MARK]}
            self._post(job, doc, show_prediction)

            found = match_text(d, formula, match_upload(d, structure, formula, xs[0]))

            def show_match():
                self.result.object = head + "\n\n" + found + timing
                self.busy = False
            self._post(job, doc, show_match)
        except DataError as exc:
            reason = str(exc)
            self._post(job, doc, lambda: self._fail(reason))
        except Exception as exc:  # never a traceback: say what went wrong
            reason = f"{type(exc).__name__} – {exc}"
            self._post(job, doc, lambda: self._fail(f"Unexpected problem: {reason}"))

    def __panel__(self):
        return pn.Column(
            note(f"**Predict a new material.** Upload a CIF (up to {UPLOAD_LIMIT}): MEGNet turns it into a latent "
                 "vector, the GP predicts its formation energy with a calibrated σ, a red warning says when the material is "
                 "outside the model's domain (not an oxide, an element never seen in training, or a latent far from "
                 "every training material) and why, and the × shows where it sits on the latent map "
                 "(placed among the materials with the nearest latents). Rare chemistry is named with its element and "
                 "how many training materials contain it. If the same "
                 "crystal is already in the data set, its id and DFT value are shown; a crystal of the same "
                 "structure type whose lattice differs by more than 2 % is called that, with the difference. The "
                 "first prediction on a server loads the network (~20 s); later ones take well under a second."),
            self.upload, self.result, self.download,
            pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"),
            name="Predict")
