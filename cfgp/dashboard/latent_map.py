"""Latent map tab: t-SNE of the MEGNet latents, coloured by energy, σ or chemistry; tap, brush, live t-SNE."""

from __future__ import annotations

import threading
import time

import numpy as np
import panel as pn
import param
from bokeh.events import Tap
from bokeh.models import BooleanFilter, CDSView, ColumnDataSource, CustomJS, LinearColorMapper
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from cfgp.dashboard import untrusted
from cfgp.dashboard.bokeh_figures import Colouring, hover, map_figure, selection_tools
from cfgp.dashboard.details import MaterialDetails
from cfgp.dashboard.downloads import MATERIAL_COLUMNS, csv_bytes, download_button, figure_downloads
from cfgp.dashboard.shared import (PROPERTY_COLOURS, ServerData, SessionState, controls, in_document, note,
                                   on_session_end, on_session_tick, parse_element)
from cfgp.embedding import TSNESettings, tsne
from cfgp.mpl_figures import latent_map_figure
from cfgp.palette import BACKGROUND, CATEGORY_COLOURS, SPLIT_COLOURS
from cfgp.properties import CATALOGUE, describe_filters, marker_sizes, numeric_properties, parse_filters

COLOURINGS = {"DFT E_f": "dft", "GP E_f": "gp", "σ": "sigma", "residual": "residual", "z-score": "z",
              **{CATALOGUE[c].label: c for c in PROPERTY_COLOURS},
              "space group": "spacegroup_symbol", "split": "split", "phosphates": "phosphate", "element": "element"}
#: marker size: fixed, or by any numeric property (label → column; "" is the fixed size)
SIZES = {"fixed": "", **{CATALOGUE[c].label: c for c in numeric_properties()}}
#: the property scatter's axes (chemiscope's map, drawn beside the t-SNE): any two numeric properties, or a t-SNE
#: coordinate; label → column, "" is the t-SNE coordinate. Both "" hides the scatter.
AXES = {"t-SNE": "", **{CATALOGUE[c].label: c for c in numeric_properties()}}
#: the help of the scatter's two axis menus
SCATTER_HELP = "Plot any two properties beside the t-SNE (the same materials, colours, selection and filters)"
#: the map's title when it shows the t-SNE
TSNE_TITLE = "t-SNE of the MEGNet latent space"
#: the fixed marker size (px) of the map
FIXED_SIZE = 4
#: a space-group colouring names the most common groups; the rest are "other"
TOP_SPACE_GROUPS = len(CATEGORY_COLOURS)
NEAREST_ON_TAP = """
const view = Bokeh.index.find_one(fig);
if (!view) return;
const col = (k) => (source.data instanceof Map ? source.data.get(k) : source.data[k]);
const xs = col(renderer.glyph.x.field), ys = col(renderer.glyph.y.field);  // the axes shown: t-SNE or properties
const fx = view.frame.x_scale, fy = view.frame.y_scale;
const sx = fx.compute(cb_obj.x), sy = fy.compute(cb_obj.y);
let best = -1, bestd = 15 * 15;  // within 15 px
for (let i = 0; i < xs.length; i++) {
  const dx = fx.compute(xs[i]) - sx, dy = fy.compute(ys[i]) - sy, d = dx * dx + dy * dy;
  if (d < bestd) { bestd = d; best = i; }
}
if (best >= 0) source.selected.indices = [best];
"""
#: the map and the material beside it fill the screen (the browser's Fullscreen API on their row, so Esc leaves it
#: too); the map grows to the screen's height and returns to its own when full screen ends, however it ends
FULL_SCREEN = """
const view = Bokeh.index.find_one(area);
if (!view) return;
if (document.fullscreenElement) { document.exitFullscreen(); return; }
const el = view.el, heights = figs.map((f) => f.height);
el.style.background = getComputedStyle(document.body).backgroundColor || 'white';
el.style.overflow = 'auto';
const done = () => {
  if (document.fullscreenElement) return;
  figs.forEach((f, i) => { f.height = heights[i]; }); button.label = enter;
  document.removeEventListener('fullscreenchange', done);
};
el.requestFullscreen().then(() => {
  figs.forEach((f, i) => { f.height = Math.max(heights[i], Math.round(window.innerHeight - margin)); });
  button.label = leave;
  document.addEventListener('fullscreenchange', done);
});
"""
#: the button's two labels, and the height (px) full screen leaves for the figure's toolbar, title and downloads
ENTER_FULL_SCREEN, LEAVE_FULL_SCREEN, FULL_SCREEN_MARGIN = "Full screen", "Leave full screen", 120
#: a selection's gallery shows the cells of at most this many of its materials (in the map's order)
GALLERY_TILES = 12
#: a gallery tile's sketch size (px)
TILE_SIZE = 120
#: the live t-SNE runs on a seeded subsample so that it visibly converges within seconds on 2 cores
LIVE_TSNE_POINTS = 2500


class LatentMap(pn.viewable.Viewer):
    """The 2-D map of every material; colour switches, brushes and taps send deltas only."""

    colour = param.Selector(default="dft", objects=list(COLOURINGS.values()))
    element = param.String(default="P")
    filters = param.String(default="", doc="property filters as link text (cfgp.properties.parse_filters)")
    size = param.Selector(default="", objects=list(SIZES.values()), doc="property the marker size follows")
    x_axis = param.Selector(default="", objects=list(AXES.values()),
                            doc="property on the x axis of the scatter beside the t-SNE ('' = t-SNE coordinate)")
    y_axis = param.Selector(default="", objects=list(AXES.values()),
                            doc="property on the y axis of the scatter beside the t-SNE ('' = t-SNE coordinate)")

    def __init__(self, data: ServerData, state: SessionState, source: ColumnDataSource, **params):
        params.setdefault("name", "Latent map")
        super().__init__(**params)
        self.data, self.state, self.source = data, state, source
        self.colour_select = pn.widgets.Select(label="colour by", options=COLOURINGS, value=self.colour, width=160)
        self.element_input = pn.widgets.TextInput(label="element", value=self.element, width=90,
                                                  placeholder="e.g. Li", css_classes=["map-element"])
        self.colour_select.link(self, value="colour", bidirectional=True)
        self.element_input.link(self, value="element", bidirectional=True)
        self.size_select = pn.widgets.Select(label="marker size by", options=SIZES, value=self.size, width=170,
                                             css_classes=["map-size"])
        self.size_select.link(self, value="size", bidirectional=True)
        self.filter_input = pn.widgets.TextInput(
            label="filters", value=self.filters, width=330, css_classes=["map-filters"],
            placeholder="band_gap:0.5..3; spacegroup_symbol=Pnma|P2_1/c",
            description="Show only materials with these properties: property:min..max (leave a side out for "
                        "open) or property=value|value, joined by ; — properties: " + ", ".join(CATALOGUE))
        self.filter_input.link(self, value="filters", bidirectional=True)  # a link sets the parameter
        self.filter_status = pn.pane.Markdown("", name="map-filter-status", margin=(0, 10),
                                              css_classes=["map-filter-status"])
        self.legend_text = pn.pane.Markdown("", name="map-legend-text", margin=(0, 10),
                                            css_classes=["map-legend-text"])
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, name="map-message",
                                     css_classes=["map-message"])
        self.x_select = pn.widgets.Select(label="scatter x", options=AXES, value=self.x_axis, width=170,
                                          css_classes=["map-x-axis"],
                                          description=SCATTER_HELP)
        self.y_select = pn.widgets.Select(label="scatter y", options=AXES, value=self.y_axis, width=170,
                                          css_classes=["map-y-axis"],
                                          description=SCATTER_HELP)
        self.x_select.link(self, value="x_axis", bidirectional=True)
        self.y_select.link(self, value="y_axis", bidirectional=True)
        self.fig, self.renderer = map_figure(source, TSNE_TITLE, "latent-map")
        self.fig.add_tools(hover(renderers=[self.renderer]), *selection_tools())
        # chemiscope's map beside the t-SNE: the same source (so the same selection), colours, sizes and filters;
        # its renderer draws the t-SNE fields while hidden, so nothing refers to columns not sent yet
        self.prop_fig, self.prop_renderer = map_figure(source, "", "property-map")
        self.prop_fig.add_tools(hover(renderers=[self.prop_renderer]), *selection_tools())
        self.prop_fig.axis.visible = True
        self.prop_fig.visible = False
        self.colouring = Colouring(data, self.fig, self.renderer, source, "latent-map", mirrors=[self.prop_renderer])
        self.view_filter = BooleanFilter(booleans=None)
        self.renderer.view = CDSView(filter=self.view_filter)
        self.prop_renderer.view = CDSView(filter=self.view_filter)
        state.param.watch(self._on_filter_mask, "filter_mask")
        self.details = MaterialDetails(data, "Click a point for its details and crystal structure; brush (box or "
                                             "lasso) to select materials on every plot.")
        # a click selects the material drawn nearest to it, in pixels, wherever points overlap; computed in the
        # browser, which knows the exact screen mapping, and sent as a one-index selection
        for fig, renderer in ((self.fig, self.renderer), (self.prop_fig, self.prop_renderer)):
            fig.js_on_event(Tap, CustomJS(args={"source": source, "fig": fig, "renderer": renderer},
                                          code=NEAREST_ON_TAP))
        source.selected.on_change("indices", self._on_brush)
        state.param.watch(self._on_selected, "selected")
        self.selection_download = download_button("Download selection (CSV)", "selection.csv", self._selection_csv,
                                                  "selection-download", width=210)
        state.param.watch(self._on_picked, "picked")
        self.figure_downloads = figure_downloads("map", "latent-map", self.export_figure, "map-figure")
        self.prop_downloads = figure_downloads("scatter", "property-scatter", self.export_property_figure,
                                               "property-figure")
        # the map with the material beside it: one row, which the full-screen button fills the screen with
        self.full_screen = pn.widgets.Button(label=ENTER_FULL_SCREEN, width=150, css_classes=["map-full-screen"],
                                             description="Show the map and the material beside it on the whole "
                                                         "screen (Esc leaves)")
        # a selection's structures as a small gallery under the map (a tile's button opens it beside the map)
        self.gallery_text = pn.pane.Markdown("", css_classes=["map-gallery-text"], visible=False, margin=(0, 10))
        self.gallery = pn.FlexBox(css_classes=["map-gallery"], sizing_mode="stretch_width", visible=False)
        self.prop_column = pn.Column(pn.pane.Bokeh(self.prop_fig, sizing_mode="stretch_width"), self.prop_downloads,
                                     sizing_mode="stretch_width", css_classes=["property-map-figure"],
                                     visible=False)
        tsne_column = pn.Column(pn.Column(pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"),
                                          sizing_mode="stretch_width", css_classes=["latent-map-figure"]),
                                pn.Row(self.figure_downloads, self.full_screen), sizing_mode="stretch_width")
        # the scatter joins the row only while shown: a hidden child would still count in the row's least width
        self.map_row = pn.Row(tsne_column, sizing_mode="stretch_width")
        self.map_area = pn.Row(pn.Column(self.map_row,
                                         self.gallery_text, self.gallery, sizing_mode="stretch_width"),
                               pn.Column(self.details, width=420, css_classes=["map-details"]),
                               css_classes=["map-area"], sizing_mode="stretch_width")
        self.full_screen.js_on_click(args={"area": self.map_area, "figs": [self.fig, self.prop_fig],
                                           "button": self.full_screen,
                                           "enter": ENTER_FULL_SCREEN, "leave": LEAVE_FULL_SCREEN,
                                           "margin": FULL_SCREEN_MARGIN},
                                     code=FULL_SCREEN)
        # live t-SNE
        shown = TSNESettings()  # the precomputed map's settings
        self.perplexity = pn.widgets.IntSlider(label="perplexity", start=5, end=100, step=5,
                                               value=int(shown.perplexity), width=200)
        self.live_button = pn.widgets.Button(label="Recompute t-SNE live", color="primary", width=190)
        self.progress = pn.indicators.Progress(value=0, max=100, width=200, visible=False)
        self.status = pn.pane.Markdown(f"Map: precomputed t-SNE of all materials, perplexity {shown.perplexity:g}.",
                                       name="tsne-status", css_classes=["tsne-status"])
        self.live_source = ColumnDataSource({"x": [], "y": [], "dft": []}, name="live-tsne-source")
        self.live_fig = figure(title="Live t-SNE", name="live-tsne", height=420, sizing_mode="stretch_width",
                               tools="pan,wheel_zoom,reset", output_backend="canvas", visible=False)
        self.live_fig.axis.visible = self.live_fig.grid.visible = False
        lo, hi = data.colour_limits["dft"]
        self.live_fig.scatter("x", "y", source=self.live_source, size=4, line_color=None,
                              fill_color={"field": "dft", "transform": LinearColorMapper(palette=Viridis256, low=lo, high=hi)})
        self.live_button.on_click(self._recompute)
        self._cancel = threading.Event()
        on_session_end(self._cancel.set)
        self._apply_colour()

    # ------------------------------------------------------------ colouring
    @param.depends("colour", "element", watch=True)
    def _apply_colour(self) -> None:
        in_document(self._colour_now)

    def _colour_now(self) -> None:
        d, key = self.data, self.colour
        self.message.object, self.message.visible = "", False
        if key in ("dft", "gp", "sigma", "residual", "z") or key in PROPERTY_COLOURS:
            title = self.colouring.numeric(key)
            self.legend_text.object = f"Colour: **{title}** (colour bar on the right)."
            return
        if key == "split":
            groups = self._split_groups()
            labels = self.colouring.categorical(groups, list(SPLIT_COLOURS), SPLIT_COLOURS, "split")
        elif key == "spacegroup_symbol":
            symbols = d.frame["spacegroup_symbol"].fillna("").astype(str).to_numpy(dtype=object)
            names, counts = np.unique(symbols[symbols != ""], return_counts=True)
            top = [str(n) for n in names[np.argsort(-counts, kind="stable")][:TOP_SPACE_GROUPS]]
            groups = np.where(np.isin(symbols, top), symbols, "other").astype(object)
            colours = {**dict(zip(top, CATEGORY_COLOURS)), "other": BACKGROUND}
            labels = self.colouring.categorical(groups, top + ["other"], colours, "space group")
        elif key == "phosphate":
            groups = np.where(d.frame["is_phosphate"].to_numpy(bool), "phosphate", "other oxide").astype(object)
            labels = self.colouring.categorical(groups, ["phosphate", "other oxide"],
                                                {"phosphate": CATEGORY_COLOURS[0], "other oxide": BACKGROUND},
                                                "phosphates")
        else:
            try:
                el = parse_element(self.element)
            except ValueError as exc:
                self.message.object, self.message.visible = untrusted.text(f"Element: {exc}."), True
                return
            has = d.contains(el)
            if not has.any():
                self.message.object = f"No material of this data set contains {el}."
                self.message.visible = True
            label = f"contains {el}"
            groups = np.where(has, label, "other").astype(object)
            labels = self.colouring.categorical(groups, [label, "other"],
                                                {label: CATEGORY_COLOURS[0], "other": BACKGROUND}, "element")
        self.legend_text.object = "Colour: " + " · ".join(f"**{untrusted.text(lab)}**" for lab in labels)

    # ------------------------------------------------------------ marker size
    @param.depends("size", watch=True)
    def _apply_size(self) -> None:
        in_document(self._size_now)

    def _size_now(self) -> None:
        """A fixed size, or one ``size`` column (the property's values scaled by cfgp.properties.marker_sizes)."""
        glyphs = [g for r in (self.renderer, self.prop_renderer) for g in (r.glyph, r.nonselection_glyph)]
        if not self.size:
            for g in glyphs:
                g.size = FIXED_SIZE
            return
        self.source.data["size"] = marker_sizes(self.data.frame[self.size].to_numpy(float)).astype(np.float32)
        for g in glyphs:
            g.size = {"field": "size"}

    # ------------------------------------------------------------ axes
    @param.depends("x_axis", "y_axis", watch=True)
    def _apply_axes(self) -> None:
        in_document(self._axes_now)

    def axis_values(self, key: str, which: int) -> np.ndarray:
        """The map's coordinate on one axis: a property's values, or the t-SNE coordinate ``which`` (0 or 1)."""
        return self.data.frame[key].to_numpy(float) if key else self.data.xy[:, which].astype(float)

    def axis_label(self, key: str, which: int) -> str:
        return CATALOGUE[key].label if key else f"t-SNE {which + 1}"

    def _axes_now(self) -> None:
        """Two properties beside the t-SNE, sent once as the ``ax``/``ay`` columns and drawn with labelled axes;
        the points, colours, selection and filters are the map's own. Both axes on t-SNE hide the scatter."""
        shown = bool(self.x_axis or self.y_axis)
        glyphs = (self.prop_renderer.glyph, self.prop_renderer.selection_glyph, self.prop_renderer.nonselection_glyph)
        if shown:
            self.source.data.update(ax=self.axis_values(self.x_axis, 0).astype(np.float32),
                                    ay=self.axis_values(self.y_axis, 1).astype(np.float32))
        for g in glyphs:
            g.x, g.y = ({"field": "ax"}, {"field": "ay"}) if shown else ({"field": "x"}, {"field": "y"})
        self.prop_fig.xaxis.axis_label = self.axis_label(self.x_axis, 0)
        self.prop_fig.yaxis.axis_label = self.axis_label(self.y_axis, 1)
        self.prop_fig.title.text = self.property_title() if shown else ""
        self.prop_fig.visible = self.prop_column.visible = shown
        if shown != (self.prop_column in self.map_row.objects):
            self.map_row.objects = [self.map_row.objects[0], *([self.prop_column] if shown else [])]

    def property_title(self) -> str:
        return f"{self.axis_label(self.y_axis, 1)} against {self.axis_label(self.x_axis, 0)}"

    # ------------------------------------------------------------ filters
    @param.depends("filters", watch=True)
    def _apply_filters(self) -> None:
        """Read the filter text (untrusted: typed or from a link) into the session's filters, which every tab
        applies; a text it cannot read keeps the previous filters and says why."""
        try:
            filters = parse_filters(self.filters)
            self.state.set_filters(self.data.frame, filters)
        except ValueError as exc:
            self.filter_status.object = untrusted.text(f"Filters not applied: {exc}.")
            return
        self._show_filter_status()

    def _show_filter_status(self) -> None:
        mask, n = self.state.filter_mask, len(self.data.frame)
        if mask is None:
            self.filter_status.object = ""
        else:
            self.filter_status.object = untrusted.text(
                f"Filters: {describe_filters(self.state.filters)} — {int(mask.sum()):,} of {n:,} materials shown.")

    def _on_filter_mask(self, event) -> None:
        mask = event.new
        in_document(lambda: setattr(self.view_filter, "booleans", None if mask is None else mask.tolist()))
        self._show_filter_status()

    def _split_groups(self) -> np.ndarray:
        groups = self.data.map_columns["split"].copy()
        rows = [self.data.row_of_id[p] for p in self.state.picked if p in self.data.row_of_id]
        groups[rows] = "picked by AL"
        return groups

    def _on_picked(self, event) -> None:
        if self.colour != "split":
            return
        new = set(event.new) - set(event.old or [])
        if set(event.old or []) - set(event.new) or len(new) > 200:
            self._apply_colour()  # a reset or a big jump: recolour at once
            return
        rows = [self.data.row_of_id[p] for p in new if p in self.data.row_of_id]
        if rows:
            in_document(lambda: self._patch_picked(rows))

    def _patch_picked(self, rows: list[int]) -> None:
        if self.colour == "split":
            self.source.patch({"group": [(r, "picked by AL") for r in rows]})  # a few rows per AL step
            groups = np.asarray(self.source.data["group"])
            labels = self.colouring.categorical(groups, list(SPLIT_COLOURS), SPLIT_COLOURS, "split",
                                                send_column=False)
            self.legend_text.object = "Colour: " + " · ".join(f"**{untrusted.text(lab)}**" for lab in labels)

    # ------------------------------------------------------------ selection
    def _on_brush(self, attr, old, new) -> None:
        if sorted(new) == self.state.selected:
            return
        if len(new) == 1:
            self.state.focus = int(new[0])
        self.state.select(new)

    def _on_selected(self, event) -> None:
        sel = list(event.new)
        if sorted(self.source.selected.indices) != sel:
            self.source.selected.indices = sel
        if len(sel) == 1:
            self.details.show(sel[0])
        else:
            self.details.show(None, f"**{len(sel):,} materials selected** (see their metrics on the Calibration "
                                    f"tab; their cells are under the map)." if sel else "")
        self._show_gallery(sel if len(sel) > 1 else [])

    def _show_gallery(self, rows: list[int]) -> None:
        """The first GALLERY_TILES selected materials as cell sketches with formula and id; a tile opens its
        material beside the map."""
        shown = [int(r) for r in rows[:GALLERY_TILES]]
        frame = self.data.frame
        tiles = []
        for r in shown:
            button = pn.widgets.Button(label=f"{frame.formula.iat[r]} · {frame.material_id.iat[r]}",
                                       width=TILE_SIZE + 20, css_classes=["gallery-open"], color="light")
            button.on_click(lambda _e, r=r: self.details.show(r))
            tiles.append(pn.Column(pn.pane.HTML(self.data.sketch(r), width=TILE_SIZE, height=TILE_SIZE,
                                                css_classes=["gallery-sketch"]), button,
                                   css_classes=["gallery-tile"], width=TILE_SIZE + 30))
        self.gallery.objects = tiles
        self.gallery.visible = self.gallery_text.visible = bool(shown)
        self.gallery_text.object = (f"**Cells of the selection**: showing {len(shown)} of {len(rows):,} selected "
                                    "materials (in the map's order); click a name to see it beside the map."
                                    if shown else "")

    # ------------------------------------------------------------ live t-SNE
    def _recompute(self, _=None) -> None:
        d = self.data
        ok = np.flatnonzero(np.isfinite(d.X).all(axis=1))
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(ok, min(LIVE_TSNE_POINTS, len(ok)), replace=False))
        settings = TSNESettings(perplexity=float(self.perplexity.value), seed=0)
        if len(rows) < 3 * settings.perplexity + 1:
            self.status.object = f"Too few materials ({len(rows)}) for perplexity {settings.perplexity:g}."
            return
        total = settings.n_iter + settings.early_exaggeration_iter
        doc = pn.state.curdoc
        self.live_button.disabled, self.progress.visible, self.progress.value = True, True, 0
        self.live_fig.visible = True
        self.live_fig.title.text = (f"Live t-SNE of a seeded subsample of {len(rows):,} materials "
                                    f"(perplexity {settings.perplexity:g}), coloured by DFT E_f")
        self.live_source.data = {"x": np.zeros(len(rows)), "y": np.zeros(len(rows)),
                                 "dft": d.frame["dft"].to_numpy()[rows]}
        self.status.object = f"Computing neighbour affinities of {len(rows):,} materials…"
        phase = {"offset": 0, "last": -1, "sent": 0.0}
        cancel = self._cancel
        started = time.perf_counter()

        def push(it, kl, emb):
            if cancel.is_set():
                return True  # the session closed: stop the optimisation
            if it < phase["last"]:  # openTSNE restarts its counter after early exaggeration
                phase["offset"] += settings.early_exaggeration_iter
            phase["last"] = it
            done = phase["offset"] + it
            now = time.perf_counter()
            if now - phase["sent"] < 0.15:
                return None
            phase["sent"] = now
            emb = np.array(emb)

            def update():
                self.progress.value = int(100 * done / total)
                self.status.object = f"t-SNE iteration {done} of {total}, KL divergence {kl:.3f}"
                self.live_source.data.update(x=emb[:, 0], y=emb[:, 1])
            on_session_tick(doc, update)
            return None

        def work():
            try:
                out = tsne(d.Xs[rows], settings, callback=push, callback_every=10)
                msg = (f"Live t-SNE of {len(rows):,} materials converged ({total} iterations, "
                       f"{time.perf_counter() - started:.1f} s).")
            except Exception as exc:  # keep the session alive whatever happens
                out, msg = None, untrusted.text(f"t-SNE failed: {exc}")

            def finish():
                if out is not None:
                    self.live_source.data.update(x=out[:, 0], y=out[:, 1])
                    self.progress.value = 100
                self.status.object, self.live_button.disabled, self.progress.visible = msg, False, False
            if not cancel.is_set():
                on_session_tick(doc, finish)

        threading.Thread(target=work, daemon=True, name="live-tsne").start()

    def _selection_csv(self):
        """The brushed or clicked materials (all of them when nothing is selected), one row each."""
        f = self.data.frame
        rows = self.state.selected or list(range(len(f)))
        return csv_bytes(f.iloc[rows], MATERIAL_COLUMNS)

    def export_figure(self):
        """The t-SNE map as shown now, drawn by the core's matplotlib: same colouring (the mapper's own palette and
        limits, or the categories with their colours and counts), same selection."""
        return self._export(self.data.xy, {"title": self.fig.title.text})

    def export_property_figure(self):
        """The property scatter beside the map, drawn the same way with its axes labelled."""
        xy = np.column_stack([self.axis_values(self.x_axis, 0), self.axis_values(self.y_axis, 1)])
        return self._export(xy, {"title": self.property_title(),
                                 "axis_labels": (self.axis_label(self.x_axis, 0), self.axis_label(self.y_axis, 1))})

    def _export(self, xy: np.ndarray, common: dict):
        spec = self.renderer.glyph.fill_color
        mapper = spec["transform"] if isinstance(spec, dict) else getattr(spec, "transform", None)
        common = {**common, "selected": self.state.selected}
        if self.colouring.field == "group" and mapper is not None:
            colours = dict(zip(mapper.factors, mapper.palette))
            return latent_map_figure(xy, groups=np.asarray(self.source.data["group"], dtype=object),
                                     order=list(mapper.factors), colours=colours,
                                     legend_title=self.colouring.legend.title,
                                     background=[g for g, c in colours.items() if c == BACKGROUND], **common)
        field = self.colouring.field or "dft"
        return latent_map_figure(xy, values=self.data.map_columns[field], palette=list(mapper.palette),
                                 clim=(mapper.low, mapper.high), colour_label=self.colouring.colorbar.title,
                                 **common)

    def __panel__(self):
        return pn.Column(
            note("**Latent map.** Each dot is an oxide; MEGNet turned its crystal into 32 numbers and t-SNE placed "
                 "similar vectors close together. Colour by energy to see that the network learned chemistry, by σ "
                 "to see where the GP is unsure (far from training materials), by split to see what active "
                 "learning picked. Hover for details, click a point for its structure, brush (box or lasso) to "
                 "select the same materials on every plot. Choose a scatter x and y to plot any two properties "
                 "beside the map."),
            controls(self.colour_select, self.element_input, self.size_select, self.x_select, self.y_select,
                     self.filter_input, self.perplexity, self.live_button, self.progress, self.selection_download),
            self.message, self.filter_status, self.legend_text,
            self.map_area,
            self.status, pn.pane.Bokeh(self.live_fig, sizing_mode="stretch_width"),
            name="Latent map")
