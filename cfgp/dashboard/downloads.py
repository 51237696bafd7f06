"""Take it away: the current selection, a table or a material's CIF as a file, built on the server when clicked.

Panel's ``FileDownload`` with a callback sends nothing until the button is pressed, so a page with several of
them costs nothing until a user wants a file; the file then holds exactly what the view shows (the same rows,
the same headers with units), so a CSV opened in a spreadsheet matches the table on screen.
"""

from __future__ import annotations

import io
from typing import Callable

import pandas as pd
import panel as pn

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


def csv_bytes(frame: pd.DataFrame, headers: dict[str, str] | None = None) -> io.BytesIO:
    """``frame`` (only the ``headers`` columns, renamed) as UTF-8 CSV without the index."""
    if headers is not None:
        frame = frame[[c for c in headers if c in frame.columns]].rename(columns=headers)
    return io.BytesIO(frame.to_csv(index=False).encode("utf-8"))


def download_button(label: str, filename: str, make: Callable[[], io.BytesIO], css: str,
                    **kwargs) -> pn.widgets.FileDownload:
    """A button that builds its file with ``make()`` only when clicked."""
    return pn.widgets.FileDownload(callback=make, filename=filename, label=label, embed=False,
                                   css_classes=[css], **kwargs)
