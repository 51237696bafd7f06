"""The search box above the tabs: find a material by id, formula or elements, and open it from the result list.

A researcher names materials — "mp-555838", "SnPO3F", "ZrP2(HO3)2", "P F -Si" — rather than finding them on a map.
The query is read by the core (:func:`cfgp.search.search`: an id wins, then a formula pymatgen reads, then an
element set) against the run's materials; the box shows at most :data:`cfgp.search.MAX_RESULTS` rows with the
numbers the other tabs show, and a click on a row opens that material (selected in the session, so every map
highlights it, and its details with the crystal on the Latent map tab, or on the Outliers tab when that is open).
The query is part of the view, so a link (``?q=SnPO3F``) opens with the same results; it is untrusted text, shown
only through :mod:`cfgp.dashboard.untrusted` and read only by the core's bounded parser.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd
import panel as pn
import param

from cfgp.dashboard import untrusted
from cfgp.dashboard.outliers import FORMATTERS, ROUND
from cfgp.dashboard.shared import ServerData
from cfgp.search import SearchError

#: frame column → result table header (units in the header)
COLUMNS = {
    "material_id": "material",
    "formula": "formula",
    "spacegroup_symbol": "space group",
    "split": "split",
    "dft": "DFT E_f (eV/atom)",
    "gp": "GP E_f (eV/atom)",
    "sigma": "σ (eV/atom)",
}
PLACEHOLDER = "Find a material: mp-555838, SnPO3F, ZrP2(HO3)2, or elements: P F -Si"
#: rows visible at once in the result list (it scrolls; a search returns at most MAX_RESULTS)
PAGE_ROWS = 8


class Finder(pn.viewable.Viewer):
    """Search box, a one-line summary and the result table; ``on_open(row)`` is called when a result is clicked."""

    query = param.String(default="", doc="the search as typed (the link's ``q``)")

    def __init__(self, data: ServerData, on_open: Callable[[int], None] | None = None, **params):
        super().__init__(**params)
        self.data, self.on_open = data, on_open
        self.box = pn.widgets.TextInput(placeholder=PLACEHOLDER, value=self.query, width=430,
                                        css_classes=["search-box"])
        self.box.link(self, value="query")
        self.summary = pn.pane.Markdown("", css_classes=["search-summary"], margin=(6, 10), visible=False)
        self.clear_button = pn.widgets.Button(label="Close results", width=130, visible=False,
                                              css_classes=["search-close"])
        self.clear_button.on_click(lambda _e: setattr(self, "query", ""))
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=list(COLUMNS)), titles=COLUMNS, formatters=FORMATTERS, layout="fit_columns",
            text_align={k: "right" for k in ROUND}, show_index=False, disabled=True, selectable=1,
            pagination="local", page_size=PAGE_ROWS, css_classes=["search-results"], visible=False,
            sizing_mode="stretch_width")
        self.table.on_click(self._on_click)
        self.result = None
        self._search()

    @param.depends("query", watch=True)
    def _search(self) -> None:
        if self.box.value != self.query:
            self.box.value = self.query
        text = self.query.strip()
        if not text:
            self.result = None
            for part in (self.summary, self.table, self.clear_button):
                part.visible = False
            return
        self.clear_button.visible = self.summary.visible = True
        try:
            result = self.data.find(text)
        except SearchError as exc:
            self.result = None
            self.summary.object = untrusted.text(f"Search {untrusted.quoted(text)}: {exc}.")
            self.table.visible = False
            return
        self.result = result
        rows = self.data.frame.iloc[result.rows]
        shown = rows[list(COLUMNS)].round(ROUND)
        shown.index = rows["row"].to_numpy()
        self.table.value = shown
        self.table.visible = len(shown) > 0
        more = f" (the first {len(shown):,} shown)" if result.n_matches > len(shown) else ""
        found = f"**{result.n_matches:,}** {'material' if result.n_matches == 1 else 'materials'}"
        self.summary.object = (f"{found} for {untrusted.text(result.description)}{more}"
                               + (" — click one to open it." if len(shown) else "."))

    def _on_click(self, event) -> None:
        value = self.table.value
        if event.row is None or not 0 <= event.row < len(value) or self.on_open is None:
            return
        self.on_open(int(value.index[event.row]))

    def __panel__(self):
        return pn.Column(pn.Row(self.box, self.summary, self.clear_button, sizing_mode="stretch_width"),
                         self.table, sizing_mode="stretch_width", name="search")
