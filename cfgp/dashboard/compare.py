""""Why is the GP wrong here?" — a material beside its nearest training material in latent space.

The GP's prediction for a material is a kernel-weighted blend of the training materials' DFT values; with the
Laplacian kernel k = a² exp(−d/l) the nearest training latent weighs most. Showing that neighbour — its DFT and
GP values, its structure and coordination, and how far it is — next to the outlier lets a user see what the GP
leaned on and judge whether the two crystals are chemically alike (a PO3H tetrahedron beside a PO4 one, a
metal-rich suboxide beside an ordinary oxide). Distances are Euclidean on the latents scaled as the GP's kernel
sees them (``ServerData.Xs``, the GP's own feature scaling), so exp(−d/l) is the kernel's correlation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import panel as pn
import param

from cfgp.dashboard.details import MaterialDetails
from cfgp.dashboard.shared import ServerData
from cfgp.dashboard import untrusted


@dataclass(frozen=True)
class Neighbour:
    """The nearest training material of ``row`` and how close it is."""

    row: int
    neighbour: int
    distance: float
    correlation: float  # exp(−d / l): the kernel's correlation between the two latents
    typical: float      # median nearest-training distance of the test split, for scale


@lru_cache(maxsize=4)
def _train_latents(data: ServerData) -> tuple[np.ndarray, np.ndarray]:
    """Training rows with a finite latent, and their scaled latents (once per server)."""
    train = np.asarray(data.run.split.train, dtype=int)
    train = train[np.isfinite(data.X[train]).all(axis=1)]
    return train, np.ascontiguousarray(data.Xs[train])


def _nearest(data: ServerData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows``: the nearest training row (itself excluded) and the distance, in the GP's space."""
    train, T = _train_latents(data)
    Q = data.Xs[rows]
    d2 = (Q ** 2).sum(1)[:, None] + (T ** 2).sum(1)[None, :] - 2 * Q @ T.T
    d2[rows[:, None] == train[None, :]] = np.inf  # a training material is not its own neighbour
    k = np.argmin(d2, axis=1)
    return train[k], np.sqrt(np.maximum(d2[np.arange(len(rows)), k], 0.0))


@lru_cache(maxsize=4)
def typical_distance(data: ServerData) -> float:
    """Median distance of a test material to its nearest training material (what "near" means in this run)."""
    test = np.asarray(data.run.split.test, dtype=int)
    test = test[np.isfinite(data.X[test]).all(axis=1)]
    if not len(test):
        return float("nan")
    dist = np.concatenate([_nearest(data, chunk)[1] for chunk in np.array_split(test, max(1, len(test) // 512))])
    return float(np.median(dist))


def nearest_training(data: ServerData, row: int) -> Neighbour:
    """The training material whose latent is nearest to ``row``'s; ValueError if ``row`` has no latent."""
    row = int(row)
    if not np.isfinite(data.X[row]).all():
        raise ValueError(f"{data.frame['material_id'].iloc[row]} has no latent vector (its featurisation "
                         "failed), so it has no neighbour in latent space")
    nb, d = _nearest(data, np.array([row]))
    dist = float(d[0])
    return Neighbour(row, int(nb[0]), dist, float(np.exp(-dist / data.gp.length_scale_)), typical_distance(data))


def _values(data: ServerData, row: int) -> str:
    r = data.frame.iloc[row]
    return (f"| {r.formula} | {r.material_id} | {r.split or 'unused'} | {r.dft:.3f} | {r.gp:.3f} ± {r.sigma:.3f} | "
            f"{r.residual:+.3f} | {r.z:+.2f} |")


def compare_markdown(data: ServerData, nb: Neighbour) -> str:
    """The two materials' numbers side by side, the distance, and what the GP leaned on."""
    f = data.frame
    a, b = f.iloc[nb.row], f.iloc[nb.neighbour]
    scale = (f"; the median for a test material is {nb.typical:.3f}" if np.isfinite(nb.typical) else "")
    flagged = "" if bool(a.get("in_domain", True)) else f" It is flagged out of domain: {a.domain}."
    return (
        "#### Why is the GP wrong here?\n"
        f"**{a.formula}** beside its nearest training material in latent space, **{b.formula}**: distance "
        f"**{nb.distance:.3f}** in the GP's scaled latent space{scale}; kernel correlation exp(−d/l) = "
        f"{nb.correlation:.2f} (l = {data.gp.length_scale_:.3f}).{flagged}\n\n"
        "| formula | material | split | DFT E_f (eV/atom) | GP E_f ± σ (eV/atom) | GP − DFT | z |\n"
        "|---|---|---|---|---|---|---|\n"
        f"{_values(data, nb.row)}\n{_values(data, nb.neighbour)}\n\n"
        f"The GP puts {a.formula} at {a.gp:.3f}, {abs(a.gp - b.dft):.3f} eV/atom from its neighbour's DFT value "
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
            self.neighbour = nb = nearest_training(self.data, self.row)
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
