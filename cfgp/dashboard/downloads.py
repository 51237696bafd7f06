"""Take it away: the current selection, a table or a material's CIF as a file, built on the server when clicked.

Panel's ``FileDownload`` with a callback sends nothing until the button is pressed, so a page with several of
them costs nothing until a user wants a file; the file then holds exactly what the view shows (the same rows,
the same headers with units), so a CSV opened in a spreadsheet matches the table on screen. Figures
(:func:`figure_downloads`) are drawn by the core's matplotlib functions from the view's data, off the event loop.
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

import pandas as pd
import panel as pn
from cfgp.mpl_figures import figure_bytes

#: frame column → CSV header (units in the header, as in the app's tables)
MATERIAL_COLUMNS = {
    "material_id": "material",
    "formula": "formula",
    "spacegroup_symbol": "space group",
    "nsites": "atoms per cell",
    "split": "split",
    "is_phosphate": "phosphate",
    "dft": "DFT E_f (eV/atom)",
    "gp": "GP E_f (eV/atom)",
    "sigma": "σ (eV/atom)",
    "residual": "residual GP − DFT (eV/atom)",
    "z": "z",
    "excess": "|res| − 2σ (eV/atom)",
}


#: a spreadsheet runs a text cell that starts with one of these as a formula (OWASP "CSV injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defuse_formula(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula, prefixed with ' so it opens as the text it is;
    numbers and other text unchanged. Uploaded file names and typed text reach the CSV files (a prediction's
    source), so "=HYPERLINK(…)" must stay text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_bytes(frame: pd.DataFrame, headers: dict[str, str] | None = None) -> io.BytesIO:
    """``frame`` (only the ``headers`` columns, renamed) as UTF-8 CSV without the index; text cells that would
    run as spreadsheet formulas are defused (:func:`defuse_formula`)."""
    if headers is not None:
        frame = frame[[c for c in headers if c in frame.columns]].rename(columns=headers)
    text = [c for c in frame.columns
            if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)]
    if text:
        frame = frame.copy()
        for c in text:
            # built as object: Series.map would infer float64 for a column of counts and write 60 as "60.0"
            frame[c] = pd.Series([defuse_formula(v) for v in frame[c]], index=frame.index, dtype=object)
    return io.BytesIO(frame.to_csv(index=False).encode("utf-8"))


def download_button(label: str, filename: str, make: Callable[[], io.BytesIO], css: str,
                    **kwargs) -> pn.widgets.FileDownload:
    """A button that builds its file with ``make()`` only when clicked."""
    return pn.widgets.FileDownload(callback=make, filename=filename, label=label, embed=False,
                                   css_classes=[css], **kwargs)



#: figures render here, one at a time: a 16k-point map takes 1.5-2.5 s to draw on a busy 2-core machine, which on
#: the event loop would stall every other session; one worker also keeps matplotlib to one thread
_RENDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="figure-render")


def figure_file(make_figure: Callable[[], object], fmt: str) -> Callable[[], Awaitable[io.BytesIO]]:
    """A download callback: the figure ``make_figure()`` builds from the view as it is at the click (on the
    event loop, where the session's state is consistent; ~0.1 s), encoded as PNG or SVG on the render thread."""
    import matplotlib.backends.backend_agg  # noqa: F401  (matplotlib's first import, 1-3 s, once per process when
    import matplotlib.figure  # noqa: F401                   a session builds its tabs, not at a user's click)


    async def make() -> io.BytesIO:
        fig = make_figure()
        return io.BytesIO(await asyncio.wrap_future(_RENDER.submit(figure_bytes, fig, fmt)))

    return make


def figure_downloads(what: str, stem: str, make_figure: Callable[[], object], css: str) -> pn.Row:
    """'Save <what>: PNG · SVG' — two buttons that render the view's figure on the server when clicked.

    The Bokeh toolbar's own save button copies the canvas at screen resolution, without the vector text a paper
    or a slide needs; these files are drawn by the core's matplotlib figures (:mod:`cfgp.mpl_figures`) from the
    data the view holds at the moment of the click (colouring, split, selection, run shown). The buttons carry
    the CSS classes ``<css>-png`` and ``<css>-svg``."""
    buttons = [download_button(fmt.upper(), f"{stem}.{fmt}", figure_file(make_figure, fmt), f"{css}-{fmt}",
                               width=70, color="light")
               for fmt in ("png", "svg")]
    return pn.Row(pn.pane.Markdown(f"Save {what}:", margin=(0, 4, 0, 10), align="center"), *buttons,
                  css_classes=[css], width=300)  # no "fixed" sizing: Bokeh wants a height with it (W-1005)
