"""cfgp dashboard: `panel serve app.py`. Composes the tabs of ``cfgp.dashboard``; holds no science.

Each browser session gets its own widgets and state; the run's results (read-only) are loaded once
per server. Set CFGP_RUN to show another run folder.
"""

import cfgp  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import os

# Served, every script and style comes from this server (an offline classroom cannot reach a CDN).
os.environ.setdefault("BOKEH_RESOURCES", "server")

import panel as pn  # noqa: E402
import panel.reactive  # noqa: E402

# Panel resolves a component's stylesheets against its CDN when it renders the component without a document
# (as it does for a tab first shown in a callback); point that fallback at this server's own static route
# (holoviz/panel#7073: stylings requested from the CDN when offline).
panel.reactive.CDN_DIST = "static/extensions/panel/"

from cfgp.dashboard import EXTENSIONS, create_app  # noqa: E402

pn.extension(*EXTENSIONS, sizing_mode="stretch_width", notifications=True)

if __name__.startswith("bokeh"):
    create_app().servable(title="cfgp")
