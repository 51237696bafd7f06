"""One material's details: the text every tab shows for a clicked material, and its 3-D structure.

The rotatable structure is a Plotly figure drawn in an iframe that loads plotly.js (4.7 MB) from the Panel
server only when a structure is first shown. Declaring Plotly as a page extension instead made every
session's first page parse it: with ten browsers opening the app at once on 2 cores, that alone took the
slowest first plot from ~20 s to ~37 s (benchmarks/app_latency.py).
"""

from __future__ import annotations

import html
import io
from functools import lru_cache
from pathlib import Path

import panel as pn

from cfgp.dashboard.downloads import download_button

from cfgp import plots
from cfgp.data import DataError
from cfgp.dashboard.shared import ServerData


def material_text(data: ServerData, row: int) -> str:
    """Markdown with the identity, DFT value and GP prediction (± σ, 2σ interval, z) of one material."""
    r = data.frame.iloc[int(row)]
    split = r.split or "unused"
    return (f"### {r.formula} ({r.material_id})\nspace group {r.spacegroup_symbol}, {r.nsites} atoms per cell, "
            f"{split} split{' · phosphate' if r.is_phosphate else ''}\n\n"
            f"DFT E_f **{r.dft:.3f}** eV/atom · GP **{r.gp:.3f} ± {r.sigma:.3f}** eV/atom (2σ interval "
            f"{r.gp - 2 * r.sigma:.3f} to {r.gp + 2 * r.sigma:.3f}) · z = {r.z:.2f} · |residual| − 2σ = "
            f"{r.excess:.3f} eV/atom")


def structure_figure(data: ServerData, row: int):
    """Plotly figure of the crystal, or None with a reason if the structure cannot be built."""
    try:
        return plots.structure_figure(data.run.materials.structure(int(row))), ""
    except DataError as exc:
        return None, f"Structure unavailable: {exc}"


@lru_cache(maxsize=1)
def plotly_js_url() -> str:
    """plotly.js as the Panel server serves it (relative to the app's page, so prefixes keep working)."""
    dist = Path(pn.__file__).parent / "dist"
    found = sorted(dist.glob("bundled/plotlyplot/plotly-*.min.js"))
    if not found:
        raise FileNotFoundError("plotly.js is not bundled with this Panel")
    return "static/extensions/panel/" + found[-1].relative_to(dist).as_posix()


def structure_html(fig, height: int = 360) -> str:
    """An iframe that draws ``fig`` with plotly.js served by the Panel server (no CDN, loaded on demand)."""
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><script src='{plotly_js_url()}'></script>"
            "<style>html,body{margin:0;height:100%;overflow:hidden}</style></head><body>"
            f"<div id='fig' style='width:100%;height:{height}px'></div><script>const f = {fig.to_json()};"
            "Plotly.newPlot('fig', f.data, f.layout, {displaylogo: false, responsive: true});</script>"
            "</body></html>")
    return (f'<iframe class="structure-view" title="crystal structure" style="width:100%;height:{height + 4}px;'
            f'border:0" srcdoc="{html.escape(page, quote=True)}"></iframe>')


class MaterialDetails(pn.viewable.Viewer):
    """A details panel (text + rotatable crystal) that any tab can point at a row."""

    def __init__(self, data: ServerData, placeholder: str, name: str = "details", height: int = 360,
                 css_class: str = "details", **params):
        super().__init__(**params)
        self.data = data
        self.placeholder = placeholder
        self.text = pn.pane.Markdown(placeholder, name=name, css_classes=[css_class])
        self.height = height
        self.structure = pn.pane.HTML("", height=height + 8, visible=False, sizing_mode="stretch_width")
        self.row = None
        self.cif_download = download_button("Download CIF", "material.cif", self._cif, f"{css_class}-cif",
                                            visible=False, width=160)

    def _cif(self) -> io.BytesIO:
        """The material's CIF exactly as the data set holds it (the file the DFT value belongs to)."""
        return io.BytesIO(str(self.data.run.materials.frame["cif"].iloc[self.row]).encode("utf-8"))

    def show(self, row: int | None, note: str = "") -> None:
        if row is None:
            self.row = None
            self.text.object = note or self.placeholder
            self.structure.visible = self.cif_download.visible = False
            return
        if row == self.row:
            return
        self.row = int(row)
        self.cif_download.filename = f"{self.data.frame['material_id'].iloc[self.row]}.cif"
        self.cif_download.visible = True
        fig, problem = structure_figure(self.data, row)
        self.text.object = material_text(self.data, row) + (f"\n\n{problem}" if problem else "")
        self.structure.object = structure_html(fig, self.height) if fig is not None else ""
        self.structure.visible = fig is not None

    def __panel__(self):
        return pn.Column(self.text, self.cif_download, self.structure)
