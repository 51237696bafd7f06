"""The dashboard in a Jupyter notebook: the whole app or one tab in a cell, live.

In JupyterLab 4 a Panel object displayed by a cell is a live view: Panel's own ``@pyviz/jupyterlab_pyviz``
extension (shipped inside the ``panel`` wheel) carries the browser's events to the kernel, so brushing,
Play/Step and the download buttons run the same Python callbacks as under ``panel serve``. Where a front end
has no such extension (VS Code, Colab), ``notebook_extension(comms="ipywidgets")`` routes them through
``jupyter_bokeh`` instead; both come with ``pip install -e ".[notebooks]"``.

There is no Bokeh server in a kernel, so the tabs run their GP steps in the cell's thread and edit their
sources at once (``shared.in_document``), and sessions never end: a notebook keeps its state until the kernel
restarts.
"""

from __future__ import annotations

import os
from pathlib import Path

import panel as pn
import panel.reactive

from cfgp.dashboard.active_learning import ActiveLearning
from cfgp.dashboard.bokeh_figures import map_source
from cfgp.dashboard.calibration import Calibration
from cfgp.dashboard.latent_map import LatentMap
from cfgp.dashboard.outliers import Outliers
from cfgp.dashboard.predict import Predict
from cfgp.dashboard.shared import EXTENSIONS, SessionState, server_data

#: tab title → what its constructor needs besides (data, state): whether it shares the map source
TABS = {"Latent map": True, "Calibration": False, "Active learning": True, "Outliers": False, "Predict": True}


def notebook_extension(comms: str = "default", dist_url: str | None = None, **kwargs) -> None:
    """``pn.extension`` for the notebook with the dashboard's extensions, every script and style written
    into the notebook (no CDN: an offline classroom still sees the plots).

    A pane a callback redraws names its stylesheets by URL (Markdown, HTML, theme), resolved against
    ``panel.reactive.CDN_DIST`` when there is no server document (holoviz/panel#7073), i.e. against
    cdn.holoviz.org. In JupyterLab / Jupyter Notebook (``comms="default"``) Panel's Jupyter server extension,
    enabled by the wheel, serves the same files at ``<base_url>panel_dist/``: the fallback points there —
    ``/panel_dist/``, under ``JUPYTERHUB_SERVICE_PREFIX`` on JupyterHub, or ``dist_url`` for a server started
    with another ``--ServerApp.base_url``. Front ends without that server (VS Code, Colab: ``comms="ipywidgets"``
    or ``"vscode"``/``"colab"``) keep Panel's CDN unless ``dist_url`` is given.
    """
    kwargs.setdefault("sizing_mode", "stretch_width")
    kwargs.setdefault("inline", True)
    if dist_url is not None:
        panel.reactive.CDN_DIST = dist_url
    elif comms == "default":
        panel.reactive.CDN_DIST = jupyter_dist_url()
    pn.extension(*EXTENSIONS, comms=comms, **kwargs)


def jupyter_dist_url() -> str:
    """Where the Jupyter server serves Panel's ``dist`` folder: ``/panel_dist/`` under the server's base URL
    (JupyterHub gives a single-user server's prefix in ``JUPYTERHUB_SERVICE_PREFIX``)."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return prefix.rstrip("/") + "/panel_dist/"


def tab(name: str, run_dir: str | Path | None = None, state: SessionState | None = None) -> pn.viewable.Viewer:
    """One tab of the dashboard on its own, e.g. ``tab("Calibration")`` as the last line of a cell.

    ``run_dir`` defaults to ``$CFGP_RUN`` or the embedded default (read once per kernel and shared, as a
    server shares it between sessions); pass the same ``state`` to several tabs to link their selections.
    """
    if name not in TABS:
        raise ValueError(f"unknown tab {name!r}: choose one of {', '.join(TABS)}")

    cls = {"Latent map": LatentMap, "Calibration": Calibration, "Active learning": ActiveLearning,
           "Outliers": Outliers, "Predict": Predict}[name]
    data = server_data(run_dir)
    state = state if state is not None else SessionState()
    return cls(data, state, map_source(data)) if TABS[name] else cls(data, state)
