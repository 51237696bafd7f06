"""The cfgp dashboard (Panel): one module per tab, composed by :func:`create_app`; ``app.py`` serves it.

This subpackage is the only part of cfgp that imports a web framework; the core stays free of it.
"""

from __future__ import annotations

import cfgp  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import panel as pn

from cfgp.dashboard import panel_fixes, theme as classroom
from cfgp.dashboard.active_learning import ActiveLearning
from cfgp.dashboard.bokeh_figures import map_source
from cfgp.dashboard.calibration import Calibration
from cfgp.dashboard.finder import Finder
from cfgp.dashboard.latent_map import LatentMap
from cfgp.dashboard.lesson import Lesson
from cfgp.dashboard.notebook import notebook_extension, tab  # one tab in a notebook cell
from cfgp.dashboard.outliers import Outliers
from cfgp.dashboard.predict import Predict, warm_up_in_background
from cfgp.dashboard.shared import EXTENSIONS, ServerData, SessionState, freeze_server_heap, server_data
from cfgp.dashboard.view_state import DashboardParts, ViewSync
from cfgp.gp import device_label

panel_fixes.install()  # a click right after another change must not run outside the document lock



def create_app(run_dir=None, theme: str | None = None, projector: bool | None = None) -> pn.viewable.Viewable:
    """The whole dashboard for one browser session (or one notebook cell). ``theme`` ('default' or 'dark')
    and ``projector`` default to the page's query (``?theme=dark``, ``?projector=1``), see theme.py."""
    options = classroom.ViewOptions.from_request(theme, projector)
    classroom.use_design(options)  # before any component is built: they take the design when created

    data = server_data(run_dir)
    freeze_server_heap()  # the first page of a server: later full collections skip the libraries and the data
    warm_up_in_background(data)  # the first upload of a class should not wait for the network
    h = data.gp.hyperparameters_
    header = pn.pane.Markdown(
        f"## cfgp — uncertainty-aware ML of oxide formation energies\n"
        f"{len(data.frame):,} Materials Project oxides · MEGNet latents → Laplacian GP "
        f"(a = {h['amplitude']:.3f}, l = {h['length_scale']:.3f}, noise σ² = {h['noise_variance']:.2e}) · "
        f"**GP device: {device_label()}**", name="header")
    header = pn.Row(header, classroom.header_controls(options), sizing_mode="stretch_width")
    state = SessionState()  # one per browser session
    source = map_source(data)  # the map's 16k rows, sent once and shared by every map of the session
    latent, calibration = LatentMap(data, state, source), Calibration(data, state)
    active, outliers, predict = ActiveLearning(data, state, source), Outliers(data, state), Predict(data, state, source)
    tabs = pn.Tabs(latent, calibration, active, outliers, predict, dynamic=True)
    # shareable views (the view in the URL, a copy-link button) and the guided lesson, which sets views the same way
    finder = Finder(data)  # the search box above the tabs: by id, formula or elements, from every tab
    parts = DashboardParts(data, state, tabs, latent, calibration, active, outliers, predict, finder)
    views = ViewSync(parts)
    finder.on_open = views.open_material
    lesson = Lesson(parts, views)
    views.restore()  # after the lesson is there: a link may open it at a step
    app = pn.Column(header, pn.Row(lesson.toggle, views.header(), sizing_mode="stretch_width"), views.message,
                    finder, pn.Row(lesson, tabs, sizing_mode="stretch_width"), sizing_mode="stretch_width")
    return classroom.apply(app, options)  # classroom display: theme, projector, keyboard, tooltips


__all__ = ["EXTENSIONS", "create_app", "tab", "notebook_extension", "server_data", "ServerData", "SessionState"]
