"""Colours that carry meaning stay visible: the signed-error palette (residual, z, |residual| − 2σ) has no colour that
vanishes into the light theme's white or the dark theme's plot background, and runs from blue (negative) to red."""

from __future__ import annotations

import pytest

from cfgp.palette import SIGNED

#: plot backgrounds: the light theme's white, Panel's dark design (Bokeh dark_minimal plot) and Plotly's dark surface
BACKGROUNDS = {"light": "#ffffff", "dark": "#20262b", "dark surface": "#212529"}
#: the least contrast a map dot needs against its background (a dot, not text: WCAG's 3:1 is for large text)
MIN_CONTRAST = 1.8


def luminance(colour: str) -> float:
    """WCAG relative luminance of a #rrggbb colour."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", BACKGROUNDS)
def test_every_signed_colour_is_visible_on_each_theme(theme):
    """The centre (errors near 0, most materials) too: ColorBrewer's RdBu centre #f7f7f7 has 1.07:1 on white."""
    assert contrast("#f7f7f7", "#ffffff") < MIN_CONTRAST  # the check can fail: RdBu's centre fails it
    weak = {c: round(contrast(c, BACKGROUNDS[theme]), 2) for c in SIGNED
            if contrast(c, BACKGROUNDS[theme]) < MIN_CONTRAST}
    assert not weak, weak


def test_signed_runs_blue_to_red_through_a_neutral_centre():
    first, middle, last = SIGNED[0], SIGNED[len(SIGNED) // 2], SIGNED[-1]
    rgb = lambda c: [int(c[i:i + 2], 16) for i in (1, 3, 5)]  # noqa: E731
    assert rgb(first)[2] > rgb(first)[0] and rgb(last)[0] > rgb(last)[2]  # blue end, red end
    assert max(rgb(middle)) - min(rgb(middle)) < 10  # grey in the middle: 0 is no colour
    assert len(SIGNED) % 2 == 1


def test_no_module_but_the_palette_writes_a_colour():
    """One palette: a colour literal anywhere else in cfgp would let two figures drift apart. Allowed: the crystal
    viewer's per-element table (VESTA's colours, data rather than meaning) and the dark theme's swaps (they name
    the colours they replace)."""
    import re
    from pathlib import Path

    import cfgp

    root = Path(cfgp.__file__).parent
    allowed = {"palette.py", "crystal_view.py", "dashboard/theme.py"}
    literal = re.compile(r"[\"']#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?[\"']")
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in allowed:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if literal.search(line.split("  #")[0]):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, found
