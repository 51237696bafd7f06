""""Why is the GP wrong here?" — a material beside its nearest training material in latent space.

The GP's prediction for a material is a kernel-weighted blend of the training materials' DFT values; with the
Laplacian kernel k = a² exp(−d/l) the nearest training latent weighs most. Showing that neighbour — its DFT and
GP values, its structure and coordination, and how far it is — next to the outlier lets a user see what the GP
leaned on and judge whether the two crystals are chemically alike (a PO3H tetrahedron beside a PO4 one, a
metal-rich suboxide beside an ordinary oxide). Distances are Euclidean on the latents scaled as the GP's kernel
sees them (``ServerData.Xs``, the GP's own feature scaling). What explains the GP's error is not the kernel's
prior correlation exp(−d/l) (≈ 1 for every pair when l is in the thousands) but the neighbour's weight in the GP's
linear smoother, the GP's posterior correlation between the two (:meth:`cfgp.gp.CFGP.smoother_weights`,
:meth:`~cfgp.gp.CFGP.posterior_covariance`), how unusual the distance is among test materials, and the neighbour's
own residual.
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
    typical: float      # median nearest-training distance of the test split, for scale
    percentile: float   # the distance's percentile among the test split's nearest-training distances
    n_close: int        # training materials nearer to the material than the test split's median (how crowded)
    weight: float       # the neighbour's weight in the GP's linear smoother k_xᵀ(K + σ²I)⁻¹ (NaN: approximate GP)
    weight_rank: int    # 1 when no training material weighs more (0: unknown)
    top_weight_share: float  # share of Σ|w| that the ten largest weights carry
    posterior_correlation: float  # the GP's posterior correlation between the two latent values


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
def test_distances(data: ServerData) -> np.ndarray:
    """Sorted distances of the test materials to their nearest training materials (what "near" means in this
    run)."""
    test = np.asarray(data.run.split.test, dtype=int)
    test = test[np.isfinite(data.X[test]).all(axis=1)]
    if not len(test):
        return np.zeros(0)
    return np.sort(np.concatenate([_nearest(data, chunk)[1]
                                   for chunk in np.array_split(test, max(1, len(test) // 512))]))


def typical_distance(data: ServerData) -> float:
    """Median distance of a test material to its nearest training material."""
    d = test_distances(data)
    return float(np.median(d)) if len(d) else float("nan")


def nearest_training(data: ServerData, row: int) -> Neighbour:
    """The training material whose latent is nearest to ``row``'s; ValueError if ``row`` has no latent."""
    row = int(row)
    if not np.isfinite(data.X[row]).all():
        raise ValueError(f"{data.frame['material_id'].iloc[row]} has no latent vector (its featurisation "
                         "failed), so it has no neighbour in latent space")
    nb, d = _nearest(data, np.array([row]))
    dist, neighbour = float(d[0]), int(nb[0])
    dists = test_distances(data)
    typical = typical_distance(data)
    percentile = 100.0 * np.searchsorted(dists, dist, side="right") / len(dists) if len(dists) else float("nan")
    train, T = _train_latents(data)
    to_train = np.sqrt(np.maximum(((T - data.Xs[row]) ** 2).sum(1), 0.0))
    n_close = int(((to_train < typical) & (train != row)).sum()) if np.isfinite(typical) else 0
    weight, rank, share, corr = float("nan"), 0, float("nan"), float("nan")
    try:
        w = data.gp.smoother_weights(data.X[[row]])[0]
        col = int(np.flatnonzero(train == neighbour)[0])
        weight = float(w[col])
        rank = int((np.abs(w) > abs(weight)).sum()) + 1
        share = float(np.sort(np.abs(w))[::-1][:10].sum() / np.abs(w).sum())
        cov = data.gp.posterior_covariance(data.X[[row, neighbour]])
        corr = float(cov[0, 1] / np.sqrt(max(cov[0, 0] * cov[1, 1], 1e-300)))
    except ValueError:  # an approximate (sparse or local) GP has no exact smoother to read
        pass
    return Neighbour(row, neighbour, dist, typical, percentile, n_close, weight, rank, share, corr)


def _values(data: ServerData, row: int) -> str:
    r = data.frame.iloc[row]
    return (f"| {r.formula} | {r.material_id} | {r.split or 'unused'} | {r.dft:.3f} | {r.gp:.3f} ± {r.sigma:.3f} | "
            f"{r.residual:+.3f} | {r.z:+.2f} |")


def compare_markdown(data: ServerData, nb: Neighbour) -> str:
    """The two materials' numbers side by side, the distance, and what the GP leaned on."""
    f = data.frame
    a, b = f.iloc[nb.row], f.iloc[nb.neighbour]
    scale = (f", farther than {nb.percentile:.0f} % of test materials are from theirs (median {nb.typical:.3f}); "
             f"{nb.n_close:,} training materials lie nearer to it than that median" if np.isfinite(nb.typical) else "")
    if np.isfinite(nb.weight):
        lean = (f"In the GP's prediction (a weighted sum of training labels, weights k_xᵀ(K + σ²I)⁻¹) the "
                f"neighbour's label has weight **{nb.weight:.3f}** (rank {nb.weight_rank:,} of "
                f"{len(_train_latents(data)[0]):,}; the ten largest weights carry {100 * nb.top_weight_share:.0f} % "
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
    flagged = "" if bool(a.get("in_domain", True)) else f" It is flagged out of domain: {a.domain}."
    return (
        "#### Why is the GP wrong here?\n"
        f"**{a.formula}** beside its nearest training material in latent space, **{b.formula}**: distance "
        f"**{nb.distance:.3f}** in the GP's scaled latent space{scale}.{flagged} {lean}\n\n"
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
