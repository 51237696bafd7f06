""""Why is the GP wrong here?" — a material beside its nearest training material in latent space.

Showing that neighbour — its DFT and GP values, its structure and coordination, and how far it is — next to the
outlier lets a user see what the GP leaned on and judge whether the two crystals are chemically alike (a PO3H
tetrahedron beside a PO4 one, a metal-rich suboxide beside an ordinary oxide). The numbers come from
:mod:`cfgp.neighbours` (``ServerData.neighbours``); this module words them and lays the two materials out.
"""

from __future__ import annotations

import numpy as np
import panel as pn
import param

from cfgp.dashboard import untrusted
from cfgp.dashboard.details import MaterialDetails
from cfgp.dashboard.shared import ServerData
from cfgp.neighbours import TOP_WEIGHTS, Neighbour


def _values(data: ServerData, row: int) -> str:
    r = data.frame.iloc[row]
    t = untrusted.text  # names and ids come from the data file
    return (f"| {t(r.formula)} | {t(r.material_id)} | {t(r.split or 'unused')} | {r.dft:.3f} | "
            f"{r.gp:.3f} ± {r.sigma:.3f} | "
            f"{r.residual:+.3f} | {r.z:+.2f} |")


def compare_markdown(data: ServerData, nb: Neighbour) -> str:
    """The two materials' numbers side by side, the distance, and what the GP leaned on."""
    f, t = data.frame, untrusted.text  # names and ids come from the data file
    a, b = f.iloc[nb.row], f.iloc[nb.neighbour]
    scale = (f", farther than {nb.percentile:.0f} % of test materials are from theirs (median {nb.typical:.3f}); "
             f"{nb.n_close:,} training materials lie nearer to it than that median" if np.isfinite(nb.typical) else "")
    if np.isfinite(nb.weight):
        lean = (f"In the GP's prediction (a weighted sum of training labels, weights k_xᵀ(K + σ²I)⁻¹) the "
                f"neighbour's label has weight **{nb.weight:.3f}** (rank {nb.weight_rank:,} of "
                f"{nb.n_train:,}; the {TOP_WEIGHTS} largest weights carry {100 * nb.top_weight_share:.0f} % "
                f"of the total), and the GP's posterior correlation between the two is "
                f"**{nb.posterior_correlation:.2f}**: ")
        lean += ("their errors go together, so the neighbour's own residual "
                 f"({b.residual:+.3f} eV/atom) says how far the GP is off here."
                 if nb.posterior_correlation >= 0.5 else
                 f"the GP treats them as largely independent, so the neighbour's residual ({b.residual:+.3f} "
                 "eV/atom) explains little of this one.")
    else:
        lean = (f"The neighbour's own residual is {b.residual:+.3f} eV/atom (this GP is approximate, so its "
                "smoother weights are not shown).")
    flagged = "" if bool(a.get("in_domain", True)) else f" It is flagged out of domain: {t(a.domain)}."
    return (
        "#### Why is the GP wrong here?\n"
        f"**{t(a.formula)}** beside its nearest training material in latent space, **{t(b.formula)}**: distance "
        f"**{nb.distance:.3f}** in the GP's scaled latent space{scale}.{flagged} {lean}\n\n"
        "| formula | material | split | DFT E_f (eV/atom) | GP E_f ± σ (eV/atom) | GP − DFT | z |\n"
        "|---|---|---|---|---|---|---|\n"
        f"{_values(data, nb.row)}\n{_values(data, nb.neighbour)}\n\n"
        f"The GP puts {t(a.formula)} at {a.gp:.3f}, {abs(a.gp - b.dft):.3f} eV/atom from its neighbour's DFT value "
        f"({b.dft:.3f}); DFT puts the two {abs(a.dft - b.dft):.3f} eV/atom apart. Compare the structures and "
        "coordination below: what differs between them is what the latent did not encode.")


class CompareView(pn.viewable.Viewer):
    """A material and its nearest training material, numbers and crystals side by side."""

    row = param.Integer(default=None, allow_None=True)

    def __init__(self, data: ServerData, css_class: str = "compare", **params):
        super().__init__(**params)
        self.data = data
        self.summary = pn.pane.Markdown("", css_classes=[f"{css_class}-summary"], sizing_mode="stretch_width")
        self.left = MaterialDetails(data, "", name=f"{css_class}-left", height=320, css_class=f"{css_class}-left")
        self.right = MaterialDetails(data, "", name=f"{css_class}-right", height=320,
                                     css_class=f"{css_class}-right")
        self.neighbour: Neighbour | None = None
        self.layout = pn.Column(self.summary, pn.Row(pn.Column(self.left, width=480), pn.Column(self.right, width=480)),
                                visible=False, sizing_mode="stretch_width", css_classes=[css_class])

    @param.depends("row", watch=True)
    def _update(self) -> None:
        if self.row is None:
            self.neighbour = None
            self.layout.visible = False
            return
        try:
            self.neighbour = nb = self.data.neighbours.explain(self.row)
        except ValueError as exc:
            self.neighbour = None
            self.summary.object = untrusted.text(f"No comparison: {exc}.")
            self.left.show(self.row)
            self.right.show(None, "")
            self.layout.visible = True
            return
        self.summary.object = compare_markdown(self.data, nb)
        self.left.show(nb.row)
        self.right.show(nb.neighbour)
        self.layout.visible = True

    def show(self, row: int | None) -> None:
        self.row = None if row is None else int(row)

    def __panel__(self):
        return self.layout
