"""Outliers tab: the materials whose DFT value lies furthest outside the GP's ±2σ interval.

The table holds at most ``TOP`` rows, so a filter change sends a few kilobytes, never the map. The
"contains element" field is an element symbol, validated (``parse_element``) and looked up in the
per-server element index (``data.contains``) — not a regular expression, so ``(`` or ``Xx`` gets a
message instead of a traceback or a silently empty table. A click on a row shows the material's details
and selects it in the session, so the maps highlight it too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param

from cfgp.dashboard.details import MaterialDetails
from cfgp.dashboard.compare import CompareView
from cfgp.dashboard.downloads import csv_bytes, download_button
from cfgp.dashboard.shared import ServerData, SessionState, controls, note, parse_element
from cfgp.dashboard import untrusted
from cfgp.properties import describe_filters

#: the table shows the TOP materials by |residual| − 2σ (the rest are comfortably inside ±2σ)
TOP = 300
SPLITS = {"test": "test", "pool": "pool", "train": "train", "all": "all"}
#: frame column → table header (units in the header, so the numbers need none)
COLUMNS = {
    "material_id": "material",
    "formula": "formula",
    "spacegroup_symbol": "space group",
    "dft": "DFT E_f (eV/atom)",
    "gp": "GP E_f (eV/atom)",
    "sigma": "σ (eV/atom)",
    "z": "z (units of σ)",
    "excess": "|res| − 2σ (eV/atom)",
    "split": "split",
}
ROUND = {"dft": 3, "gp": 3, "sigma": 3, "z": 2, "excess": 3}
#: fixed decimals in the browser (Tabulator's number formatter), so columns line up
FORMATTERS = {k: {"type": "money", "decimal": ".", "thousand": "", "precision": n} for k, n in ROUND.items()}


def outlier_rows(data: ServerData, split: str, phosphates_only: bool, element: str | None,
                 keep: np.ndarray | None = None) -> pd.DataFrame:
    """The filtered materials sorted by |residual| − 2σ, largest first, at most ``TOP``; indexed by frame row.
    ``keep`` is the session's property-filter mask (None: every material)."""
    f = data.frame
    mask = np.isfinite(f["excess"].to_numpy(float))
    if keep is not None:
        mask &= keep
    if split != "all":
        mask &= f["split"].to_numpy() == split
    if phosphates_only:
        mask &= f["is_phosphate"].to_numpy(bool)
    if element:
        mask &= data.contains(element)
    sub = f.loc[mask, list(COLUMNS)]
    sub = sub.sort_values("excess", ascending=False, kind="stable").head(TOP).round(ROUND)
    sub.index = f.loc[sub.index, "row"].to_numpy()
    return sub


class Outliers(pn.viewable.Viewer):
    """Largest |residual| − 2σ first, filterable by split, phosphates and element; click a row for details."""

    split = param.Selector(default="test", objects=list(SPLITS.values()))
    phosphates_only = param.Boolean(default=False)
    element = param.String(default="")
    compare_nearest = param.Boolean(default=False, doc="show the nearest training material beside the one shown")

    def __init__(self, data: ServerData, state: SessionState, **params):
        params.setdefault("name", "Outliers")
        super().__init__(**params)
        self.data, self.state = data, state
        self.split_select = pn.widgets.Select(label="split", options=SPLITS, value=self.split, width=120)
        self.phos_box = pn.widgets.Checkbox(label="phosphates only", value=self.phosphates_only, width=160)
        self.element_input = pn.widgets.TextInput(label="contains element", value=self.element,
                                                  placeholder="e.g. Li", width=140, css_classes=["outliers-element"])
        self.split_select.link(self, value="split", bidirectional=True)
        self.phos_box.link(self, value="phosphates_only", bidirectional=True)
        self.element_input.link(self, value="element", bidirectional=True)
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, name="outliers-message",
                                     css_classes=["outliers-message"])
        self.summary = pn.pane.Markdown("", name="outliers-summary", css_classes=["outliers-summary"],
                                        margin=(0, 10))
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=list(COLUMNS)), titles=COLUMNS, formatters=FORMATTERS, layout="fit_columns",
            text_align={k: "right" for k in ROUND}, configuration={"columnDefaults": {"headerWordWrap": True}},
            show_index=False, disabled=True,
            pagination="local", page_size=15, selectable=1, label="outliers", css_classes=["outliers"],
            sizing_mode="stretch_width")
        self.table.on_click(self._on_click)
        self.download = download_button("Download table (CSV)", "outliers.csv",
                                        lambda: csv_bytes(self.table.value, COLUMNS), "outliers-download", width=200)
        self.details = MaterialDetails(data, "Click a row to see the material and its crystal structure "
                                             "(drag to rotate).", name="outliers-details")
        # "why is the GP wrong here?": the shown material beside its nearest training material (on request)
        self.compare = CompareView(data, css_class="compare")
        self.compare_box = pn.widgets.Checkbox(label="compare with nearest training material", value=False,
                                               css_classes=["outliers-compare"])
        self.compare_box.link(self, value="compare_nearest", bidirectional=True)
        self.param.watch(lambda e: self._follow_details(), "compare_nearest")
        self.details.param.watch(lambda e: self._follow_details(), "shown")
        state.param.watch(lambda e: self._update(), "filter_mask")
        self._update()

    @param.depends("split", "phosphates_only", "element", watch=True)
    def _update(self) -> None:
        d = self.data
        self.message.visible = False
        element = None
        if self.element.strip():
            try:
                element = parse_element(self.element)
            except ValueError as exc:
                self._warn(f"Contains element: {exc}. The table is not filtered by element.")
        rows = outlier_rows(d, self.split, self.phosphates_only, element, self.state.filter_mask)
        if element and rows.empty:
            where = "" if self.split == "all" else f"{self.split} "
            kind = "phosphate" if self.phosphates_only else "material"
            if not d.contains(element).any():
                self._warn(f"No material of this data set contains {element}.")
            else:
                self._warn(f"No {where}{kind} contains {element}.")
        self.table.value = rows
        self.summary.object = self._summary(len(rows))

    def _warn(self, message: str) -> None:
        """Show a plain-text message (escaped: it may quote what the user typed)."""
        self.message.object, self.message.visible = untrusted.text(message), True

    def _summary(self, shown: int) -> str:
        """How many of the chosen split lie outside ±2σ and what share of those are phosphates (the paper's
        claim, checked on this run rather than asserted)."""
        f = self.data.frame
        in_split = f if self.split == "all" else f[f["split"] == self.split]
        in_split = in_split[np.isfinite(in_split["excess"].to_numpy(float))]
        n = len(in_split)
        if n == 0:
            return "No labelled materials in this split."
        out = in_split[in_split["excess"] > 0]
        where = "labelled" if self.split == "all" else self.split
        text = (f"**{len(out):,} of {n:,} {where} materials** lie outside their GP ±2σ interval "
                f"({100 * len(out) / n:.1f} %; a calibrated σ puts ≈ 5 % there)")
        if len(out):
            text += (f"; {100 * out['is_phosphate'].mean():.0f} % of those are phosphates, against "
                     f"{100 * in_split['is_phosphate'].mean():.0f} % of all {where} materials")
        filtered = (f" and the map's property filters ({describe_filters(self.state.filters)})"
                    if self.state.filter_mask is not None else "")
        return text + (f". Table: {shown:,} materials after the filters{untrusted.text(filtered)}, largest excess "
                       f"first (at most {TOP}).")

    def _follow_details(self) -> None:
        self.compare.show(self.details.shown if self.compare_nearest else None)

    def _on_click(self, event) -> None:
        try:
            row = int(self.table.value.index[event.row])
        except (IndexError, TypeError, ValueError):
            return
        self.details.show(row)
        self.state.focus = row
        self.state.select([row])

    def __panel__(self):
        return pn.Column(
            note("**Outliers.** Materials whose DFT value lies furthest outside the GP's ±2σ interval (largest "
                 "|residual| − 2σ first). The paper found phosphates over-represented among its worst outliers; "
                 "the line below the filters checks that claim on this run. Type an element symbol (Li, P, …) to "
                 "keep the materials that contain it. Click a row for its details and crystal structure (drag to "
                 "rotate); it is also selected on the maps."),
            controls(self.split_select, self.phos_box, self.element_input, self.download),
            self.message, self.summary,
            pn.Row(self.table, pn.Column(self.details, width=440, css_classes=["outliers-details-column"])),
            self.compare_box, self.compare,
            name="Outliers")
