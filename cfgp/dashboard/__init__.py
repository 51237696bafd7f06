"""The cfgp dashboard (Panel): one module per tab, composed by :func:`create_app`; ``app.py`` serves it.

This subpackage is the only part of cfgp that imports a web framework; the core stays free of it.
"""

from __future__ import annotations

import cfgp  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import panel as pn

from cfgp.dashboard.shared import ServerData, SessionState, server_data

EXTENSIONS = ("tabulator",)  # plotly.js loads on demand, see details.py


def create_app(run_dir=None) -> pn.viewable.Viewable:
    """The whole dashboard for one browser session (or one notebook cell)."""
    from cfgp.dashboard.active_learning import ActiveLearning
    from cfgp.dashboard.calibration import Calibration
    from cfgp.dashboard.figures import map_source
    from cfgp.dashboard.latent_map import LatentMap
    from cfgp.dashboard.outliers import Outliers
    from cfgp.dashboard.predict import Predict, warm_up_in_background
    from cfgp.gp import device_label

    data = server_data(run_dir)
    warm_up_in_background(data)  # the first upload of a class should not wait for the network
    h = data.gp.hyperparameters_
    header = pn.pane.Markdown(
        f"## cfgp — uncertainty-aware ML of oxide formation energies\n"
        f"{len(data.frame):,} Materials Project oxides · MEGNet latents → Laplacian GP "
        f"(a = {h['amplitude']:.3f}, l = {h['length_scale']:.3f}, noise σ² = {h['noise_variance']:.2e}) · "
        f"**GP device: {device_label()}**", name="header")
    state = SessionState()  # one per browser session
    source = map_source(data)  # the map's 16k rows, sent once and shared by every map of the session
    tabs = pn.Tabs(LatentMap(data, state, source), Calibration(data, state), ActiveLearning(data, state, source),
                   Outliers(data, state), Predict(data, state, source), dynamic=True)
    return pn.Column(header, tabs, sizing_mode="stretch_width")


__all__ = ["create_app", "server_data", "ServerData", "SessionState"]
