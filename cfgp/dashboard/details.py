"""One material's details: the text every tab shows for a clicked material, and its 3-D structure.

The rotatable structure is a Plotly figure drawn in an iframe (``CrystalFrame``, one per panel, redrawn in
place) that loads plotly.js (4.7 MB) from the Panel server only when a structure is first shown. Declaring
Plotly as a page extension instead made every session's first page parse it: with ten browsers opening the
app at once on 2 cores, that alone took the slowest first plot from ~20 s to ~37 s (benchmarks/app_latency.py).

What the crystal shows — bonds, coordination polyhedra, the atoms repeated on the cell's faces, the
coordination text under it — is ``cfgp.crystal_view`` (pymatgen's CrystalNN, bounded on big cells), drawn as
Plotly meshes and lines: plotly.js is already served by Panel, so the viewer needs no other JavaScript bundle and
works offline in the same iframe. A view is built once per server for each (material, supercell) and shared by
the sessions (``crystal_view_of``).
"""

from __future__ import annotations

import io
import json
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import panel as pn
import param

from cfgp.dashboard.crystal_frame import CrystalFrame
from cfgp.dashboard.downloads import download_button

from cfgp import plotly_crystal
from cfgp.crystal_view import crystal_view
from cfgp.data import DataError
from cfgp.uncertainty.embedding_draws import spread_text
from cfgp.dashboard.shared import ServerData, in_document, reduced_formula
from cfgp.dashboard.theme import iframe_background, plotly_layout
from cfgp.dashboard import untrusted


def material_text(data: ServerData, row: int) -> str:
    """Markdown with the identity, DFT value and GP prediction (± σ, 2σ interval, z) of one material, and where
    its DFT energy lies among its polymorphs."""
    r = data.frame.iloc[int(row)]
    split = r.split or "unused"
    t = untrusted.text  # names and symbols come from the data file
    return (f"### {t(r.formula)} ({t(r.material_id)})\n"
            f"space group {t(r.spacegroup_symbol)}, {r.nsites} atoms per cell, "
            f"{split} split{' · phosphate' if r.is_phosphate else ''}\n\n"
            f"DFT E_f **{r.dft:.3f}** eV/atom · GP **{r.gp:.3f} ± {r.sigma:.3f}** eV/atom (2σ interval "
            f"{r.gp - 2 * r.sigma:.3f} to {r.gp + 2 * r.sigma:.3f}) · z = {r.z:.2f} · |residual| − 2σ = "
            f"{r.excess:.3f} eV/atom\n\n" + domain_text(r) + "\n\n" + polymorph_text(data, int(row)))


def domain_text(r) -> str:
    """Whether the model was made for this material, and if not why (rare chemistry names the element and how many
    training materials contain it, so a researcher knows how much the model has seen of it)."""
    if "in_domain" not in r.index or bool(r.in_domain):
        return "Domain: like the training materials (composition, elements and latent)."
    widened = f" to {r.sigma_cal:.3f} eV/atom" if "sigma_cal" in r.index else ""
    drawn = (f" ({spread_text(float(r.sigma_emb), bool(r.get('mean_from_draws', False)))})"
             if "sigma_emb" in r.index and np.isfinite(float(r.sigma_emb)) else "")
    return f"**Out of the model's domain**: {untrusted.text(r.domain)}; σ is widened for it{widened}{drawn}."


#: a polymorph this far above the lowest DFT energy of its formula is called out (eV/atom): on the default's test
#: oxides with a polymorph in the data set, those ≥ 0.2 above had MAE 0.32 and 2σ coverage 0.07 (README)
HIGH_POLYMORPH = 0.2


def polymorph_text(data: ServerData, row: int) -> str:
    """Where this material's DFT E_f lies among the materials of the data set with its reduced formula: a
    polymorph far above the lowest is one the GP tends to predict near the lowest (its latent is mostly
    composition), so its large residual says more about the structure than about the model's σ."""
    f = data.frame
    rows = data.formula_rows.get(reduced_formula(f["formula"].iat[row]), np.zeros(0, int))
    others = rows[rows != row]
    if not len(others):
        return "Polymorphs: no other material with this formula in the data set."
    dft = f["dft"].to_numpy(float)
    low = int(others[np.argmin(dft[others])])
    n = len(others) + 1
    about = f"the {n} materials with this formula in the data set"
    if dft[row] <= dft[low]:
        return (f"Polymorphs: the lowest DFT E_f of {about} (next: {untrusted.text(f['material_id'].iat[low])}, "
                f"{dft[low] - dft[row]:+.3f} eV/atom).")
    above = dft[row] - dft[low]
    warn = (" — a polymorph this far above the lowest tends to be predicted near it" if above >= HIGH_POLYMORPH
            else "")
    return (f"Polymorphs: {above:.3f} eV/atom above the lowest DFT E_f of {about} "
            f"({untrusted.text(f['material_id'].iat[low])}, "
            f"{dft[low]:.3f} eV/atom, {f['split'].iat[low] or 'unused'} split){warn}.")


#: views kept per server (a 200-site cell as a 2×2×2 supercell is ~1,700 atoms: a few hundred kB)
VIEW_CACHE = 64


@lru_cache(maxsize=VIEW_CACHE)
def crystal_view_of(data: ServerData, row: int, supercell: tuple[int, int, int] = (1, 1, 1)):
    """The ``CrystalView`` of one material (computed once per server, shared by every session)."""
    return crystal_view(data.run.materials.structure(int(row)), supercell=supercell)


def structure_figure(data: ServerData, row: int, supercell: tuple[int, int, int] = (1, 1, 1),
                     height: int = 380):
    """(Plotly figure, CrystalView, '') of the crystal, or (None, None, reason) if it cannot be drawn."""
    try:
        view = crystal_view_of(data, int(row), tuple(supercell))
    except (DataError, ValueError) as exc:
        return None, None, f"Structure unavailable: {exc}"
    return plotly_crystal.crystal_figure(view, height=height), view, ""


def coordination_markdown(view) -> str:
    """The coordination of each cation site type, one line each, and how the neighbours were found."""
    lines = [f"- {e.text}" for e in view.environments] or ["- no cation with neighbours found"]
    how = (f"neighbours by {view.method}" if not view.note else view.note[len("Neighbours: "):])
    return ("**Coordination** (" + how.rstrip(".") + f"; {view.seconds:.2f} s)\n\n" + "\n".join(lines))


def legend_html(view) -> str:
    """Element colours (VESTA's) and what the lines and translucent shapes are."""
    from pymatgen.core.periodic_table import Element

    els = sorted(set(view.symbols), key=lambda e: Element(e).Z)
    swatches = " ".join(f'<span class="legend-element" style="white-space:nowrap"><span style="color:'
                        f'{untrusted.text(str(view.colour[view.symbols == e][0]))};font-size:1.3em">●</span> '
                        f"{untrusted.text(e)}</span>" for e in els)
    centres = sorted({str(view.symbols[p[0]]) for p in view.polyhedra}, key=lambda e: Element(e).Z)
    poly = (f"translucent: coordination polyhedra of {', '.join(centres)}" if centres else "no polyhedra")
    cells = "×".join(map(str, view.supercell))
    return (f"<div>{swatches}</div><div style='font-size:0.85em;opacity:0.8'>grey lines: bonds · {poly} · "
            f"{view.n_cell_atoms} atoms in the {cells} cell, {int(view.is_image.sum())} repeated on its faces or "
            "completing a polyhedron · drag to rotate, scroll to zoom</div>")


@lru_cache(maxsize=1)
def plotly_js_url() -> str:
    """plotly.js as the Panel server serves it (relative to the app's page, so prefixes keep working)."""
    dist = Path(pn.__file__).parent / "dist"
    found = sorted(dist.glob("bundled/plotlyplot/plotly-*.min.js"))
    if not found:
        raise FileNotFoundError("plotly.js is not bundled with this Panel")
    return "static/extensions/panel/" + found[-1].relative_to(dist).as_posix()


def figure_json(fig, label: str) -> str:
    """What a ``CrystalFrame`` draws: ``fig`` in the session's look (dark template, projector text size) with a
    label saying what it shows."""
    fig.update_layout(**plotly_layout())
    return f'{{"label": {json.dumps(label)}, "fig": {fig.to_json()}}}'


class MaterialDetails(pn.viewable.Viewer):
    """A details panel any tab can point at a row: the text, a CIF download, the rotatable crystal (bonds,
    polyhedra, repeated boundary atoms) with its legend, "supercell 2×2×2" and "axes" toggles and the coordination of
    each cation site type."""

    supercell = param.Boolean(default=False, doc="draw the 2×2×2 supercell")
    axes = param.Boolean(default=False, doc="draw the x, y, z axes in Å (hidden by default: on a projector their "
                                            "numbers crowd the crystal)")
    shown = param.Integer(default=None, allow_None=True, doc="frame row of the material shown (None: none)")

    def __init__(self, data: ServerData, placeholder: str, name: str = "details", height: int = 360,
                 css_class: str = "details", **params):
        super().__init__(**params)
        self.data = data
        self.placeholder = placeholder
        self.css_class = css_class
        self.text = pn.pane.Markdown(placeholder, name=name, css_classes=[css_class])
        self.height = height
        # made once and redrawn in place: a new frame per material would parse plotly.js again on every tap
        self.structure = CrystalFrame(plotly_src=plotly_js_url(), frame_class=f"{css_class}-structure",
                                      frame_height=height, height=height + 8, visible=False,
                                      sizing_mode="stretch_width")
        self.legend = pn.pane.HTML("", visible=False, css_classes=[f"{css_class}-legend"], margin=(0, 10),
                                   sizing_mode="stretch_width")
        self.coordination = pn.pane.Markdown("", visible=False, css_classes=[f"{css_class}-coordination"],
                                             styles={"font-size": "0.9em"}, margin=(0, 10))
        self.supercell_box = pn.widgets.Checkbox(label="supercell 2×2×2", value=False, visible=False,
                                                 css_classes=[f"{css_class}-supercell"])
        self.supercell_box.link(self, value="supercell")
        self.axes_box = pn.widgets.Checkbox(label="axes (Å)", value=False, visible=False,
                                            css_classes=[f"{css_class}-axes"])
        self.axes_box.link(self, value="axes")
        self.row = None
        self.cif_download = download_button("Download CIF", "material.cif", self._cif, f"{css_class}-cif",
                                            visible=False, width=160)

    def _cif(self) -> io.BytesIO:
        """The material's CIF exactly as the data set holds it (the file the DFT value belongs to)."""
        return io.BytesIO(str(self.data.run.materials.frame["cif"].iloc[self.row]).encode("utf-8"))

    def show(self, row: int | None, note: str = "") -> None:
        if row is None:
            self.row = self.shown = None
            self.text.object = note or self.placeholder
            for pane in (self.structure, self.cif_download, self.legend, self.coordination, self.supercell_box,
                         self.axes_box):
                pane.visible = False
            return
        if row == self.row:
            return
        self.row = self.shown = int(row)
        self.cif_download.filename = f"{self.data.frame['material_id'].iloc[self.row]}.cif"
        self.cif_download.visible = True
        self._draw()

    @param.depends("supercell", "axes", watch=True)
    def _draw(self) -> None:
        if self.row is None:
            return
        self.text.object = material_text(self.data, self.row)
        # the numbers go to the browser now; the crystal follows on the session's next tick: its bonds and
        # polyhedra (pymatgen, 0.15-0.3 s) and the frame that loads plotly.js in the browser (tap -> crystal
        # 1.2 s in all) held the text back (tap -> text 0.9-1.1 s before, 0.26 s now: benchmarks/app_latency.py)
        in_document(partial(self._draw_structure, self.row, self.supercell, self.axes))

    def _draw_structure(self, row: int, supercell: bool, axes: bool = False) -> None:
        if (row, supercell, axes) != (self.row, self.supercell, self.axes):
            return  # another material or the other cell was asked for meanwhile: its own call draws it
        fig, view, problem = structure_figure(self.data, row, (2, 2, 2) if supercell else (1, 1, 1),
                                              height=self.height)
        if fig is not None and not axes:
            fig.update_scenes(xaxis_visible=False, yaxis_visible=False, zaxis_visible=False)
        if problem:
            self.text.object = material_text(self.data, row) + f"\n\n{untrusted.text(problem)}"
        if fig is not None:
            mid = self.data.frame["material_id"].iloc[row]
            self.structure.param.update(page_colour=iframe_background(),
                                        figure=figure_json(fig, f"{mid} {'2x2x2' if supercell else '1x1x1'}"))
        self.legend.object = legend_html(view) if view is not None else ""
        self.coordination.object = coordination_markdown(view) if view is not None else ""
        for pane in (self.structure, self.legend, self.coordination, self.supercell_box, self.axes_box):
            pane.visible = fig is not None

    def __panel__(self):
        return pn.Column(self.text, pn.Row(self.cif_download, self.supercell_box, self.axes_box), self.structure,
                         self.legend,
                         self.coordination)
