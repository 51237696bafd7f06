"""Static figures (matplotlib): the CLI's PNG, and the dashboard's PNG / SVG downloads of what a view shows.

Arrays in, a matplotlib ``Figure`` out, and :func:`figure_bytes` to encode it. Figures are built with
``matplotlib.figure.Figure`` rather than pyplot: no global figure registry, so a server can render for
several sessions without one figure leaking into another and nothing has to be closed. SVG keeps its
text as text (``svg.fonttype = "none"``), so titles and axis labels stay searchable and editable in a
vector editor; scatters of more than :data:`RASTER_POINTS` points are embedded as an image inside the
SVG (a 16k-point map would otherwise be a 4 MB file that editors crawl through), the rest stays vector.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from cfgp.al import curves
from cfgp.artefacts import atomic_write_bytes
from cfgp.learning_curve import PAPER_RETRAINED, summarise
from cfgp.palette import HIGHLIGHT, NAN_COLOUR, NEUTRAL, OTHER_STRATEGY, POINT, STRATEGY_COLOURS
from cfgp.pipeline import ALGroup

#: size of every figure (inches) and the PNG resolution: a PNG is FIGSIZE × DPI pixels
FIGSIZE = (7.2, 5.0)
DPI = 150
FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
#: scatters with more points than this are rasterised inside an SVG (text and axes stay vector)
RASTER_POINTS = 5000
POINT_BLUE, BAR_RED, GREY = POINT, HIGHLIGHT, NEUTRAL


def new_figure(figsize: tuple[float, float] = FIGSIZE):
    """A pyplot-free figure with one axes and a layout engine that keeps labels, colour bar and legend inside."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def figure_bytes(fig, fmt: str) -> bytes:
    """``fig`` encoded as PNG (FIGSIZE × DPI pixels) or SVG (text kept as text); the title goes in the
    file's metadata too."""
    import matplotlib

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}: choose one of {', '.join(FORMATS)}")
    title = fig.axes[0].get_title() if fig.axes else ""
    meta = {"Title": title} if title else {}
    buf = io.BytesIO()
    if fmt == "svg":
        meta["Date"] = None  # no date stamp and fixed ids: the same view gives the same file
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cfgp"}):
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=meta)
    return buf.getvalue()


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names (.png or .svg), atomically and never inside the
    shipped default (:func:`cfgp.artefacts.atomic_write_bytes`)."""
    path = Path(path)
    atomic_write_bytes(path, figure_bytes(fig, path.suffix.lstrip(".") or "png"))
    return path


def _scatter(ax, x, y, **kw):
    return ax.scatter(x, y, rasterized=len(x) > RASTER_POINTS, **kw)


def map_point_size(n: int) -> float:
    """Marker area (pt²) for a map of ``n`` points: small for the 16k default, larger for a few hundred, so
    that a small run's map is not a page of white."""
    return float(np.clip(20000 / max(n, 1), 3, 20))


def _highlight(ax, x, y, selected, label: str = "selected"):
    """Black rings around the selected points, as the dashboard draws a brushed selection (None if none)."""
    if selected is None or not len(selected):
        return None
    sel = np.asarray(selected, dtype=int)
    return _scatter(ax, np.asarray(x)[sel], np.asarray(y)[sel], s=28, facecolors="none", edgecolors="black",
                    linewidths=0.9, label=f"{label} ({len(sel):,})", zorder=5)


# ---------------------------------------------------------------- the dashboard's figures
def latent_map_figure(xy: np.ndarray, *, values: np.ndarray | None = None, palette: Sequence[str] | str = "viridis",
                      clim: tuple[float, float] | None = None, colour_label: str = "",
                      groups: np.ndarray | None = None, order: Sequence[str] = (),
                      colours: dict[str, str] | None = None, legend_title: str = "",
                      background: Sequence[str] = (), selected=None,
                      title: str = "t-SNE of the MEGNet latent space", axis_labels: tuple[str, str] | None = None):
    """The 2-D map coloured by a number (``values`` with a colour bar titled ``colour_label``; ``palette`` a
    matplotlib colormap name or a list of colours, as the dashboard's mapper holds them) or by a category
    (``groups``, one label per point; legend 'label (count)' in ``order``; groups in ``background`` are drawn
    first so the others stay visible). t-SNE axes have no meaning, so none are drawn; ``axis_labels`` (x, y) draws
    labelled axes, for a map of two properties."""
    from matplotlib.colors import ListedColormap

    xy = np.asarray(xy, dtype=float)
    size = map_point_size(len(xy))
    fig, ax = new_figure()
    if axis_labels is None:
        ax.set_axis_off()
    else:
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    if values is not None:
        cmap = ListedColormap(list(palette)) if not isinstance(palette, str) else palette
        lo, hi = clim if clim is not None else (np.nanmin(values), np.nanmax(values))
        sc = _scatter(ax, xy[:, 0], xy[:, 1], c=np.asarray(values, dtype=float), cmap=cmap, vmin=lo, vmax=hi,
                      s=size, linewidths=0, plotnonfinite=True)
        sc.cmap = sc.get_cmap().with_extremes(bad=NAN_COLOUR)
        fig.colorbar(sc, ax=ax, label=colour_label, shrink=0.85)
        if _highlight(ax, xy[:, 0], xy[:, 1], selected) is not None:
            ax.legend(loc="lower left", fontsize=8)
    elif groups is not None:
        groups = np.asarray(groups, dtype=object)
        colours = colours or {}
        present = [g for g in order if (groups == g).any()]
        drawn = [g for g in present if g in background] + [g for g in present if g not in background]
        handles = {}
        for g in drawn:
            m = groups == g
            handles[g] = _scatter(ax, xy[m, 0], xy[m, 1], s=size, linewidths=0, color=colours.get(g, GREY),
                                  label=f"{g} ({int(m.sum()):,})")
        ring = _highlight(ax, xy[:, 0], xy[:, 1], selected)
        shown = [handles[g] for g in present] + ([ring] if ring is not None else [])
        ax.legend(shown, [h.get_label() for h in shown], title=legend_title, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), markerscale=3, fontsize=8, frameon=False)
    else:
        _scatter(ax, xy[:, 0], xy[:, 1], s=size, linewidths=0, color=POINT_BLUE)
        if _highlight(ax, xy[:, 0], xy[:, 1], selected) is not None:
            ax.legend(loc="lower left", fontsize=8)
    return fig


def parity_figure(dft: np.ndarray, gp: np.ndarray, *, bars: tuple | None = None, selected=None,
                  title: str = "GP vs DFT formation energy"):
    """GP against DFT E_f with the y = x line; ``bars`` = (dft, lower, upper) draws ±2σ intervals."""
    dft, gp = np.asarray(dft, dtype=float), np.asarray(gp, dtype=float)
    fig, ax = new_figure()
    finite = np.concatenate([dft[np.isfinite(dft)], gp[np.isfinite(gp)]])
    lo, hi = (float(finite.min()) - 0.1, float(finite.max()) + 0.1) if len(finite) else (-1.0, 1.0)
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="GP = DFT")
    _scatter(ax, dft, gp, s=12, color=POINT_BLUE, alpha=0.6, linewidths=0, label=f"materials ({len(dft):,})")
    if bars is not None and len(bars[0]):
        bx, lower, upper = (np.asarray(b, dtype=float) for b in bars)
        ax.vlines(bx, lower, upper, color=BAR_RED, lw=1, alpha=0.8, label=f"±2σ ({len(bx):,} materials)")
    _highlight(ax, dft, gp, selected)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="DFT E_f (eV/atom)", ylabel="GP E_f (eV/atom)")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10, wrap=True)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def calibration_curve_figure(lines: Sequence[dict], title: str = "Calibration curve"):
    """Observed against expected proportion of DFT values inside centred intervals. ``lines``: dicts with
    ``label``, ``expected``, ``observed`` and optional ``colour`` and ``fill`` (shade to the diagonal)."""
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="ideal")
    for line in lines:
        e, o = np.asarray(line["expected"], dtype=float), np.asarray(line["observed"], dtype=float)
        colour = line.get("colour", BAR_RED)
        if line.get("fill"):
            ax.fill_between(e, e, o, color=colour, alpha=0.15, lw=0)
        ax.plot(e, o, color=colour, lw=2, label=line["label"])
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="expected proportion in interval", ylabel="observed proportion")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def al_curves_figure(series: Sequence[dict], title: str = "Active learning: test MAE vs labels added",
                     ylabel: str = "test MAE (eV/atom)"):
    """MAE against labels added. ``series``: dicts with ``label``, ``labels``, ``mae``, optional
    ``lower``/``upper`` (a shaded band, e.g. mean ± 2σ over seeds), ``colour``, ``dashed``, ``dotted``, ``markers``.
    Series k is the SVG group ``series-k`` (its band ``band-k``), so a reader of the file can find each curve."""
    fig, ax = new_figure()
    for k, s in enumerate(series):
        x, y = np.asarray(s["labels"], dtype=float), np.asarray(s["mae"], dtype=float)
        colour = s.get("colour")
        if s.get("lower") is not None:
            ax.fill_between(x, s["lower"], s["upper"], color=colour, alpha=0.2, lw=0, gid=f"band-{k}")
        ls = ":" if s.get("dotted") else "--" if s.get("dashed") else "-"
        ax.plot(x, y, color=colour, lw=1.5 if s.get("dashed") else 2, ls=ls,
                marker="o" if s.get("markers") else None, ms=2.5, label=s["label"], gid=f"series-{k}")
    ax.set_xlabel("labels added (materials labelled by active learning)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return fig


def strategy_series(groups: Mapping[str, ALGroup]) -> list[dict]:
    """AL histories grouped by strategy (:func:`cfgp.pipeline.load_al_histories`) → mean ± 2σ series over seeds,
    coloured by the group's strategy, batches dashed."""
    out = []
    for name, hists in groups.items():
        c = curves(hists)
        out.append({"label": f"{name} ({len(hists)} seeds)", "labels": c["labels"], "mae": c["mean"],
                    "lower": c["mean"] - 2 * c["std"], "upper": c["mean"] + 2 * c["std"],
                    "colour": STRATEGY_COLOURS.get(hists.settings.strategy, OTHER_STRATEGY),
                    "dashed": hists.settings.batch_size != 1})
    return out


def al_curves_png(groups: Mapping[str, ALGroup], path: str | Path, title: str = "") -> Path:
    """MAE vs number of labels added, mean ± 2σ over seeds, one band per strategy (``cfgp al-compare --plot``;
    the suffix of ``path`` picks PNG or SVG)."""
    fig = al_curves_figure(strategy_series(groups),
                           title or "CFGP active learning: test MAE (mean ± 2σ over seeds)")
    return save(fig, path)


#: re-trained runs are drawn this many labels left (entropy) or right (random) of their label count
LEARNING_CURVE_DODGE = 120


def learning_curve_figure(result: dict):
    """Test MAE vs labelled materials: frozen-latent CFGP (mean and range over seeds), MEGNet's readout,
    re-trained runs, and the paper's headline point (``result`` as :func:`cfgp.learning_curve.learning_curve`)."""
    fig, ax = new_figure()
    frozen = [r for r in summarise(result) if r["model"] == "frozen-latent CFGP"]  # per label count, over seeds
    ns = [r["n_labels"] for r in frozen]
    ax.fill_between(ns, [r["mae_min"] for r in frozen], [r["mae_max"] for r in frozen], color=POINT_BLUE, alpha=0.2,
                    lw=0)
    ax.plot(ns, [r["mae"] for r in frozen], "o-", color=POINT_BLUE,
            label=f"frozen-latent CFGP (random labels, {frozen[0]['runs']} seeds)")
    b = result["base_readout"]
    ax.plot([b["n_labels"]], [b["mae"]], "s", color=GREY, ms=8, label="MEGNet readout (base network)")
    # strategies drawn side by side at their label count, so one run's marker cannot hide another's
    dodge = {"entropy": -LEARNING_CURVE_DODGE, "random": LEARNING_CURVE_DODGE}
    seen = set()
    for r in result.get("retrained", []):
        readout = "readout" in r["model"]
        key = (r["strategy"], readout)
        label = None if key in seen else f"re-trained {'MEGNet readout' if readout else 'CFGP'}, {r['strategy']} picks"
        seen.add(key)
        colour = STRATEGY_COLOURS.get(r["strategy"], OTHER_STRATEGY)
        ax.plot([r["n_labels"] + dodge.get(r["strategy"], 0)], [r["mae"]], "s" if readout else "D",
                mfc="none" if readout else colour, mec=colour, ms=8, label=label)
    ax.plot([PAPER_RETRAINED[0]], [PAPER_RETRAINED[1]], "*", color="k", ms=12,
            label="paper, re-trained on 1,800 + 6,000 entropy picks")
    ax.set_xlabel("labelled materials")
    ax.set_ylabel("test MAE (eV/atom)")
    ax.set_ylim(0, None)
    ax.set_title(f"Learning curve on the fixed {result['settings']['n_test']:,} test oxides")
    ax.legend(fontsize=8, loc="lower right")  # empty there: the curve runs high, the paper's point sits mid-range
    ax.grid(alpha=0.3)
    return fig


def learning_curve_png(result: dict, path: str | Path) -> Path:
    """The learning curve written to ``path`` (:func:`save`), for ``cfgp learning-curve --plot``."""
    return save(learning_curve_figure(result), path)
