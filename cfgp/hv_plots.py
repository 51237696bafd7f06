"""HoloViews plot builders shared by the app and the notebooks: results in, HoloViews objects out."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from cfgp.al import curves
from cfgp.learning_curve import PAPER_RETRAINED, summarise
from cfgp.palette import BACKGROUND, BASE_NETWORK, CATEGORY_COLOURS, HIGHLIGHT, OTHER_STRATEGY, POINT, SIGNED, STRATEGY_COLOURS
from cfgp.pipeline import ALGroup
from cfgp.uncertainty.metrics import METRIC_LABELS, calibration_curve
from cfgp.results import predictions_frame  # noqa: F401  (the notebooks build their frame as plots.predictions_frame)


def _hv():
    import holoviews as hv

    if not hv.Store.renderers:
        hv.extension("bokeh", logo=False)
    return hv


def parity(frame: pd.DataFrame, n_bars: int = 100, seed: int = 0, title: str = "GP vs DFT formation energy"):
    """Parity plot: every material as a point, ±2σ bars on a random subset (the paper's Fig. 4)."""
    hv = _hv()
    lo = float(np.nanmin([frame.dft.min(), frame.gp.min()])) - 0.1
    hi = float(np.nanmax([frame.dft.max(), frame.gp.max()])) + 0.1
    pts = hv.Points(frame, ["dft", "gp"], ["material_id", "formula", "sigma", "z"]).opts(
        size=3, alpha=0.35, color=POINT, tools=["hover"])
    pick = np.random.default_rng(seed).choice(len(frame), min(n_bars, len(frame)), replace=False)
    sub = frame.iloc[np.sort(pick)]
    bars = hv.ErrorBars((sub.dft, sub.gp, 2 * sub.sigma), "dft", ["gp", "yerr"]).opts(
        color=HIGHLIGHT, line_width=1, alpha=0.8)
    diag = hv.Curve([(lo, lo), (hi, hi)], "dft", "gp").opts(color="black", line_width=1)
    return (diag * pts * bars).opts(
        hv.opts.Overlay(title=title, xlabel="DFT E_f (eV/atom)", ylabel="GP E_f (eV/atom)",
                        xlim=(lo, hi), ylim=(lo, hi), responsive=True, min_height=300, shared_axes=False))


def residual_vs_sigma(frame: pd.DataFrame, title: str = "|residual| vs σ"):
    """|residual| against σ, coloured by |residual| − 2σ: points above the line are outside the 95 % interval."""
    hv = _hv()
    f = frame.assign(abs_residual=frame.residual.abs())
    lim = float(np.clip(np.nanmax(f.excess), 0.05, None))
    pts = hv.Points(f, ["sigma", "abs_residual"], ["excess", "material_id", "formula", "dft", "gp"]).opts(
        color="excess", cmap=list(SIGNED), clim=(-lim, lim), colorbar=True, size=4, tools=["hover"],
        clabel="|residual| − 2σ (eV/atom)")
    smax = float(f.sigma.max()) * 1.05
    line = hv.Curve([(0, 0), (smax, 2 * smax)], "sigma", "abs_residual", label="|residual| = 2σ").opts(
        color="black", line_dash="dashed")
    return (pts * line).opts(hv.opts.Overlay(title=title, xlabel="σ (eV/atom)", ylabel="|residual| (eV/atom)",
                                             responsive=True, min_height=300, legend_position="top_left",
                                             shared_axes=False))


def calibration_plot(frame: pd.DataFrame, title: str = "Calibration curve"):
    """Observed vs expected fraction of DFT labels inside centred Gaussian intervals."""
    hv = _hv()
    expected, observed = calibration_curve(frame.gp, frame.sigma, frame.dft)
    ideal = hv.Curve([(0, 0), (1, 1)], "expected proportion", "observed proportion", label="ideal").opts(
        color="black", line_dash="dashed")
    curve = hv.Curve((expected, observed), "expected proportion", "observed proportion", label="CFGP").opts(
        color=HIGHLIGHT, line_width=2)
    area = hv.Area((expected, expected, observed), "expected proportion",
                   ["observed proportion", "y2"]).opts(alpha=0.2, color=HIGHLIGHT)
    return (ideal * area * curve).opts(hv.opts.Overlay(title=title, responsive=True, min_height=300,
                                                       legend_position="top_left", shared_axes=False))


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Metric names with units as a two-column frame (for pn.widgets.Tabulator or display)."""
    rows = [(label, metrics[k]) for k, label in METRIC_LABELS.items() if k in metrics]
    return pd.DataFrame(rows, columns=["metric", "value"])


def al_curves(groups: Mapping[str, ALGroup], title: str = "Active learning: test MAE vs labels"):
    """MAE-vs-labels curves, mean ± 2σ over seeds, one colour per strategy (``groups`` as
    :func:`cfgp.pipeline.load_al_histories` returns them)."""
    hv = _hv()
    layers = []
    for name, hists in groups.items():
        c = curves(hists)
        colour = STRATEGY_COLOURS.get(hists.settings.strategy, OTHER_STRATEGY)
        label = f"{name} ({len(hists)} seeds)"
        band = hv.Area((c["labels"], c["mean"] - 2 * c["std"], c["mean"] + 2 * c["std"]), "labels added",
                       ["MAE (eV/atom)", "upper"]).opts(color=colour, alpha=0.2, line_alpha=0)
        line = hv.Curve((c["labels"], c["mean"]), "labels added", "MAE (eV/atom)", label=label).opts(
            color=colour, line_width=2)
        layers += [band, line]
    return hv.Overlay(layers).opts(hv.opts.Overlay(title=title, responsive=True, min_height=300,
                                                   legend_position="top_right", shared_axes=False))


def learning_curve(result: dict, title: str = "Learning curve: test MAE vs labelled materials"):
    """Test MAE vs labelled materials (``result`` as ``cfgp.learning_curve.learning_curve`` returns or saves it):
    the frozen-latent CFGP (mean over seeds, min–max band), MEGNet's readout, each re-trained run (hover: run,
    seed, picks, epochs, coverage) and the paper's headline after re-training, so a reader sees where it sits."""
    hv = _hv()
    x, y = "labelled materials", "test MAE (eV/atom)"
    rows = pd.DataFrame(summarise(result))
    frozen = rows[rows.model == "frozen-latent CFGP"].rename(columns={"n_labels": x, "mae": y})
    label = f"frozen-latent CFGP, random labels ({int(frozen.runs.max())} seeds)"
    layers = [hv.Area((frozen[x], frozen.mae_min, frozen.mae_max), x, [y, "max"]).opts(color=POINT, alpha=0.2,
                                                                                      line_alpha=0),
              hv.Curve(frozen, x, y, label=label).opts(color=POINT, line_width=2),
              hv.Scatter(frozen, x, [y, "mae_min", "mae_max", "runs", "coverage_2sigma"]).opts(
                  color=POINT, size=6, tools=["hover"])]
    base = {**result["base_readout"], "strategy": "base", "seed": None, "picks": 0, "epochs": None,
            "coverage_2sigma": None}
    points = pd.DataFrame([base] + list(result.get("retrained", []))).rename(columns={"n_labels": x, "mae": y})
    hover = ["model", "run", "strategy", "seed", "picks", "epochs", "coverage_2sigma"]
    for (model, strategy), group in points.groupby(["model", "strategy"], sort=False):
        readout = "readout" in model
        colour = BASE_NETWORK if strategy == "base" else STRATEGY_COLOURS.get(strategy, OTHER_STRATEGY)
        layers.append(hv.Scatter(group, x, [y] + hover, label=model if strategy == "base" else
                                 f"{model}, {strategy} picks").opts(
            color=colour, marker="square" if readout else "diamond", size=10 if readout else 12,
            fill_alpha=0.0 if readout and strategy != "base" else 1.0, tools=["hover"]))
    paper = pd.DataFrame([{x: PAPER_RETRAINED[0], y: PAPER_RETRAINED[1],
                           "model": "paper: CFGP re-trained on 1,800 + 6,000 entropy picks"}])
    layers.append(hv.Scatter(paper, x, [y, "model"], label="paper, re-trained (1,800 + 6,000 entropy)").opts(
        color="black", marker="star", size=16, tools=["hover"]))
    return hv.Overlay(layers).opts(hv.opts.Overlay(title=title, responsive=True, min_height=340,
                                                   legend_position="bottom_right", shared_axes=False, ylim=(0, None)))


COLOUR_BY = {
    "dft": ("DFT E_f (eV/atom)", "viridis"),
    "gp": ("GP E_f (eV/atom)", "viridis"),
    "sigma": ("σ (eV/atom)", "plasma"),
    "residual": ("GP − DFT (eV/atom)", list(SIGNED)),
    "z": ("z = residual / σ", list(SIGNED)),
}


def latent_map(frame: pd.DataFrame, xy: np.ndarray, color_by: str = "dft", element: str | None = None,
               title: str = "t-SNE of the MEGNet latent space", size: float = 2.5, picked=()):
    """2-D map of the latents coloured by a column (dft, gp, sigma, residual, z), by split (with the
    material ids in ``picked`` shown as 'picked'), by phosphate, or by whether a material contains ``element``."""
    hv = _hv()
    f = frame.assign(x=np.asarray(xy)[:, 0], y=np.asarray(xy)[:, 1])
    hover = ["material_id", "formula", "spacegroup_symbol", "dft", "gp", "sigma", "z"]
    opts = dict(size=size, tools=["hover", "box_select", "lasso_select", "tap"], responsive=True, min_height=360,
                xaxis=None, yaxis=None, title=title)
    if color_by in COLOUR_BY:
        label, cmap = COLOUR_BY[color_by]
        values = f[color_by]
        if color_by in ("residual", "z"):
            lim = float(np.nanpercentile(np.abs(values), 98))
            clim = (-lim, lim)
        else:
            clim = tuple(np.nanpercentile(values, [1, 99]))
        return hv.Points(f, ["x", "y"], [color_by] + [h for h in hover if h != color_by]).opts(
            color=color_by, cmap=cmap, clim=clim, colorbar=True, clabel=label, **opts)
    if color_by == "split":
        group = f["split"].replace("", "unused").where(~f.material_id.isin(list(picked)), "picked by AL")
    elif color_by == "phosphate":
        group = pd.Series(np.where(f.is_phosphate, "phosphate", "other oxide"), index=f.index)
    elif color_by == "element":
        if not element:
            raise ValueError("color_by='element' needs an element symbol")
        has = frame["formula"].str.contains(rf"{element}(?![a-z])", regex=True)
        group = pd.Series(np.where(has, f"contains {element}", "other"), index=f.index)
    else:
        raise ValueError(f"unknown colouring {color_by!r}")
    f = f.assign(group=group)
    cats = sorted(f.group.unique(), key=lambda g: (g.startswith("other") or g == "unused", g))
    cmap = {g: (BACKGROUND if g.startswith("other") or g == "unused" else CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)])
            for i, g in enumerate(cats)}
    return hv.Points(f, ["x", "y"], ["group"] + hover).opts(color="group", cmap=cmap, legend_position="top_right",
                                                           **opts)
