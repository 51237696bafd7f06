"""cfgp dashboard: `panel serve app.py`. Composes views from the cfgp core; holds no science."""

import cfgp  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import os

import holoviews as hv
import numpy as np
import panel as pn

from cfgp.artefacts import DEFAULT_RUN
from cfgp.calibration import regression_metrics
from cfgp.gp import device_label
from cfgp.pipeline import Run, load_al_histories, load_gp, predictions
from cfgp.plots import al_curves, calibration_plot, metrics_table, parity, predictions_frame, residual_vs_sigma

pn.extension("tabulator", sizing_mode="stretch_width", notifications=True)
hv.extension("bokeh", logo=False)


@pn.cache
def default_results():
    """Shared, read-only results of the embedded default (loaded once per server, never trained)."""
    run = Run(os.environ.get("CFGP_RUN", DEFAULT_RUN))
    gp = load_gp(run)
    pred = predictions(run, gp)
    frame = predictions_frame(run.materials.frame, pred["mean"], pred["std"], run.split.labels(len(run.materials)))
    return {"run": run, "gp": gp, "frame": frame, "al": load_al_histories(run)}


def subset(frame, split: str, phosphates_only: bool):
    f = frame[frame.split == split] if split != "all" else frame
    return f[f.is_phosphate] if phosphates_only else f


def create_app():
    res = default_results()
    frame, gp = res["frame"], res["gp"]
    h = gp.hyperparameters_

    split = pn.widgets.RadioButtonGroup(name="materials", options=["test", "pool", "train"], value="test")
    phosphates = pn.widgets.Checkbox(name="phosphates only", value=False)

    def metrics_view(split_value, phos):
        f = subset(frame, split_value, phos)
        if len(f) < 3:
            return pn.pane.Alert("Too few materials in this selection.", alert_type="warning")
        m = regression_metrics(f.gp, f.sigma, f.dft)
        return pn.widgets.Tabulator(metrics_table(m), show_index=False, disabled=True,
                                    formatters={"value": {"type": "money", "precision": 4, "thousand": ","}},
                                    height=420, name="metrics")

    calibration = pn.Column(
        pn.pane.Markdown(
            "### Is the uncertainty honest?\n"
            "Left: GP prediction against the DFT formation energy; red bars are ±2σ on 100 random materials. "
            "Middle: |residual| against σ, coloured by |residual| − 2σ; red points lie outside their 95 % interval "
            "(the paper's outliers, many of them phosphates). Right: the share of DFT values inside intervals of "
            "each nominal size; a calibrated model follows the dashed diagonal."),
        pn.Row(split, phosphates),
        pn.Row(
            pn.bind(lambda s, p: parity(subset(frame, s, p)), split, phosphates),
            pn.bind(lambda s, p: residual_vs_sigma(subset(frame, s, p)), split, phosphates),
            pn.bind(lambda s, p: calibration_plot(subset(frame, s, p)), split, phosphates),
        ),
        pn.bind(metrics_view, split, phosphates),
        name="Calibration",
    )

    if res["al"]:
        al_view = pn.Column(
            pn.pane.Markdown(
                "### Which material should DFT compute next?\n"
                "Each cycle labels one pool material and updates the GP (hyper-parameters fixed); the curves show "
                "the test MAE as labels are added, mean ± 2σ over seeds. Entropy picks the largest σ, random picks "
                "at random. These are the committed default runs, replayed without recomputing."),
            al_curves(res["al"]),
            name="Active learning",
        )
    else:
        al_view = pn.Column(pn.pane.Markdown("No active-learning histories yet: run `cfgp al`."),
                            name="Active learning")

    outlier_split = pn.widgets.Select(name="split", options=["test", "pool", "train", "all"], value="test")
    outlier_phos = pn.widgets.Checkbox(name="phosphates only", value=False)

    def outliers(s, p):
        f = subset(frame, s, p).sort_values("excess", ascending=False).head(200)
        cols = ["material_id", "formula", "spacegroup_symbol", "dft", "gp", "sigma", "z", "excess", "split"]
        return pn.widgets.Tabulator(f[cols].round(4), show_index=False, disabled=True, height=500,
                                    pagination="local", page_size=20, name="outliers")

    inspector = pn.Column(
        pn.pane.Markdown("### Outliers\nMaterials whose DFT value lies furthest outside the GP's ±2σ interval "
                         "(largest |residual| − 2σ first)."),
        pn.Row(outlier_split, outlier_phos),
        pn.bind(outliers, outlier_split, outlier_phos),
        name="Outliers",
    )

    header = pn.pane.Markdown(
        f"## cfgp — MEGNet latents + Laplacian GP for oxide formation energies\n"
        f"{len(frame):,} Materials Project oxides · GP a = {h['amplitude']:.3f}, l = {h['length_scale']:.3f}, "
        f"noise σ² = {h['noise_variance']:.2e} · **GP device: {device_label()}**",
        name="header")
    return pn.Column(header, pn.Tabs(calibration, al_view, inspector, dynamic=True), max_width=1600)


if __name__.startswith("bokeh"):
    create_app().servable(title="cfgp")
