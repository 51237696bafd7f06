"""Bokeh figures of the dashboard, built so that interactions send deltas, not whole plots.

Every session gets one ``ColumnDataSource`` of the map (all materials) that the latent map, the
active-learning map and the Predict map share: its 16k rows travel to the browser once. Changing the
colouring swaps a colour mapper and, for categorical colourings, one ``group`` column; a brush or a
tap changes ``selected.indices``; active learning streams and patches small sources.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import (BoxSelectTool, CategoricalColorMapper, ColorBar, ColumnDataSource, HoverTool,
                          LassoSelectTool, Legend, LegendItem, LinearColorMapper)
from bokeh.palettes import Plasma256, Viridis256
from bokeh.plotting import figure

from cfgp.dashboard.shared import NUMERIC_COLOURS, PROPERTY_COLOURS, ServerData
from cfgp.palette import NAN_COLOUR, SIGNED

PALETTES = {"Viridis256": Viridis256, "Plasma256": Plasma256, "signed": SIGNED}  # SIGNED runs blue → red

#: the σ after "±" is the shipped one (calibrated, widened out of the domain); z is in units of the GP's own σ
MAP_HOVER = [("material", "@material_id"), ("formula", "@formula"), ("DFT E_f", "@dft{0.000} eV/atom"),
             ("GP E_f", "@gp{0.000} ± @sigma_cal{0.000} eV/atom"), ("GP's own σ", "@sigma{0.000} eV/atom"),
             ("z", "@z{0.00} GP σ"), ("in domain", "@domain")]


#: what the browser needs of each material: position, colourings, hover text (row = index, split → group)
BROWSER_COLUMNS = ("x", "y", "material_id", "formula", "dft", "gp", "sigma", "sigma_cal", "residual", "z", "domain")


def map_source(data: ServerData) -> ColumnDataSource:
    """The per-session source of the map: the columns the browser draws and hovers (float32, arrays shared
    with the server's cache, not copied), plus the per-session ``group`` column of categorical colourings."""
    cols = {k: data.browser_map_columns[k] for k in BROWSER_COLUMNS}
    cols["group"] = data.map_columns["split"].copy()
    cols["prop"] = np.full(len(cols["x"]), np.nan, dtype=np.float32)  # a property colouring's values, when chosen
    return ColumnDataSource(cols, name="map-source")


#: the width (px) a stretching figure starts from and may shrink to: Bokeh's default of 600 made a map and a
#: 420-px details column overflow a 1366-px window beside the lesson panel
FIGURE_MIN_WIDTH = 300


def map_figure(source: ColumnDataSource, title: str, name: str, height: int = 520, tools: str = ""):
    """A t-SNE map figure with the points renderer; returns (figure, renderer)."""
    fig = figure(title=title, name=name, tools=f"pan,wheel_zoom,reset,save{',' + tools if tools else ''}",
                 active_scroll="wheel_zoom", sizing_mode="stretch_width", height=height,
                 width=FIGURE_MIN_WIDTH, min_width=FIGURE_MIN_WIDTH, output_backend="canvas", toolbar_location="above")
    fig.axis.visible = False
    fig.grid.visible = False
    r = fig.scatter("x", "y", source=source, size=4, line_color=None, fill_alpha=0.8, name=f"{name}-points")
    r.selection_glyph = r.glyph.clone(line_color="black", line_width=1, fill_alpha=1.0, size=7)
    r.nonselection_glyph = r.glyph.clone(fill_alpha=0.15)
    return fig, r


class Colouring:
    """Colours a map renderer by a numeric column (colour bar with the field's title) or by a category
    (legend with counts); switching sends the new mapper and at most one column. ``mirrors`` are other renderers
    of the same source (another plot of the same materials) that take the same colours; the legend and colour
    bar stay on ``fig``."""

    def __init__(self, data: ServerData, fig, renderer, source: ColumnDataSource, name: str, mirrors=()):
        self.data, self.fig, self.renderer, self.source = data, fig, renderer, source
        self.mirrors = list(mirrors)
        self.colorbar = ColorBar(color_mapper=LinearColorMapper(palette=Viridis256), title="", name=f"{name}-colorbar",
                                 width=12, title_text_font_size="12px", major_label_text_font_size="11px")
        self.legend = Legend(items=[], name=f"{name}-legend", location="top_right", title="",
                             label_text_font_size="12px", background_fill_alpha=0.85, click_policy="none")
        fig.add_layout(self.colorbar, "right")
        fig.add_layout(self.legend, "right")
        self.field = None
        self.categories: list[str] = []

    def numeric(self, field: str) -> str:
        """Colour by a results column the browser holds, or by one of the data set's properties, whose values are
        sent now as the one ``prop`` column (NaN — a data set without it — drawn light grey)."""
        title, palette, _ = {**NUMERIC_COLOURS, **PROPERTY_COLOURS}[field]
        lo, hi = self.data.colour_limits[field]
        mapper = LinearColorMapper(palette=PALETTES[palette], low=lo, high=hi, nan_color=NAN_COLOUR)
        column = field
        if field in PROPERTY_COLOURS:
            self.source.data["prop"] = self.data.browser_map_columns[field]
            column = "prop"
        spec = {"field": column, "transform": mapper}
        self._set_colour(spec)
        self.colorbar.color_mapper, self.colorbar.title, self.colorbar.visible = mapper, title, True
        self.legend.items, self.legend.visible = [], False
        self.field, self.categories = field, []
        return title

    def categorical(self, groups: np.ndarray, order: list[str], colours: dict[str, str], title: str,
                    send_column: bool = True) -> list[str]:
        """Colour by ``groups`` (one label per row); legend entries are 'label (count)' in ``order``.
        Every category of ``order`` is in the mapper, so later patches of the column keep their colour;
        ``send_column=False`` when the caller already patched the ``group`` column in place."""
        present = [g for g in order if (groups == g).any()]
        mapper = CategoricalColorMapper(factors=list(order), palette=[colours[g] for g in order], nan_color=NAN_COLOUR)
        if send_column:
            self.source.data["group"] = groups  # one column; the rest of the map stays in the browser
        self._set_colour({"field": "group", "transform": mapper})
        labels = [f"{g} ({int((groups == g).sum()):,})" for g in present]
        self.legend.items = [LegendItem(label=lab, renderers=[self.renderer], index=int(np.flatnonzero(groups == g)[0]))
                             for g, lab in zip(present, labels)]
        self.legend.title, self.legend.visible = title, True
        self.colorbar.visible = False
        self.field, self.categories = "group", present
        return labels

    def _set_colour(self, spec) -> None:
        for r in (self.renderer, *self.mirrors):
            for glyph in (r.glyph, r.selection_glyph, r.nonselection_glyph):
                glyph.fill_color = spec


def selection_tools() -> list:
    return [BoxSelectTool(), LassoSelectTool()]


def hover(names=MAP_HOVER, renderers=None) -> HoverTool:
    return HoverTool(tooltips=list(names), renderers=renderers or "auto")
