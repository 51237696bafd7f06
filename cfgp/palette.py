"""Colours that mean the same thing in every figure: one place, so the dashboard's Bokeh figures, the notebooks'
HoloViews plots, the crystal viewer and the matplotlib PNG/SVG files draw a strategy, a split or a selection in the
same colour (matplotlib's tab10, which Bokeh's Category10 shares). No other module writes a colour literal (the
dark theme's swaps in cfgp/dashboard/theme.py aside)."""

#: active-learning strategy -> colour (entropy red, random grey, ...)
STRATEGY_COLOURS = {"entropy": "#d62728", "random": "#7f7f7f", "batch-diverse": "#1f77b4",
                    "batch-distance": "#2ca02c", "ucb": "#9467bd", "ei": "#8c564b"}
#: a strategy this table does not know
OTHER_STRATEGY = "#17becf"

#: signed errors (residual, z, |residual| − 2σ), negative → positive: ColorBrewer RdBu's blue (#2166ac) through a
#: mid grey (0: no colour) to red (#c0392b), interpolated in RGB. Every colour has at least 2.5:1 contrast with the
#: light theme's white and the dark theme's plot background, so errors near 0 — most materials — stay visible
#: (RdBu's own centre, #f7f7f7, vanished on white; its darkest ends on the dark theme)
SIGNED = ("#2166ac", "#3b72aa", "#557ea8", "#6f8ba7", "#8997a5", "#a3a3a3", "#a98e8b", "#af7973", "#b4635b",
          "#ba4e43", "#c0392b")

#: the Predict tab's cross on the map: a material in the model's domain, and one outside it (the red of the
#: out-of-domain warning box, #dc3545, so that map and text say the same)
IN_DOMAIN_MARK = "#000000"
IN_DOMAIN_MARK_DARK = "#ffffff"  # the same cross on the dark theme
OUT_OF_DOMAIN_MARK = "#dc3545"

# ---------------------------------------------------------------- figures (Bokeh, HoloViews, matplotlib alike)
#: points of a scatter (parity, the frozen-latent learning curve)
POINT = "#1f77b4"
#: what the eye should find: error bars, the selection, the replayed run's curve
HIGHLIGHT = "#d62728"
#: everything else: all materials behind a selection, the random band
NEUTRAL = "#7f7f7f"
#: materials outside every named group ("other", unused), drawn behind
BACKGROUND = "#c7c7c7"
#: a value that is missing (NaN) on a colour scale
NAN_COLOUR = "#eeeeee"
#: the latest active-learning pick on the map (cyan: apart from every colouring's colours)
LATEST = "#00e5ff"
#: the base network (before any retrain) in learning-curve plots
BASE_NETWORK = "#555555"
#: categorical colourings (matplotlib's tab10 order)
CATEGORY_COLOURS = [HIGHLIGHT, POINT, "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
#: the crystal viewer's lines: atom outlines, bonds, cell edges (the dark theme swaps #333 and #444)
ATOM_OUTLINE, BOND, CELL_EDGE = "#333", "#777", "#444"
#: the splits on the map (the active-learning picks in the highlight colour)
SPLIT_COLOURS = {"train": POINT, "test": "#ff7f0e", "pool": "#2ca02c", "picked by AL": HIGHLIGHT, "unused": BACKGROUND}
#: the light theme's page (the crystal frame's default background)
LIGHT_PAGE = "#ffffff"
