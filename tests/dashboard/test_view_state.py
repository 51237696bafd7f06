"""Shareable views in Chromium: a view set by hand (tab, colouring, element, a material, an active-learning replay)
goes into the URL, and that URL opened in a new browser context (a new session) shows the same view; a link full
of bad values gives a visible message per value and the default view, with a clean server log; "Copy link" puts
the page's URL on the clipboard and the link is also shown as text."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from tests.dashboard.conftest import SHOTS, column, crystal_label, model_js, open_watched, tab, text_of, wait_for

#: the text of the first *visible* element matching a CSS selector, through shadow roots (several tabs hold a
#: details pane with the same class; only the shown one counts)
VISIBLE_TEXT = """(css) => {
  const all = [];
  const walk = (root) => { root.querySelectorAll(css).forEach(e => all.push(e));
    root.querySelectorAll('*').forEach(h => { if (h.shadowRoot) walk(h.shadowRoot); }); };
  walk(document);
  const el = all.find(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
  if (!el) return '';
  const txt = (n) => (n.shadowRoot ? txt(n.shadowRoot) : '') + Array.from(n.childNodes).map(
    c => c.nodeType === 3 ? c.textContent : (c.nodeType === 1 && !['STYLE', 'SCRIPT'].includes(c.nodeName)
    ? txt(c) : '')).join('');
  return txt(el).replace(/\\s+/g, ' ').trim(); }"""


def visible_text(page, css: str) -> str:
    return page.evaluate(VISIBLE_TEXT, css)


def active_tab(page) -> str:
    loc = page.locator(".bk-tab.bk-active")
    return loc.first.inner_text().strip() if loc.count() else ""


def colour_title(page) -> str | None:
    return model_js(page, "latent-map-colorbar", "m.visible ? m.title : null")


def legend(page) -> list:
    return model_js(page, "latent-map-legend", "m.visible ? m.items.map(i => (i.label.value ?? i.label)) : []") or []


def query(page) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query, keep_blank_values=True))


@pytest.fixture(scope="module")
def open_url(browser):
    """open_url(url) → a page on ``url`` in a NEW browser context (its own session), fully loaded."""
    contexts = []

    def _open(url: str, permissions=()):
        ctx = browser.new_context(viewport={"width": 1400, "height": 900}, permissions=list(permissions))
        contexts.append(ctx)
        return open_watched(ctx, url)

    yield _open
    for ctx in contexts:
        ctx.close()


def test_a_link_reopens_the_same_view(open_page, open_url, server, app_run):
    frame = app_run.materials.frame
    page = open_page()
    server.new_log()
    tab(page, "Latent map")
    page.locator("select >> visible=true").first.select_option(label="element")
    box = page.locator(".map-element input >> visible=true").first
    box.fill("Li")
    box.press("Enter")
    n_li = int(frame.elements.map(lambda e: "Li" in e).sum())
    assert wait_for(page, lambda: f"contains Li ({n_li:,})" in legend(page), 30), legend(page)

    tab(page, "Outliers")
    table = page.locator(".tabulator >> visible=true").last
    table.wait_for(timeout=60_000)
    cells = table.locator(".tabulator-row .tabulator-cell[tabulator-field=material_id]")
    assert wait_for(page, lambda: cells.count() > 0, 30)
    material = cells.first.inner_text().strip()
    table.locator(".tabulator-row").first.locator(".tabulator-cell").nth(1).click()
    assert wait_for(page, lambda: material in visible_text(page, ".details")
                    and "atoms per cell" in visible_text(page, ".details"), 30)
    want = {"tab": "outliers", "colour": "element", "element": "Li", "material": material}
    assert wait_for(page, lambda: all(query(page).get(k) == v for k, v in want.items()), 30), page.url
    # the link is shown as text too (for browsers that block the clipboard)
    assert wait_for(page, lambda: page.url in visible_text(page, ".view-link"), 20), visible_text(page, ".view-link")

    other = open_url(page.url)  # a new browser context: a new session that knows nothing of the first
    assert wait_for(other, lambda: active_tab(other) == "Outliers", 60), active_tab(other)
    assert wait_for(other, lambda: material in visible_text(other, ".details"), 60), visible_text(other, ".details")
    assert "atoms per cell" in visible_text(other, ".details")
    # and its crystal, drawn before the tab is left (leaving earlier would cancel the frame's plotly.js load)
    assert wait_for(other, lambda: crystal_label(other, "details") == f"{material} 1x1x1", 60), \
        crystal_label(other, "details")
    tab(other, "Latent map")
    assert wait_for(other, lambda: f"contains Li ({n_li:,})" in legend(other), 30), legend(other)
    assert colour_title(other) is None  # a legend, not a colour bar
    assert f"contains Li ({n_li:,})" in text_of(other, ".map-legend-text")
    assert other.locator(".map-element input >> visible=true").first.input_value() == "Li"
    row = int(app_run.materials.index_of([material])[0])
    assert wait_for(other, lambda: model_js(other, "map-source", "Array.from(m.selected.indices)") == [row], 30)
    assert material in visible_text(other, ".details")
    other.screenshot(path=str(SHOTS / "view-restored.png"))
    assert page.external_requests == [] and other.external_requests == []
    assert other.console_errors == []
    server.assert_clean()


def _al_status(page) -> str:
    return text_of(page, ".al-cycle")


def test_a_link_reopens_an_active_learning_replay_at_its_cycle(open_page, open_url, server):
    page = open_page()
    server.new_log()
    tab(page, "Active learning")
    run = page.locator(".al-run select")

    def replays():
        return [o.strip() for o in run.locator("option").all_inner_texts() if o.strip().startswith("replay entropy")]
    assert wait_for(page, lambda: replays(), 60)
    replay = replays()[0]
    seed = re.search(r"-s(\d+)$", replay).group(1)
    run.select_option(label=replay)
    assert wait_for(page, lambda: "cycle 0" in _al_status(page), 30), _al_status(page)
    for _ in range(3):
        page.get_by_role("button", name="Step", exact=True).click()
        page.wait_for_timeout(300)
    assert wait_for(page, lambda: "cycle 3" in _al_status(page), 30), _al_status(page)
    want = {"tab": "al", "al": "replay", "seed": seed, "cycle": "3"}
    assert wait_for(page, lambda: all(query(page).get(k) == v for k, v in want.items()), 30), page.url

    other = open_url(page.url)
    assert wait_for(other, lambda: active_tab(other) == "Active learning", 60), active_tab(other)
    assert wait_for(other, lambda: "cycle 3" in _al_status(other), 60), _al_status(other)
    assert other.locator(".al-run select").input_value() == replay
    assert "Replaying the committed run" in text_of(other, ".al-status")
    assert len(column(other, "al-curve-source", "mae")) == 4  # the curve holds cycles 0..3
    assert other.external_requests == []
    server.assert_clean()


BAD_LINKS = [
    ("tab=nonsense&colour=rainbow&element=Xx&material=999999&al=replay&strategy=entropy&seed=7&cal_split=moon",
     ["tab: “nonsense” is not a tab", "colour: “rainbow” is not a colouring", "“Xx” is not an element symbol",
      "row 999,999 is out of range", "no committed entropy run with seed 7", "cal_split: “moon” is not a split"]),
    ("material=mp-bogus&seed=abc&strategy=magic&lesson=99&out_element=(&out_phosphates=maybe",
     ["“mp-bogus” is not a material of this run", "seed must be a whole number", "“magic” is not a strategy",
      "not a step of the lesson", "out_element: “(” is not an element symbol", "neither true nor false"]),
]


@pytest.mark.parametrize("bad,messages", BAD_LINKS)
def test_a_bad_link_gives_messages_and_the_default_view(open_url, server, bad, messages):
    server.new_log()
    page = open_url(server.url + "?" + bad)
    assert wait_for(page, lambda: messages[0] in text_of(page, ".view-message"), 60), text_of(page, ".view-message")
    shown = text_of(page, ".view-message")
    for m in messages:
        assert m in shown, (m, shown)
    # also a toast notification, in the page itself
    assert wait_for(page, lambda: page.locator(".notyf__toast").count() > 0, 20)
    # the default view
    assert active_tab(page) == "Latent map"
    assert wait_for(page, lambda: colour_title(page) == "DFT E_f (eV/atom)", 30), colour_title(page)
    assert "Click a point" in visible_text(page, ".details")
    assert model_js(page, "map-source", "Array.from(m.selected.indices)") == []
    # the URL now holds the checked view, not the bad values
    assert wait_for(page, lambda: "rainbow" not in page.url and "bogus" not in page.url, 30), page.url
    # the session is not stalled: it still answers
    page.locator("select >> visible=true").first.select_option(label="σ")
    assert wait_for(page, lambda: colour_title(page) == "GP σ (eV/atom)", 30), colour_title(page)
    assert wait_for(page, lambda: query(page).get("colour") == "sigma", 30), page.url
    assert page.external_requests == [] and page.console_errors == []
    server.assert_clean()


def test_copy_link_puts_the_url_on_the_clipboard(open_url, server):
    server.new_log()
    page = open_url(server.url + "?colour=z", permissions=["clipboard-read", "clipboard-write"])
    assert wait_for(page, lambda: colour_title(page) == "z = (GP − DFT) / σ", 60), colour_title(page)
    page.get_by_role("button", name="Copy link").click()
    assert wait_for(page, lambda: page.get_by_role("button", name="Link copied ✓").count() > 0, 10)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.url and query(page).get("colour") == "z"
    # the link shown beside the button is this view's (Panel may write it with every parameter, in its own order)
    assert wait_for(page, lambda: "colour=z" in visible_text(page, ".view-link"), 20), visible_text(page, ".view-link")
    assert visible_text(page, ".view-link").split("?")[0].endswith(page.url.split("?")[0])
    server.assert_clean()


# ------------------------------------------------------------ the same, in Python (no browser): parameters, not widgets
@pytest.fixture(scope="module")
def in_process():
    """The dashboard's views on the shipped default, built in this process (no server, no browser: ~15 s)."""
    import panel as pn

    from cfgp.artefacts import DEFAULT_RUN
    from cfgp.dashboard.active_learning import ActiveLearning
    from cfgp.dashboard.bokeh_figures import map_source
    from cfgp.dashboard.calibration import Calibration
    from cfgp.dashboard.finder import Finder
    from cfgp.dashboard.latent_map import LatentMap
    from cfgp.dashboard.outliers import Outliers
    from cfgp.dashboard.predict import Predict
    from cfgp.dashboard.shared import SessionState, server_data
    from cfgp.dashboard.view_state import DashboardParts, ViewSync

    data = server_data(DEFAULT_RUN)

    def build():
        state = SessionState()
        source = map_source(data)
        lm, cal = LatentMap(data, state, source), Calibration(data, state)
        al, out, pr = ActiveLearning(data, state, source), Outliers(data, state), Predict(data, state, source)
        parts = DashboardParts(data, state, pn.Tabs(lm, cal, al, out, pr), lm, cal, al, out, pr, Finder(data))
        return parts, ViewSync(parts, location=False)
    return build


def test_a_link_sets_each_tabs_parameters_and_the_widgets_follow(in_process):
    parts, sync = in_process()
    lm, cal, out = parts.latent, parts.calibration, parts.outliers
    link = {"colour": "sigma", "element": "Fe", "cal_split": "pool", "cal_phosphates": "true", "out_split": "pool",
            "out_element": "Fe", "out_compare": "true", "tab": "outliers"}
    assert sync.apply(link) == []
    assert (lm.colour, lm.element, cal.split, cal.phosphates) == ("sigma", "Fe", "pool", True)
    assert (out.split, out.element, out.compare_nearest, parts.tabs.active) == ("pool", "Fe", True, 3)
    # the widgets show what the parameters hold
    assert (lm.colour_select.value, lm.element_input.value) == ("sigma", "Fe")
    assert (cal.split_select.value, cal.phosphate_box.value) == ("pool", True)
    assert (out.split_select.value, out.element_input.value, out.compare_box.value) == ("pool", "Fe", True)
    # the view reads back as the same link, and that link rebuilds the same view in another session
    now = sync.current()
    assert {k: now[k] for k in link} == link
    parts2, sync2 = in_process()
    assert sync2.apply(now) == [] and sync2.current() == now


def test_a_widget_change_reaches_the_parameter_and_the_link(in_process):
    parts, sync = in_process()
    parts.latent.colour_select.value = "z"
    parts.outliers.compare_box.value = True
    assert parts.latent.colour == "z" and parts.outliers.compare_nearest
    assert sync.current()["colour"] == "z" and sync.current()["out_compare"] == "true"


@pytest.mark.parametrize("key, value, default", [("colour", "<script>alert(1)</script>", "dft"),
                                                 ("cal_split", "nope", "test"), ("out_split", "javascript:x", "test"),
                                                 ("out_compare", "maybe", "false")])
def test_a_bad_value_is_named_and_the_default_used(in_process, key, value, default):
    parts, sync = in_process()
    messages = sync.apply({key: value})
    assert len(messages) == 1 and f"Link parameter {key}:" in messages[0] and value[:8] in messages[0]
    assert sync.current()[key] == default


def test_a_link_with_two_properties_opens_the_scatter_beside_the_tsne(in_process):
    """x and y in a link set the property scatter's axes: the scatter shows the data's values with labelled axes
    and saves as a figure with them, the t-SNE keeps its own; t-SNE on both hides the scatter."""
    import numpy as np

    def fields(renderer):  # a glyph's x and y columns (Bokeh holds a bare name or a field spec)
        return tuple(getattr(v, "field", v) for v in (renderer.glyph.x, renderer.glyph.y))

    parts, sync = in_process()
    lm = parts.latent
    assert not lm.prop_fig.visible and not lm.prop_column.visible
    assert sync.apply({"x": "band_gap", "y": "volume_per_atom"}) == []
    assert (lm.x_select.value, lm.y_select.value) == ("band_gap", "volume_per_atom")
    assert lm.prop_fig.visible and lm.prop_column.visible
    assert fields(lm.prop_renderer) == ("ax", "ay") and fields(lm.renderer) == ("x", "y")
    frame = parts.data.frame
    np.testing.assert_allclose(lm.source.data["ax"], frame.band_gap.to_numpy(float), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(lm.source.data["ay"], frame.volume_per_atom.to_numpy(float), rtol=1e-6,
                               equal_nan=True)
    assert lm.prop_fig.xaxis[0].axis_label == "band gap (eV)" and lm.fig.title.text.startswith("t-SNE")
    fig = lm.export_property_figure()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "band gap (eV)" and ax.get_ylabel() == "volume per atom (Å³)"
    assert sync.current()["x"] == "band_gap"
    assert sync.apply({"x": "", "y": ""}) == []
    assert not lm.prop_fig.visible and fields(lm.prop_renderer) == ("x", "y")
