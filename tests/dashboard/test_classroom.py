"""The classroom display in Chromium: projector mode fills a 1080p screen with large text, the dark theme keeps
every part readable (WCAG contrast of the computed colours), the tab headers work from the keyboard, and tables
and tooltips state their units. Each page is a fresh session opened with the URL's query (``?theme=dark``,
``?projector=1``), as a teacher would open it."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

from tests.dashboard.conftest import SHOTS, model_js, open_watched, tab, wait_for

TABS = [("Latent map", "Each dot is an oxide"), ("Calibration", "Is the uncertainty honest?"),
        ("Active learning", "Which material should DFT compute next?"), ("Outliers", "Materials whose DFT value"),
        ("Predict", "Predict a new material.")]

# ------------------------------------------------------------------ colours and contrast (computed in the test)
DEEP = """
window.__deep = window.__deep || {
  all(root = document) {
    const out = [];
    const walk = (r) => {
      for (const el of r.querySelectorAll('*')) { out.push(el); if (el.shadowRoot) walk(el.shadowRoot); } };
    walk(root); return out;
  },
  visible(el) { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; },
  byText(marker) {  // the deepest visible element with a text node holding marker
    return this.all().find(el => this.visible(el) && Array.from(el.childNodes).some(
      c => c.nodeType === 3 && c.textContent.includes(marker)));
  },
  parent(el) { return el.parentElement || (el.getRootNode() && el.getRootNode().host) || null; },
  colours(el, bgEl) {  // text colour and the layers of background behind it, innermost first
    const layers = [];
    for (let e = bgEl || el; e; e = this.parent(e)) {
      const bg = getComputedStyle(e).backgroundColor;
      layers.push(bg);
      if (/^rgb\\(/.test(bg) || /rgba\\([^)]*,\\s*1\\)$/.test(bg)) break;
    }
    return {color: getComputedStyle(el).color, layers, fontSize: getComputedStyle(el).fontSize};
  },
};
"""


def deep(page) -> None:
    """Install the helpers above in the page (once; a reload needs them again)."""
    page.evaluate("() => {" + DEEP + " return 0; }")


def has(page, js: str) -> bool:
    deep(page)
    return bool(page.evaluate(f"() => !!({js})"))


def parse_colour(css: str) -> tuple[float, float, float, float]:
    """'rgb(1, 2, 3)' / 'rgba(1, 2, 3, 0.5)' / '#rrggbb' → (r, g, b, alpha) with channels 0–255."""
    css = css.strip()
    if css.startswith("#"):
        h = css[1:]
        if len(h) == 3:
            h = "".join(c * 2 for c in h)
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 1.0
    nums = [float(x) for x in re.findall(r"[-\d.]+", css)]
    if len(nums) < 3:
        raise ValueError(f"not a colour: {css!r}")
    return nums[0], nums[1], nums[2], (nums[3] if len(nums) > 3 else 1.0)


def composite(layers: list[str]) -> tuple[float, float, float]:
    """The colour seen through the background layers (innermost first), over a white page."""
    r, g, b = 255.0, 255.0, 255.0
    for css in reversed(layers):
        lr, lg, lb, a = parse_colour(css)
        r, g, b = lr * a + r * (1 - a), lg * a + g * (1 - a), lb * a + b * (1 - a)
    return r, g, b


def luminance(rgb) -> float:
    def lin(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = rgb[:3]
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast(fg, bg) -> float:
    """WCAG 2 contrast ratio of two colours (each an (r, g, b[, a]) tuple or a CSS colour string)."""
    fg = parse_colour(fg) if isinstance(fg, str) else fg
    bg = parse_colour(bg) if isinstance(bg, str) else bg
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def seen(page, handle_js: str, bg_js: str | None = None) -> dict:
    """Text colour, effective background and font size of the element that ``handle_js`` returns."""
    deep(page)
    info = page.evaluate(f"() => {{ const el = {handle_js}; if (!el) return null;"
                         f" const bg = {bg_js or 'null'}; return window.__deep.colours(el, bg); }}")
    assert info is not None, f"not found: {handle_js}"
    fg = parse_colour(info["color"])
    bg = composite(info["layers"])
    fg_seen = tuple(c * fg[3] + b * (1 - fg[3]) for c, b in zip(fg[:3], bg))
    return {"ratio": contrast(fg_seen, bg), "bg": bg, "fg": fg_seen, "font_px": float(info["fontSize"][:-2])}


def by_text(marker: str) -> str:
    return f"window.__deep.byText({marker!r})"


def open_with(open_page, server, query: str, width: int = 1920, height: int = 1080):
    page = open_page(width, height)
    page.goto(f"{server.url}?{query}", timeout=120_000)
    page.wait_for_selector("text=GP device", timeout=120_000)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    page.wait_for_timeout(1500)
    return page


def root_width(page) -> float:
    deep(page)
    return page.evaluate("() => { const el = window.__deep.all().find(e => e.classList.contains('cfgp-root'));"
                         " return el ? el.getBoundingClientRect().width : null; }")


def active_tab(page) -> str:
    deep(page)
    return page.evaluate("() => { const t = window.__deep.all().find(e => e.classList.contains('bk-tab')"
                         " && e.classList.contains('bk-active')); return t ? t.textContent.trim() : null; }")


# ------------------------------------------------------------------ projector mode
@pytest.mark.slow  # a walk through every tab: a whole-app audit, run with the long jobs
def test_projector_mode_fills_a_1080p_screen_with_large_text(open_page, server):
    server.new_log()
    plain = open_with(open_page, server, "tab=map")
    plain_note = seen(plain, by_text("Each dot is an oxide"))
    page = open_with(open_page, server, "projector=1")
    assert root_width(page) >= 1850, root_width(page)
    tabs_width = page.evaluate("() => Math.max(...window.__deep.all().filter(e => e.classList.contains("
                               "'bk-panel-models-tabs-Tabs')).map(e => e.getBoundingClientRect().width))")
    assert tabs_width >= 1850, tabs_width
    for name, marker in TABS:
        tab(page, name)
        assert wait_for(page, lambda: has(page, by_text(marker)), 30), name
        assert seen(page, by_text(marker))["font_px"] >= 16, name
    # the tab labels and a table's cells too
    deep(page)
    assert page.evaluate("() => parseFloat(getComputedStyle(window.__deep.all().find(e => e.classList.contains("
                         "'bk-tab'))).fontSize)") >= 16
    tab(page, "Outliers")
    page.wait_for_selector(".tabulator-cell >> visible=true", timeout=60_000)
    assert seen(page, "window.__deep.all().find(e => e.classList.contains('tabulator-cell') && e.textContent.trim()"
                      " && window.__deep.visible(e))")["font_px"] >= 16
    # plots: axis labels and markers scaled (canvas text, so read from the Bokeh models)
    tab(page, "Calibration")
    page.wait_for_selector(".bk-Figure >> visible=true", timeout=60_000)
    axis_px = float(model_js(page, "parity", "m.below[0].axis_label_text_font_size").rstrip("px"))
    assert axis_px >= 1.4 * 13  # Bokeh's default axis label size is 13 px
    size = model_js(page, "latent-map", "(() => { const r = m.renderers.find(r => r.name === 'latent-map-points');"
                                        " const s = r.glyph.size; return typeof s === 'number' ? s : s.value; })()")
    assert size >= 6, size
    page.screenshot(path=str(SHOTS / "classroom-projector.png"))
    # the same page without projector mode is what the issue reported: smaller text
    assert plain_note["font_px"] < 16 <= seen(page, by_text("Is the uncertainty honest?"))["font_px"]
    assert page.external_requests == [] and plain.external_requests == []
    assert page.console_errors == []
    server.assert_clean()


# ------------------------------------------------------------------ dark theme
@pytest.mark.slow  # a walk through every tab: a whole-app audit, run with the long jobs
def test_dark_theme_keeps_every_part_readable(open_page, server):
    server.new_log()
    page = open_with(open_page, server, "theme=dark")
    ratios = {}
    ratios["active tab label"] = seen(page, "window.__deep.all().find(e => e.classList.contains('bk-tab')"
                                            " && e.classList.contains('bk-active'))")
    for name, marker in TABS:
        tab(page, name)
        assert wait_for(page, lambda: has(page, by_text(marker)), 30), name
        ratios[f"{name} tab text"] = seen(page, by_text(marker))
        assert active_tab(page) == name
        ratios[f"active tab label ({name})"] = seen(
            page, "window.__deep.all().find(e => e.classList.contains('bk-tab') && e.classList.contains('bk-active'))")
    # the page itself is dark, not a light page with light text
    assert luminance(ratios["Latent map tab text"]["bg"]) < 0.05
    # a table: header and cells, and the structure panel of a clicked row
    tab(page, "Outliers")
    page.wait_for_selector(".tabulator-cell >> visible=true", timeout=60_000)
    ratios["table header"] = seen(page, "window.__deep.all().find(e => e.classList.contains('tabulator-col-title')"
                                        " && window.__deep.visible(e))")
    for i in (0, 1, 2):  # odd and even rows
        ratios[f"table cell row {i}"] = seen(
            page, f"window.__deep.all().filter(e => e.classList.contains('tabulator-row') && window.__deep.visible(e))"
                  f"[{i}].querySelector('.tabulator-cell')")
    ratios["table pager"] = seen(page, "window.__deep.all().find(e => e.classList.contains('tabulator-page')"
                                       " && e.classList.contains('active'))")
    page.locator(".tabulator-row >> visible=true").nth(1).click()
    assert wait_for(page, lambda: has(page, by_text('space group')), 30)
    ratios["structure panel text"] = seen(page, by_text("space group"))
    assert wait_for(page, lambda: any(f.url == "about:srcdoc" for f in page.frames), 60)
    frame = next(f for f in page.frames if f.url == "about:srcdoc")
    assert wait_for(page, lambda: frame.evaluate("() => !!(window.Plotly && document.getElementById('fig')"
                                                 " && document.getElementById('fig')._fullLayout)"), 90)
    viewer = frame.evaluate("""() => { const l = document.getElementById('fig')._fullLayout;
        const leg = document.querySelector('.legendtext');
        return {paper: l.paper_bgcolor, font: l.font.color, body: getComputedStyle(document.body).backgroundColor,
                legend: leg ? getComputedStyle(leg).fill : null}; }""")
    assert luminance(parse_colour(viewer["paper"])) < 0.05 and luminance(parse_colour(viewer["body"])) < 0.05, viewer
    ratios["structure viewer text"] = {"ratio": contrast(viewer["font"], viewer["paper"])}
    if viewer["legend"]:
        ratios["structure viewer legend"] = {"ratio": contrast(viewer["legend"], viewer["paper"])}
    # Bokeh plots: dark background, axis labels readable on it
    tab(page, "Calibration")
    page.wait_for_selector(".bk-Figure >> visible=true", timeout=60_000)
    fill = model_js(page, "parity", "m.border_fill_color")
    assert luminance(parse_colour(fill)) < 0.05, fill
    ratios["plot axis label"] = {"ratio": contrast(model_js(page, "parity", "m.below[0].axis_label_text_color"), fill)}
    # a notification (the active-learning tab warns when Play is pressed on a finished run)
    tab(page, "Active learning")
    cycles = page.locator(".al-cycles input")
    cycles.fill("1")
    cycles.press("Enter")
    page.wait_for_timeout(800)
    page.get_by_role("button", name="Step").click()
    assert wait_for(page, lambda: has(page, by_text('cycle 1')), 120)
    page.get_by_role("button", name="▶ Play").click()
    assert wait_for(page, lambda: has(
        page, "window.__deep.all().some(e => e.classList.contains('notyf__message'))"), 30)
    ratios["notification"] = seen(
        page, "window.__deep.all().find(e => e.classList.contains('notyf__message'))",
        "window.__deep.all().find(e => e.classList.contains('notyf__message')).closest('.notyf__toast')"
        ".querySelector('.notyf__ripple') || null")
    page.screenshot(path=str(SHOTS / "classroom-dark.png"))
    # the lesson panel, projected in a dark room
    lesson = open_with(open_page, server, "theme=dark&lesson=1")
    assert wait_for(lesson, lambda: has(lesson, by_text("Step 1 of")), 60)
    ratios["lesson step counter"] = seen(lesson, by_text("Step 1 of"))
    ratios["lesson text"] = seen(lesson, "window.__deep.all().find(e => e.classList.contains('lesson-text'))")
    assert lesson.external_requests == []
    low = {k: round(v["ratio"], 2) for k, v in ratios.items() if v["ratio"] < 4.5}
    assert not low, f"contrast below 4.5: {low}"
    assert page.external_requests == []
    assert page.console_errors == []
    server.assert_clean()


def test_header_toggles_switch_theme_and_keep_the_rest_of_the_url(open_page, server):
    server.new_log()
    page = open_with(open_page, server, "projector=1&tab=outliers", width=1400, height=900)
    before = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    with page.expect_navigation(timeout=120_000):
        page.get_by_role("button", name="Dark theme").click()
    page.wait_for_selector("text=GP device", timeout=120_000)
    after = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    assert after.get("theme") == ["dark"]
    assert all(after.get(k) == v for k, v in before.items()), (before, after)
    deep(page)
    assert page.evaluate("() => window.__deep.all().some(e => e.classList.contains('cfgp-theme-dark'))")
    assert page.evaluate("() => window.__deep.all().some(e => e.classList.contains('cfgp-projector'))")
    page.wait_for_timeout(1000)
    assert page.external_requests == []
    server.assert_clean()


# ------------------------------------------------------------------ keyboard
def focused(page) -> dict:
    return page.evaluate("""() => { let a = document.activeElement;
        while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
        if (!a) return null; const cs = getComputedStyle(a);
        return {tab: a.classList.contains('bk-tab'), text: (a.textContent || '').trim(), tag: a.tagName,
                outline: cs.outlineStyle, width: parseFloat(cs.outlineWidth)}; }""")


def tab_list(page) -> list[dict]:
    """The main tab headers as the browser holds them: text, role, tabindex, aria-selected, bk-active."""
    deep(page)
    return page.evaluate("""() => { const w = window.__deep.all().find(e => e.classList.contains('bk-headers-wrapper')
            && e.querySelectorAll('.bk-tab').length >= 5);
        if (!w) return [];
        return [{list: w.getAttribute('role')}].concat(Array.from(w.children)
            .filter(t => t.classList.contains('bk-tab'))
            .map(t => ({text: t.textContent.trim(), role: t.getAttribute('role'), tabindex: t.getAttribute('tabindex'),
                        selected: t.getAttribute('aria-selected'), active: t.classList.contains('bk-active')}))); }""")


def assert_tab_pattern(page, shown: str) -> None:
    """WAI-ARIA tabs with a roving tabindex: a tablist of tabs, only the shown one selected and in the Tab order."""
    state = tab_list(page)
    assert state and state[0]["list"] == "tablist", state
    tabs = state[1:]
    assert [t["text"] for t in tabs] == [name for name, _ in TABS], tabs
    for t in tabs:
        on = t["text"] == shown
        assert t["role"] == "tab" and t["active"] == on, (shown, t)
        assert t["selected"] == ("true" if on else "false") and t["tabindex"] == ("0" if on else "-1"), (shown, t)


def test_keyboard_reaches_the_tab_list_and_arrows_switch_tabs(open_page, server):
    server.new_log()
    page = open_page(1400, 900)
    assert wait_for(page, lambda: len(tab_list(page)) == len(TABS) + 1 and tab_list(page)[1]["role"] == "tab", 20)
    assert_tab_pattern(page, "Latent map")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.mouse.click(5, 5)  # focus the page itself, at the top
    presses = 0
    for presses in range(1, 13):  # the header's controls, the search box, then the tab list: within 12 presses
        page.keyboard.press("Tab")
        f = focused(page)
        if f and f["tab"]:
            break
    f = focused(page)
    assert f and f["tab"] and f["text"] == "Latent map", (presses, f)  # the list's one Tab stop: the shown tab
    assert f["outline"] != "none" and f["width"] >= 2, f  # with a visible focus ring
    steps = [("ArrowRight", "Calibration"), ("ArrowRight", "Active learning"), ("End", "Predict"),
             ("ArrowRight", "Latent map"), ("ArrowLeft", "Predict"), ("ArrowUp", "Outliers"), ("Home", "Latent map"),
             ("ArrowDown", "Calibration")]
    for key, shown in steps:
        page.keyboard.press(key)
        assert wait_for(page, lambda: active_tab(page) == shown, 10), (key, shown, active_tab(page))
        # the focus stays on the tab just shown (never the page body) and the roles survive Bokeh's re-render
        assert wait_for(page, lambda: (focused(page) or {}).get("text") == shown, 10), (key, focused(page))
        assert wait_for(page, lambda: tab_list(page)[1:] and all(
            t["selected"] == ("true" if t["text"] == shown else "false") for t in tab_list(page)[1:]), 10)
        assert_tab_pattern(page, shown)
    # a person's next key comes after the panel has drawn (Bokeh lays it out again after a switch, which took
    # longer than half a second in a loaded CI): its controls must be on the screen first
    # a checkbox's label is a sibling of its input (in the widget's shadow root), not an ancestor
    # (its root also holds the widget's style sheets: the label is the text after them)
    boxes = ("() => window.__deep.all().filter(e => e.matches('input[type=checkbox]')).map(e => "
             "[(e.parentElement || e.getRootNode()).textContent.trim().endsWith('phosphates only'), "
             "window.__deep.visible(e)])")
    assert wait_for(page, lambda: [True, True] in page.evaluate(boxes), 20), (page.evaluate(boxes), active_tab(page))
    page.wait_for_timeout(300)
    page.keyboard.press("Tab")  # Tab leaves the tab list for a control of the shown panel
    assert wait_for(page, lambda: (f := focused(page) or {}) and not f.get("tab") and f.get("tag") != "BODY", 10), \
        focused(page)
    page.keyboard.press("Shift+Tab")  # and Shift+Tab comes back to the shown tab, not the first
    assert wait_for(page, lambda: (focused(page) or {}).get("text") == "Calibration", 10), focused(page)
    for _ in range(2):
        page.keyboard.press("ArrowRight")
    assert wait_for(page, lambda: active_tab(page) == "Outliers", 10)
    page.wait_for_selector(".tabulator >> visible=true", timeout=60_000)  # the tab's content is shown
    assert page.console_errors == []
    server.assert_clean()


# ------------------------------------------------------------------ units
UNIT = re.compile(r"eV/atom|σ|Å|fraction|count|%")


def test_tables_and_tooltips_state_their_units(open_page, server):
    server.new_log()
    page = open_page(1400, 900)
    tab(page, "Outliers")
    page.wait_for_selector(".tabulator-cell >> visible=true", timeout=60_000)
    deep(page)
    cols = page.evaluate("() => { const t = window.__deep.all().find(e => e.classList.contains('tabulator')"
                         " && window.__deep.visible(e)); const row = [...t.querySelectorAll("
                         "'.tabulator-row')].find(r => r.getBoundingClientRect().height > 0);"
                         " return [...t.querySelectorAll('.tabulator-col[tabulator-field]')]"
                         ".filter(c => window.__deep.visible(c)).map(c => {"
                         " const f = c.getAttribute('tabulator-field');"
                         " const cell = row.querySelector(`.tabulator-cell[tabulator-field=\"${f}\"]`);"
                         " return [c.querySelector('.tabulator-col-title').textContent.trim(),"
                         " cell ? cell.textContent.trim() : '']; }); }")
    titles = [t for t, _ in cols]
    numeric = [t for t, v in cols if re.fullmatch(r"-?\d+(\.\d+)?", v)]
    assert len(numeric) >= 5, cols
    assert all(UNIT.search(t) for t in numeric), numeric
    assert sum("eV/atom" in t for t in titles) >= 4, titles
    # every formatted number in a plot's hover tooltip carries a unit (a tab's figures are in the document while
    # it is shown: collect them tab by tab)
    tips, helps = [], set()
    for name, _ in TABS:
        tab(page, name)
        page.wait_for_timeout(1500)
        tips += page.evaluate("() => Bokeh.documents.flatMap(d => [...d.all_models]).filter(m =>"
                              " m.constructor.__name__ === 'HoverTool').flatMap(m =>"
                              " Array.isArray(m.tooltips) ? m.tooltips : [])")
        helps |= set(page.evaluate(  # the widgets' short help (a string, or a Tooltip holding it)
            "() => Bokeh.documents.flatMap(d => [...d.all_models]).filter(m => 'description' in m"
            " && m.description != null && m.description !== '').map(m => { const d = m.description;"
            " return typeof d === 'string' ? d : (typeof d.content === 'string' ? d.content : String(d.id)); })"))
    numbers = [(k, v) for k, v in tips if re.search(r"@\w+\{[0-9.,]+\}", v)]
    assert len(numbers) >= 8, tips
    assert all(UNIT.search(v) for _, v in numbers), [t for t in numbers if not UNIT.search(t[1])]
    # widgets carry short help
    assert len(helps) >= 8, helps
    assert page.external_requests == []
    server.assert_clean()


# ------------------------------------------------------------------ the pieces, without a browser
def test_contrast_ratio_matches_wcag_reference_values():
    assert abs(contrast("#000000", "#ffffff") - 21.0) < 1e-9
    assert abs(contrast("#777777", "#ffffff") - 4.48) < 0.01  # WCAG's own borderline example
    assert contrast("rgb(255, 255, 255)", "rgb(255, 193, 7)") < 4.5  # Panel's white-on-yellow warning toast
    assert composite(["rgba(0, 0, 0, 0)", "rgb(33, 37, 41)"]) == (33.0, 37.0, 41.0)


def test_style_figure_scales_fonts_and_glyphs_and_lightens_black_marks():
    from bokeh.models import ColorBar, LinearColorMapper, Slope
    from bokeh.plotting import figure

    from cfgp.dashboard.theme import PROJECTOR_SCALE, ViewOptions, style_figure

    fig = figure(x_axis_label="DFT E_f (eV/atom)")
    r = fig.scatter([0, 1], [0, 1], size=4, line_color="black")
    fig.add_layout(Slope(gradient=1, y_intercept=0, line_color="black", line_width=1))
    fig.add_layout(ColorBar(color_mapper=LinearColorMapper(palette="Viridis256"), title_text_font_size="12px"), "right")
    style_figure(fig, ViewOptions())  # the default look is left alone
    assert r.glyph.size == 4 and fig.xaxis[0].axis_label_text_font_size == "13px"
    style_figure(fig, ViewOptions(theme="dark", projector=True))
    assert r.glyph.size == 4 * PROJECTOR_SCALE
    assert fig.xaxis[0].axis_label_text_font_size == "19.5px"
    assert fig.select_one({"type": ColorBar}).title_text_font_size == "18px"
    slope = fig.select_one({"type": Slope})
    assert slope.line_color != "black" and contrast(slope.line_color, "#2b3035") >= 4.5
    assert r.glyph.line_color != "black"


def test_view_options_refuse_unknown_values():
    from cfgp.dashboard.theme import ViewOptions, plotly_layout

    assert ViewOptions.from_request(theme="purple", projector=None) == ViewOptions("default", False)
    assert ViewOptions.from_request(theme="dark", projector=True) == ViewOptions("dark", True)
    dark = plotly_layout(ViewOptions("dark", False))
    assert contrast(dark["font_color"], dark["paper_bgcolor"]) >= 4.5
    assert plotly_layout(ViewOptions()) == {}


# ------------------------------------------------------------------ text that overlaps or is cut, projected
TEXT_LAYOUT = (Path(__file__).parent / "text_layout.js").read_text()
INJECTED = """() => { for (const [i, t] of ['first label text', 'second label text'].entries()) {
    const d = document.createElement('div'); d.className = 'cfgp-injected'; d.textContent = t;
    Object.assign(d.style, {position: 'fixed', left: (100 + 40 * i) + 'px', top: '300px', fontSize: '20px',
                            zIndex: 99999, background: 'transparent'}); document.body.appendChild(d); } }"""


@pytest.mark.slow  # a walk through every tab: a whole-app audit, run with the long jobs
def test_no_text_overlaps_or_is_cut_in_projector_mode(browser, server, app_run):
    """Projected at 1920×1080 (dark), with an active-learning replay chosen (the run list's longest name) and with
    the lesson open (the tabs narrower): on every tab no two texts overlap, no clipped text, option or figure title
    is cut. The check itself is checked: two texts placed on top of each other are reported."""
    seed = next(p.stem.rsplit("-s", 1)[1] for p in sorted((app_run.dir / "al").glob("entropy-*.jsonl")))
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        for query in (f"projector=1&theme=dark&al=replay&strategy=entropy&seed={seed}&batch=1",
                      "projector=1&theme=dark&lesson=1"):
            page = open_watched(ctx, f"{server.url}?{query}")
            server.new_log()
            titles = 0
            for name, _ in TABS:
                tab(page, name)
                page.wait_for_timeout(1500)
                found = page.evaluate(TEXT_LAYOUT)
                assert found["over"] == [] and found["cut"] == [], (query, name, found)
                titles += found["titles"]
            assert titles >= 5, titles  # the figures' titles were measured
            page.evaluate(INJECTED)
            found = page.evaluate(TEXT_LAYOUT)
            assert any({"first label text", "second label text"} == {a, b} for a, b, *_ in found["over"]), found
            assert page.console_errors == []
            page.close()
        server.assert_clean()
    finally:
        ctx.close()
