"""One rotatable-crystal frame per details panel, kept for the session and redrawn in place.

A crystal is a Plotly figure drawn in an iframe that loads plotly.js (4.7 MB) from the Panel server on demand
(see ``details``). The frame used to be rebuilt for every material, so every tap made the browser parse plotly.js
again: ~1 s of the 1.2 s from tap to crystal. Here the frame is made once, when the first crystal is shown; the
next figures reach it as a changed ``figure`` property (a delta on the Bokeh connection, like any widget change)
and are drawn with ``Plotly.react`` into the same page.

The frame carries ``data-drawn`` (how many figures it has finished drawing) and ``data-label`` (which one), so
browser tests and ``benchmarks/app_latency.py`` can wait for a given material rather than for any plot.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent

from cfgp.palette import LIGHT_PAGE


class CrystalFrame(JSComponent):
    """An iframe with plotly.js that draws ``figure`` (Plotly JSON) and redraws it in place when it changes."""

    figure = param.String(default="", doc="JSON {label, data, layout}: what it shows, the Plotly figure ('': none)")
    plotly_src = param.String(default="", doc="plotly.js as the Panel server serves it (relative to the page)")
    page_colour = param.String(default=LIGHT_PAGE, doc="the frame's page colour (the session's theme)")
    frame_class = param.String(default="", doc="CSS classes of the iframe (tests and benchmarks find it by them)")
    frame_height = param.Integer(default=360, doc="height of the drawing, px")

    _esm = """
export function render({ model, el }) {
  // the frame (and so plotly.js) is made at the first figure, not with the page: the panel starts hidden
  let frame = null, wanted = 0;
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
  const draw = () => {
    const win = frame.contentWindow;
    // not loaded yet: its load event draws. plotly.js runs in the head, so Plotly exists before the body does
    // (a second figure arriving then found no body: "Cannot read properties of null")
    const div = win && win.document.getElementById('fig');
    if (!win || !win.Plotly || !div || !win.document.body || !model.figure) return;
    const ask = ++wanted;
    win.document.body.style.background = model.page_colour;
    const f = JSON.parse(model.figure);
    win.Plotly.react(div, f.fig.data, f.fig.layout,
                     {displaylogo: false, responsive: true}).then(() => {
      if (ask !== wanted) return;  // a newer figure is being drawn
      frame.dataset.label = f.label;
      frame.dataset.drawn = String(Number(frame.dataset.drawn) + 1);
    });
  };
  const show = () => {
    if (!model.figure) return;
    if (frame) { draw(); return; }
    frame = document.createElement('iframe');
    frame.className = 'structure-view ' + model.frame_class;
    frame.title = 'crystal structure';
    frame.style.cssText = `width:100%;height:${model.frame_height + 4}px;border:0`;
    frame.dataset.drawn = '0';
    frame.srcdoc = "<!DOCTYPE html><html><head><meta charset='utf-8'>" +
      `<script src="${esc(model.plotly_src)}"></` + "script>" +
      `<style>html,body{margin:0;height:100%;overflow:hidden;background:${esc(model.page_colour)}}</style>` +
      `</head><body><div id='fig' style='width:100%;height:${model.frame_height}px'></div></body></html>`;
    frame.addEventListener('load', draw);
    el.appendChild(frame);
  };
  model.on('figure', show);
  show();
}
"""
