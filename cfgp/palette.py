"""Colours that mean the same thing in every figure: one place, so the app's HoloViews plots, the notebooks and the
matplotlib PNG/SVG files draw a strategy in the same colour (matplotlib's tab10, which Bokeh's Category10 shares)."""

#: active-learning strategy -> colour (entropy red, random grey, ...)
STRATEGY_COLOURS = {"entropy": "#d62728", "random": "#7f7f7f", "batch-diverse": "#1f77b4",
                    "batch-distance": "#2ca02c", "ucb": "#9467bd", "ei": "#8c564b"}
#: a strategy this table does not know
OTHER_STRATEGY = "#17becf"
