"""The crystal viewer's figure (Plotly, rotate and zoom in the browser): what :mod:`cfgp.crystal_view` computes,
drawn. The dashboard's details pane and the notebooks show it."""

from __future__ import annotations

import numpy as np

from cfgp.crystal_view import crystal_view
from cfgp.palette import ATOM_OUTLINE, BOND, CELL_EDGE


def structure_figure(structure, title: str = "", supercell: tuple[int, int, int] = (1, 1, 1)):
    """Interactive 3-D view of a crystal (plotly, served locally by Panel): see ``crystal_figure``."""
    return crystal_figure(crystal_view(structure, supercell=supercell), title=title)


def crystal_figure(view, title: str = "", height: int = 380):
    """Plotly figure of a ``cfgp.crystal_view.CrystalView``: atoms as spheres sized by their radius in VESTA's
    colours (one legend entry per element; the repeats on the cell's faces and polyhedron vertices outside it
    are in a second trace of the same legend group), bonds as grey lines, coordination polyhedra as translucent
    meshes (one per centre element; ``meta`` holds each polyhedron's vertex count and centre atom index), and
    the cell edges. Plotly gives rotate and zoom."""
    import plotly.graph_objects as go
    from pymatgen.core.periodic_table import Element

    fig = go.Figure()
    cart = view.cart
    elements = sorted(set(view.symbols), key=lambda e: Element(e).Z)
    for el in elements:
        for image in (False, True):
            idx = np.flatnonzero((view.symbols == el) & (view.is_image == image))
            if not len(idx):
                continue
            fig.add_trace(go.Scatter3d(
                x=cart[idx, 0], y=cart[idx, 1], z=cart[idx, 2], mode="markers",
                name=f"{el} (repeat)" if image else el, legendgroup=el, showlegend=not image,
                marker=dict(size=(4 + 8 * view.radius[idx]).tolist(), color=view.colour[idx[0]], opacity=1.0,
                            line=dict(width=0.5, color=ATOM_OUTLINE)),
                hovertext=[f"{el} · site {view.site[k]}" + (f" · cell {tuple(view.cell[k])}" if view.cell[k].any()
                                                             else "") for k in idx], hoverinfo="text"))
    if len(view.bonds):
        seg = np.full((len(view.bonds) * 3, 3), np.nan)
        seg[0::3], seg[1::3] = cart[view.bonds[:, 0]], cart[view.bonds[:, 1]]
        xs, ys, zs = ([None if np.isnan(v) else float(v) for v in seg[:, c]] for c in range(3))
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name="bonds", hoverinfo="skip",
                                   line=dict(color=BOND, width=3)))
    for el in elements:
        polys = [p for p in view.polyhedra if view.symbols[p[0]] == el and len(p[2])]
        if not polys:
            continue
        verts = np.concatenate([p[1] for p in polys])
        offsets = np.cumsum([0] + [len(p[1]) for p in polys])[:-1]
        tri = np.concatenate([p[2] + o for p, o in zip(polys, offsets)])
        fig.add_trace(go.Mesh3d(
            x=cart[verts, 0], y=cart[verts, 1], z=cart[verts, 2], i=tri[:, 0], j=tri[:, 1], k=tri[:, 2],
            color=view.colour[polys[0][0]], opacity=0.35, flatshading=True, name=f"{el} polyhedra",
            showlegend=True, legendgroup=f"{el} polyhedra", hoverinfo="skip", text=list(view.symbols[verts]),
            meta={"sizes": [int(len(p[1])) for p in polys], "centres": [int(p[0]) for p in polys]}))
    xs, ys, zs = [], [], []
    for a, b in view.cell_edges:
        for arr, c in ((xs, 0), (ys, 1), (zs, 2)):
            arr += [float(a[c]), float(b[c]), None]
    fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line=dict(color=CELL_EDGE, width=2), name="cell",
                               hoverinfo="skip", showlegend=False))
    fig.update_layout(title=title, margin=dict(l=0, r=0, t=30 if title else 0, b=0), height=height,
                      scene=dict(aspectmode="data", xaxis_title="x (Å)", yaxis_title="y (Å)", zaxis_title="z (Å)"),
                      legend=dict(itemsizing="constant"), uirevision="crystal")
    return fig
