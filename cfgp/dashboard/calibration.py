"""Calibration tab: parity, |residual| vs σ, calibration curve and metrics, all following the selection.

Why it is built this way: a brush used to re-render three HoloViews plots and re-send every point
(~19 s on the 16k default). Here the figures are built once per session on small sources (one split,
at most :data:`MAX_POINTS` rows); what every session reads — the rows of each split, the whole-split
curve and metrics, the outlier summary — is computed once per server (:func:`split_view`); a
selection only sends ``selected.indices``, 100 curve values and a small HTML table.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import (BoxSelectTool, ColorBar, ColumnDataSource, HoverTool, LassoSelectTool, Legend,
                          LegendItem, LinearColorMapper, Slope)
from bokeh.core.properties import value
from bokeh.plotting import figure

from cfgp import results
from cfgp.dashboard import untrusted
from cfgp.dashboard.bokeh_figures import FIGURE_MIN_WIDTH
from cfgp.dashboard.downloads import csv_bytes, download_button, figure_downloads
from cfgp.dashboard.shared import ServerData, SessionState, controls, in_document, note, on_session_end
from cfgp.mpl_figures import calibration_curve_figure, parity_figure
from cfgp.palette import HIGHLIGHT, NEUTRAL, POINT, SIGNED
from cfgp.uncertainty.metrics import METRIC_LABELS, calibration_curve, regression_metrics

SPLITS = ("test", "pool", "train")
#: the most points a scatter source holds; a bigger split (the 13k pool) is drawn as a seeded subsample
MAX_POINTS = 4000
N_BARS = 100
SEED = 0
#: fewer selected materials than this get a warning instead of metrics
MIN_SCORED = 3
#: the core's labels, with the count and the NLL made explicit (units where a metric has one)
LABELS = {**METRIC_LABELS, "n": "materials (count)", "nll": "mean NLL (nats; E_f in eV/atom)"}
SELECTED_RED = HIGHLIGHT
ALL_GREY = NEUTRAL
HOVER = [("material", "@material_id"), ("formula", "@formula"), ("DFT E_f", "@dft{0.000} eV/atom"),
         ("GP E_f", "@gp{0.000} ± @sigma{0.000} eV/atom"), ("|residual| − 2σ", "@excess{0.000} eV/atom")]


def format_metric(key: str, value) -> str:
    """Counts as integers with thousands separators, everything else with 4 decimals ('—' if undefined)."""
    if key == "n":
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{v:.4f}" if np.isfinite(v) else "—"


# ---------------------------------------------------------------- per-server precomputation
@dataclass
class SplitView:
    """One (split, phosphates-only) view of the results: what the sources hold and the whole-view scores."""

    split: str
    phosphates: bool
    rows: np.ndarray  # frame rows of every scored material of the view (sorted)
    shown: np.ndarray  # frame rows drawn in the scatter plots (sorted; all rows or a seeded subsample)
    parity: dict
    residual: dict
    bars: dict
    expected: np.ndarray
    observed: np.ndarray  # whole-view calibration curve
    metrics: dict | None  # whole-view metrics (None if fewer than MIN_SCORED)
    excess_limit: float
    sigma_max: float
    filtered: bool = False  # narrowed by the session's property filters

    @property
    def label(self) -> str:
        return (f"{self.split} materials" + (" (phosphates only)" if self.phosphates else "")
                + (" passing the filters" if self.filtered else ""))

    def drawn(self, selected) -> np.ndarray:
        """Local positions (in the sources) of the selected rows that are drawn."""
        sel = np.asarray(selected, dtype=int)
        if not len(sel) or not len(self.shown):
            return np.zeros(0, int)
        pos = np.minimum(np.searchsorted(self.shown, sel), len(self.shown) - 1)
        return np.unique(pos[self.shown[pos] == sel])

    def scored(self, selected) -> np.ndarray:
        """Frame rows of the selected materials that belong to this view (drawn or not)."""
        return np.intersect1d(self.rows, np.asarray(selected, dtype=int))


class _Arrays:
    """The frame's numeric columns as arrays, and the built views, of one server."""

    def __init__(self, data: ServerData):
        f = data.frame
        self.dft = f["dft"].to_numpy(float)
        self.gp = f["gp"].to_numpy(float)
        self.sigma = f["sigma"].to_numpy(float)
        self.excess = f["excess"].to_numpy(float)
        self.split = f["split"].to_numpy().astype(str)
        self.phosphate = f["is_phosphate"].to_numpy(bool)
        self.material_id = f["material_id"].to_numpy(dtype=object)
        self.formula = f["formula"].to_numpy(dtype=object)
        self.ok = np.isfinite(self.dft) & np.isfinite(self.gp) & np.isfinite(self.sigma) & (self.sigma > 0)
        self.views: dict[tuple[str, bool], SplitView] = {}
        self.outliers: dict[str, dict] = {}
        self.groups_html: str | None = None


_SERVER: "weakref.WeakKeyDictionary[ServerData, _Arrays]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _arrays(data: ServerData) -> _Arrays:
    with _LOCK:
        if data not in _SERVER:
            _SERVER[data] = _Arrays(data)
        return _SERVER[data]


def curve(a: _Arrays, rows: np.ndarray) -> np.ndarray:
    """Observed proportions of the calibration curve of ``rows`` (NaN where there is nothing to score)."""
    if not len(rows):
        return np.full(100, np.nan)
    return calibration_curve(a.gp[rows], a.sigma[rows], a.dft[rows])[1]


def metrics(a: _Arrays, rows: np.ndarray) -> dict | None:
    return regression_metrics(a.gp[rows], a.sigma[rows], a.dft[rows]) if len(rows) >= MIN_SCORED else None


def split_view(data: ServerData, split: str, phosphates: bool, keep: np.ndarray | None = None) -> SplitView:
    """The view of one split (built once per server, then shared read-only by every session); ``keep``, a
    session's property-filter mask, narrows it to the materials passing the filters (built for that session)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    a = _arrays(data)
    key = (split, bool(phosphates))
    if keep is None:
        with _LOCK:
            if key in a.views:
                return a.views[key]
    mask = a.ok & (a.split == split)
    if phosphates:
        mask &= a.phosphate
    if keep is not None:
        mask &= keep
    rows = np.flatnonzero(mask)
    rng = np.random.default_rng(SEED)
    shown = np.sort(rng.choice(rows, MAX_POINTS, replace=False)) if len(rows) > MAX_POINTS else rows
    common = {"row": shown, "material_id": a.material_id[shown], "formula": a.formula[shown],
              "dft": a.dft[shown], "gp": a.gp[shown], "sigma": a.sigma[shown], "excess": a.excess[shown]}
    bar_rows = np.sort(np.random.default_rng(SEED).choice(shown, min(N_BARS, len(shown)), replace=False))
    ex = a.excess[rows]
    view = SplitView(
        split=split, phosphates=bool(phosphates), rows=rows, shown=shown,
        parity=dict(common),
        residual={**common, "abs_residual": np.abs(a.gp[shown] - a.dft[shown])},
        bars={"dft": a.dft[bar_rows], "lower": a.gp[bar_rows] - 2 * a.sigma[bar_rows],
              "upper": a.gp[bar_rows] + 2 * a.sigma[bar_rows]},
        expected=np.linspace(0, 1, 100), observed=curve(a, rows), metrics=metrics(a, rows),
        excess_limit=float(max(0.05, np.percentile(np.abs(ex), 98))) if len(ex) else 0.05,
        sigma_max=float(a.sigma[rows].max()) * 1.05 if len(rows) else 1.0, filtered=keep is not None)
    if keep is not None:
        return view
    with _LOCK:
        return a.views.setdefault(key, view)


GROUP_COLUMNS = (("n", "n (count)"), ("mae", "MAE (eV/atom)"), ("coverage_2sigma", "coverage 2σ"),
                 ("miscalibration_area", "miscal. area"), ("coverage_2sigma_raw", "coverage 2σ (GP σ)"),
                 ("miscalibration_area_raw", "miscal. area (GP σ)"), ("flagged_share", "flagged"))


def groups_html(data: ServerData) -> str:
    """Per-group calibration of the test split (:func:`cfgp.results.calibration_groups`) as an HTML table, built
    once per server; the check-set row (e.g. non-oxides) appears once ``cfgp evaluate --check-set FILE`` has scored
    this model."""
    a = _arrays(data)
    with _LOCK:
        if a.groups_html is not None:
            return a.groups_html
    app = data.applicability
    groups = results.calibration_groups(data.results)
    extra = groups.get("check_set")
    head = "".join(f'<th style="text-align:right;padding:2px 10px">{untrusted.text(t)}</th>' for _, t in GROUP_COLUMNS)
    body = "".join(
        f'<tr><td style="padding:2px 10px 2px 0">{untrusted.text(g["label"])}</td>'
        + "".join(f'<td style="text-align:right;padding:2px 10px;font-variant-numeric:tabular-nums">'
                  f'{format_metric(k, g.get(k))}</td>' for k, _ in GROUP_COLUMNS) + "</tr>"
        for g in groups.values())
    note_ = ("" if extra else "<br>Run <code>cfgp evaluate --check-set FILE</code> (e.g. the shared non-oxides) to add "
             "materials the model was not made for.")
    df = "Gaussian" if app.sigma.df is None else f"Student-t, ν = {app.sigma.df:.2f}"
    out = (f"<p><b>Calibration per group of the test split</b> — shipped σ ({df}, calibrated on the pool split, "
           f"never the test split) against the GP's own σ. A material can be in several element families.{note_}</p>"
           f"<table style='border-collapse:collapse;font-size:0.95em'><thead><tr>"
           f"<th style='text-align:left;padding:2px 10px 2px 0'>group</th>{head}</tr></thead><tbody>{body}</tbody>"
           f"</table>")
    with _LOCK:
        a.groups_html = out
    return out


def outlier_summary(data: ServerData, split: str) -> dict:
    """:func:`cfgp.results.outlier_summary` of a split, computed once per server."""
    a = _arrays(data)
    with _LOCK:
        if split in a.outliers:
            return a.outliers[split]
    summary = results.outlier_summary(data.frame, split)
    with _LOCK:
        return a.outliers.setdefault(split, summary)


#: the sentence's ending for each :func:`cfgp.results.phosphate_verdict`
VERDICTS = {"over": "more than their share",
            "under": "fewer than their share: here phosphates are not over-represented among the outliers",
            "about": "about their share"}


def outlier_text(s: dict, split: str) -> str:
    """A sentence about phosphates among the outliers that is true for the data shown."""
    if not s["n"]:
        return f"The {split} split is empty in this run."
    if not s["outside"]:
        return (f"None of the {s['n']:,} {split} materials lies outside ±2σ. The paper found phosphates among its "
                f"outliers; tick “phosphates only” to look at the {s['phosphates']:,} phosphates here.")
    share_out = s["phosphates_outside"] / s["outside"]
    share_all = s["phosphates"] / s["n"]
    return (f"The paper found phosphates among its outliers. Here {s['outside']:,} of the {s['n']:,} {split} "
            f"materials lie outside ±2σ and {s['phosphates_outside']:,} of those ({100 * share_out:.0f} %) are "
            f"phosphates, against {100 * share_all:.0f} % of all {split} materials — "
            f"{VERDICTS[results.phosphate_verdict(s)]}. Tick “phosphates only” to check them on the plots.")


# ---------------------------------------------------------------- the tab
class Calibration(pn.viewable.Viewer):
    """Is σ honest? Three Bokeh figures and a metric table that follow the session's selection by deltas."""

    split = param.Selector(default="test", objects=list(SPLITS))
    phosphates = param.Boolean(default=False)

    def __init__(self, data: ServerData, state: SessionState, **params):
        params.setdefault("name", "Calibration")
        super().__init__(**params)
        self.data, self.state = data, state
        self.view = split_view(data, self.split, self.phosphates)
        self.split_select = pn.widgets.RadioButtonGroup(label="materials", options=list(SPLITS), value=self.split,
                                                        width=220)
        self.phosphate_box = pn.widgets.Checkbox(label="phosphates only", value=self.phosphates, width=160)
        self.split_select.link(self, value="split", bidirectional=True)
        self.phosphate_box.link(self, value="phosphates", bidirectional=True)
        self.clear_button = pn.widgets.Button(label="Clear selection", width=140)
        self.clear_button.on_click(lambda _: self.state.select([]))
        self.metrics_download = download_button("Download metrics (CSV)", "metrics.csv",
                                                lambda: csv_bytes(self.metrics_frame()), "metrics-download", width=200)
        self.caption = pn.pane.Markdown("", name="calibration-caption", css_classes=["calibration-caption"],
                                        styles={"font-size": "0.9em"}, margin=(0, 10), sizing_mode="stretch_width")
        self.metrics_pane = pn.pane.HTML("", name="calibration-metrics", css_classes=["calibration-metrics"],
                                         sizing_mode="stretch_width")
        self.outlier_note = pn.pane.Markdown("", name="calibration-outliers", css_classes=["calibration-outliers"],
                                             styles={"font-size": "0.95em"}, margin=(0, 10))
        self._build_parity()
        self._build_residual()
        self._build_curve()
        self.parity_downloads = figure_downloads("parity", "parity", self.export_parity, "parity-figure")
        self.curve_downloads = figure_downloads("curve", "calibration-curve", self.export_curve, "curve-figure")
        for src in (self.parity_source, self.residual_source):
            src.selected.on_change("indices", self._on_brush)
        self._watcher = state.param.watch(self._on_selected, "selected")
        self._filter_watcher = state.param.watch(lambda e: in_document(self._show_view), "filter_mask")
        on_session_end(self._release)
        self._show_view()

    # ------------------------------------------------------------ figures (built once per session)
    def _scatter_figure(self, name: str, title: str, x_label: str, y_label: str):
        # canvas, not WebGL: a few thousand points draw in milliseconds, while every repaint of a WebGL plot
        # is blitted with drawImage, which costs hundreds of ms in a browser without a GPU (measured)
        fig = figure(title=title, name=name, tools="pan,wheel_zoom,reset,save", height=380,
                     sizing_mode="stretch_width", width=FIGURE_MIN_WIDTH, min_width=FIGURE_MIN_WIDTH,
                     output_backend="canvas", toolbar_location="above",
                     x_axis_label=x_label, y_axis_label=y_label)
        return fig

    def _brushable(self, fig, renderer) -> None:
        renderer.selection_glyph = renderer.glyph.clone(line_color="black", line_width=1, fill_alpha=1.0)
        renderer.nonselection_glyph = renderer.glyph.clone(fill_alpha=0.12, line_alpha=0.12)
        box, lasso = BoxSelectTool(renderers=[renderer]), LassoSelectTool(renderers=[renderer])
        fig.add_tools(HoverTool(renderers=[renderer], tooltips=HOVER), box, lasso)
        fig.toolbar.active_drag = box

    def _build_parity(self) -> None:
        self.parity_source = ColumnDataSource({k: [] for k in self.view.parity}, name="parity-source")
        self.bars_source = ColumnDataSource({"dft": [], "lower": [], "upper": []}, name="parity-bars-source")
        fig = self._scatter_figure("parity", "GP vs DFT", "DFT E_f (eV/atom)", "GP E_f (eV/atom)")
        fig.add_layout(Slope(gradient=1, y_intercept=0, line_color="black", line_width=1))
        r = fig.scatter("dft", "gp", source=self.parity_source, size=4, fill_color=POINT, line_color=None,
                        fill_alpha=0.45, name="parity-points")
        fig.segment("dft", "lower", "dft", "upper", source=self.bars_source, line_color=SELECTED_RED,
                    line_width=1, line_alpha=0.8, name="parity-bars")
        self._brushable(fig, r)
        self.parity_fig, self.parity_renderer = fig, r

    def _build_residual(self) -> None:
        self.residual_source = ColumnDataSource({k: [] for k in self.view.residual}, name="residual-source")
        self.excess_mapper = LinearColorMapper(palette=SIGNED, low=-0.05, high=0.05)  # blue inside, red outside
        fig = self._scatter_figure("residual-vs-sigma", "|residual| vs σ", "σ (eV/atom)", "|residual| (eV/atom)")
        r = fig.scatter("sigma", "abs_residual", source=self.residual_source, size=5, line_color="black",
                        line_alpha=0.25, line_width=0.5, fill_alpha=0.85,
                        fill_color={"field": "excess", "transform": self.excess_mapper},
                        name="residual-points")
        self.line_source = ColumnDataSource({"sigma": [0.0, 1.0], "two_sigma": [0.0, 2.0]},
                                            name="residual-line-source")
        line = fig.line("sigma", "two_sigma", source=self.line_source, line_color="black", line_dash="dashed",
                        name="residual-2sigma")
        fig.add_layout(Legend(items=[LegendItem(label="|residual| = 2σ", renderers=[line])],
                              location="top_left", background_fill_alpha=0.8, label_text_font_size="12px"))
        fig.add_layout(ColorBar(color_mapper=self.excess_mapper, title="|residual| − 2σ (eV/atom)", width=12,
                                name="residual-colorbar", title_text_font_size="12px",
                                major_label_text_font_size="11px"), "right")
        self._brushable(fig, r)
        self.residual_fig, self.residual_renderer = fig, r

    def _build_curve(self) -> None:
        v = self.view
        self.curve_source = ColumnDataSource({"expected": v.expected, "observed": v.observed, "all": v.observed},
                                             name="calibration-curve-source")
        fig = figure(title="Calibration curve", name="calibration-curve", height=380, sizing_mode="stretch_width",
                     width=FIGURE_MIN_WIDTH, min_width=FIGURE_MIN_WIDTH,
                     tools="pan,wheel_zoom,reset,save", toolbar_location="above", x_range=(0, 1), y_range=(0, 1),
                     x_axis_label="expected proportion in interval", y_axis_label="observed proportion")
        ideal = fig.line([0, 1], [0, 1], line_color="black", line_dash="dashed", name="calibration-ideal")
        self.all_line = fig.line("expected", "all", source=self.curve_source, line_color=ALL_GREY, line_width=2,
                                 name="calibration-all", visible=False)
        fig.varea("expected", "expected", "observed", source=self.curve_source, fill_color=SELECTED_RED,
                  fill_alpha=0.15)
        self.sel_line = fig.line("expected", "observed", source=self.curve_source, line_color=SELECTED_RED,
                                 line_width=2, name="calibration-selected")
        self.all_item = LegendItem(label="", renderers=[self.all_line], visible=False)
        self.sel_item = LegendItem(label="", renderers=[self.sel_line])
        self.curve_legend = Legend(items=[LegendItem(label="ideal", renderers=[ideal]), self.all_item, self.sel_item],
                                   location="top_left", background_fill_alpha=0.85, label_text_font_size="12px",
                                   name="calibration-curve-legend")
        fig.add_layout(self.curve_legend)
        self.curve_fig = fig

    # ------------------------------------------------------------ split / phosphates: replace small sources
    @param.depends("split", "phosphates", watch=True)
    def _show_view(self) -> None:
        v = self.view = split_view(self.data, self.split, self.phosphates, self.state.filter_mask)
        n, drawn = len(v.rows), len(v.shown)
        sub = f" (a seeded random {drawn:,} of {n:,} drawn)" if drawn < n else ""
        self.parity_source.data = dict(v.parity)
        self.residual_source.data = dict(v.residual)
        self.bars_source.data = dict(v.bars)
        self.line_source.data = {"sigma": [0.0, v.sigma_max], "two_sigma": [0.0, 2 * v.sigma_max]}
        self.excess_mapper.update(low=-v.excess_limit, high=v.excess_limit)
        self.curve_source.data["all"] = v.observed
        # short titles (a title is cut where the plot is narrower than it: beside the lesson, on a projector); what
        # is drawn goes in the caption under the plots, which wraps
        self.parity_fig.title.text = f"GP vs DFT: {n:,} {v.label}"
        self.residual_fig.title.text = f"|residual| vs σ: {n:,} {v.label}"
        self.curve_fig.title.text = f"Calibration curve: {v.label}"
        self.caption.object = (f"Parity and |residual| plots: {n:,} {v.label}{sub}; ±2σ bars on "
                               f"{len(v.bars['dft'])} random materials (seed {SEED}).")
        self.outlier_note.object = outlier_text(outlier_summary(self.data, self.split), self.split)
        self._follow_selection()

    # ------------------------------------------------------------ selection: deltas only
    def _on_brush(self, attr, old, new) -> None:
        """A box or lasso on either scatter: select those materials everywhere (echoes are ignored)."""
        v = self.view
        idx = np.asarray(new, dtype=int)
        idx = idx[(idx >= 0) & (idx < len(v.shown))]
        if set(idx.tolist()) == set(v.drawn(self.state.selected).tolist()):
            return  # our own update coming back, or nothing new
        self.state.select(v.shown[idx].tolist())

    def _on_selected(self, event) -> None:
        self._follow_selection()

    def _follow_selection(self) -> None:
        v, selected = self.view, self.state.selected
        local = v.drawn(selected).tolist()
        for src in (self.parity_source, self.residual_source):
            if list(src.selected.indices) != local:
                src.selected.indices = local
        rows = v.scored(selected)
        if selected:
            self.curve_source.data["observed"] = curve(_arrays(self.data), rows)
            self.all_line.visible = self.all_item.visible = True
            self.all_item.label = value(f"all {len(v.rows):,} {v.label}")
            self.sel_item.label = value(f"selected ({len(rows):,})")
        else:
            self.curve_source.data["observed"] = v.observed
            self.all_line.visible = self.all_item.visible = False
            self.sel_item.label = value(f"{len(v.rows):,} {v.label}")
        self.metrics_pane.object = self._metrics_html(rows, selected, len(local))

    def metrics_frame(self) -> pd.DataFrame:
        """The metric table as shown: one row per metric, a column for the view and one for the selection."""
        v, selected = self.view, self.state.selected
        columns = {f"{v.label} ({len(v.rows):,})": v.metrics}
        rows = v.scored(selected)
        if selected and len(rows) >= MIN_SCORED:
            columns[f"selected ({len(rows):,})"] = metrics(_arrays(self.data), rows)
        def value(m, k):  # the count as a whole number, not 1460.0
            if m is None or m.get(k) is None:
                return None
            return int(m[k]) if k == "n" else m[k]
        # object columns: a float column would turn the count into 1460.0; labels with units, as on screen
        return pd.DataFrame({"metric": [LABELS[k] for k in METRIC_LABELS],
                             **{name: pd.Series([value(m, k) for k in METRIC_LABELS], dtype=object)
                                for name, m in columns.items()}})

    def _metrics_html(self, rows: np.ndarray, selected: list, drawn: int) -> str:
        v = self.view
        if selected:
            head = f"Metrics for {len(rows):,} selected of the {len(v.rows):,} {v.label}"
            if drawn != len(rows):
                head += f" ({drawn:,} of them drawn)"
            if len(rows) < MIN_SCORED:
                elsewhere = len(selected) - len(rows)
                why = (f" ({elsewhere:,} selected materials are not in this view)" if elsewhere else "")
                return (f'<div style="background:#fff3cd;color:#664d03;border:1px solid #ffe08a;padding:8px 12px;'
                        f'border-radius:4px"><b>{untrusted.text(head)}</b>: too few to score{why}. Brush at least '
                        f'{MIN_SCORED} points to see their metrics.</div>')
            columns = [(f"selected ({len(rows):,})", metrics(_arrays(self.data), rows)),
                       (f"all ({len(v.rows):,})", v.metrics)]
        else:
            head = f"Metrics for {len(v.rows):,} {v.label}"
            if v.metrics is None:
                return (f'<div style="background:#fff3cd;color:#664d03;border:1px solid #ffe08a;padding:8px 12px;'
                        f'border-radius:4px"><b>{untrusted.text(head)}</b>: too few to score (at least '
                        f'{MIN_SCORED} are needed).</div>')
            columns = [("value", v.metrics)]
        cells = "".join(f'<th style="text-align:right;padding:2px 12px">{untrusted.text(c)}</th>' for c, _ in columns)
        body = "".join(
            f'<tr><td style="padding:2px 12px 2px 0">{untrusted.text(label)}</td>'
            + "".join(f'<td style="text-align:right;padding:2px 12px;font-variant-numeric:tabular-nums">'
                      f'{format_metric(key, (m or {}).get(key))}</td>' for _, m in columns) + "</tr>"
            for key, label in LABELS.items())
        return (f"<p><b>{untrusted.text(head)}</b></p><table style='border-collapse:collapse;font-size:0.95em'>"
                f"<thead><tr><th style='text-align:left;padding:2px 12px 2px 0'>metric</th>{cells}</tr></thead>"
                f"<tbody>{body}</tbody></table>")

    def _release(self) -> None:
        self.state.param.unwatch(self._watcher)
        self.state.param.unwatch(self._filter_watcher)

    # ------------------------------------------------------------ figure files (PNG / SVG) of what is shown
    def export_parity(self):
        """The parity plot as shown: the drawn materials of the split, the same ±2σ bars, the selection ringed."""
        v = self.view
        p = v.parity
        return parity_figure(p["dft"], p["gp"], bars=(v.bars["dft"], v.bars["lower"], v.bars["upper"]),
                             selected=v.drawn(self.state.selected), title=self.parity_fig.title.text)

    def export_curve(self):
        """The calibration curve as shown: the whole view, and the selection's curve when something is selected."""
        v, selected = self.view, self.state.selected
        if selected:
            rows = v.scored(selected)
            lines = [{"label": f"all {len(v.rows):,} {v.label}", "expected": v.expected, "observed": v.observed,
                      "colour": ALL_GREY},
                     {"label": f"selected ({len(rows):,})", "expected": v.expected,
                      "observed": curve(_arrays(self.data), rows), "colour": SELECTED_RED, "fill": True}]
        else:
            lines = [{"label": f"{len(v.rows):,} {v.label}", "expected": v.expected, "observed": v.observed,
                      "colour": SELECTED_RED, "fill": True}]
        return calibration_curve_figure(lines, title=self.curve_fig.title.text)

    def __panel__(self):
        return pn.Column(
            note("**Is the uncertainty honest?** Left: GP vs DFT, with ±2σ bars on 100 random materials (seeded). "
                 "Middle: |residual| against σ, coloured by |residual| − 2σ; red points, above the dashed line, lie "
                 "outside their 95 % interval (the paper's outliers). Right: the share of DFT values inside centred "
                 "intervals of each nominal size; a calibrated σ follows the dashed diagonal, a curve below it means "
                 "σ is too small. Brush points (box or lasso) here or on the Latent map to score a subset: the "
                 "metrics and the red curve follow the selection, the grey curve stays the whole split."),
            self.outlier_note,
            controls(self.split_select, self.phosphate_box, self.clear_button, self.metrics_download),
            pn.Row(pn.Column(pn.pane.Bokeh(self.parity_fig, sizing_mode="stretch_width"), self.parity_downloads,
                             sizing_mode="stretch_width"),
                   pn.pane.Bokeh(self.residual_fig, sizing_mode="stretch_width"),
                   pn.Column(pn.pane.Bokeh(self.curve_fig, sizing_mode="stretch_width"), self.curve_downloads,
                             sizing_mode="stretch_width"), css_classes=["calibration-figures"]),
            self.caption, self.metrics_pane,
            pn.pane.HTML(groups_html(self.data), name="calibration-groups", css_classes=["calibration-groups"],
                         sizing_mode="stretch_width"),
            name="Calibration")
