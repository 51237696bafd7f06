"""One material's details: the text every tab shows for a clicked material, and its 3-D structure."""

from __future__ import annotations

import panel as pn

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


class MaterialDetails(pn.viewable.Viewer):
    """A details panel (text + rotatable crystal) that any tab can point at a row."""

    def __init__(self, data: ServerData, placeholder: str, name: str = "details", height: int = 360,
                 css_class: str = "details", **params):
        super().__init__(**params)
        self.data = data
        self.placeholder = placeholder
        self.text = pn.pane.Markdown(placeholder, name=name, css_classes=[css_class])
        self.structure = pn.pane.Plotly(None, height=height, config={"displaylogo": False}, visible=False)
        self.row = None

    def show(self, row: int | None, note: str = "") -> None:
        if row is None:
            self.row = None
            self.text.object = note or self.placeholder
            self.structure.visible = False
            return
        if row == self.row:
            return
        self.row = int(row)
        fig, problem = structure_figure(self.data, row)
        self.text.object = material_text(self.data, row) + (f"\n\n{problem}" if problem else "")
        self.structure.object = fig
        self.structure.visible = fig is not None

    def __panel__(self):
        return pn.Column(self.text, self.structure)
