"""cfgp dashboard: `panel serve app.py`. Composes the tabs of ``cfgp.dashboard``; holds no science.

Each browser session gets its own widgets and state; the run's results (read-only) are loaded once
per server. Set CFGP_RUN to show another run folder.
"""

import cfgp  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import panel as pn

from cfgp.dashboard import EXTENSIONS, create_app

pn.extension(*EXTENSIONS, sizing_mode="stretch_width", notifications=True)

if __name__.startswith("bokeh"):
    create_app().servable(title="cfgp")
