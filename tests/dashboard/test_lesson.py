"""The guided lesson in Chromium: it walks all its steps forward and back; each step's text appears (with numbers
that are this run's, checked here against the run's own data) and the dashboard shows what the step promised —
the active tab, the map's colouring, the material whose details are shown, the replayed cycle; the link follows
the step; nothing leaves 127.0.0.1 and the server log stays clean."""

from __future__ import annotations

import html
import urllib.parse

import numpy as np
import pytest

from tests.dashboard.conftest import SHOTS, tab, text_of, wait_for
from tests.dashboard.test_view_state import active_tab, colour_title, visible_text


@pytest.fixture(scope="module")
def steps(app_run):
    """The lesson's steps as the server builds them, from the same run folder (read-only)."""
    from cfgp.dashboard import server_data
    from cfgp.dashboard.lesson import lesson_steps

    data = server_data(app_run.dir)
    return data, lesson_steps(data)


def test_steps_quote_this_runs_numbers(steps, app_run):
    """The texts are computed from the run: check a few of their claims against the run's data directly."""
    from cfgp.uncertainty.metrics import regression_metrics

    data, s = steps
    assert len(s) == 6
    assert [st.view["tab"] for st in s] == ["map", "map", "calibration", "outliers", "al", "predict"]
    frame = data.frame
    assert f"{len(app_run.materials.frame):,} oxides" in s[0].text
    test = frame[frame.split == "test"]
    worst_sigma = test.loc[test.sigma.idxmax()]
    assert s[1].view["material"] == worst_sigma.material_id and s[1].view["colour"] == "sigma"
    assert f"{np.mean(np.abs(test.gp - test.dft)):.3f}" in s[1].text
    m = regression_metrics(test.gp.to_numpy(), test.sigma.to_numpy(), test.dft.to_numpy())
    assert f"{100 * m['coverage_2sigma']:.1f} %" in s[2].text
    phos = test[test.is_phosphate]
    worst = phos.loc[(np.abs(phos.gp - phos.dft) - 2 * phos.sigma).idxmax()]
    assert s[3].view["material"] == worst.material_id and worst.material_id in html.unescape(s[3].text)
    outside = int((np.abs(test.gp - test.dft) > 2 * test.sigma).sum())
    assert f"**{outside:,} of the {len(test):,} test oxides**" in s[3].text
    # active learning: the replayed entropy run's MAE at the cycle shown, read from its history file
    from cfgp.al import History

    al = s[4].view
    assert al["al"] == "replay" and al["strategy"] == "entropy"
    path = next(p for p in (app_run.dir / "al").glob("entropy-*.jsonl") if p.stem.endswith(f"-s{al['seed']}"))
    _, records = History(path).read()
    assert f"{records[int(al['cycle'])]['mae']:.3f}" in s[4].text


def _state_ok(page, step) -> tuple[bool, str]:
    """Does the dashboard show what the step promised? (and a description for the failure message)"""
    shows = step.shows
    tab = active_tab(page)
    got = {"tab": tab}
    ok = tab == shows["tab"]
    if "colour" in shows:
        got["colour"] = colour_title(page)
        ok &= got["colour"] == shows["colour"]
    details = visible_text(page, ".details")
    if "material" in shows:
        got["details"] = details
        ok &= shows["material"] in details and "atoms per cell" in details
    elif shows["tab"] in ("Latent map", "Outliers"):
        got["details"] = details
        ok &= "atoms per cell" not in details  # no material left selected from another step
    if "metrics" in shows:  # the whole split is scored: no material left selected from another step
        got["metrics"] = text_of(page, ".calibration-metrics")[:80]
        ok &= got["metrics"].startswith(shows["metrics"])
    if "cycle" in shows:
        got["cycle"] = text_of(page, ".al-cycle")
        ok &= f"cycle {shows['cycle']} " in got["cycle"] + " "
    return ok, str(got)


def _check_step(page, i, step, n):
    assert wait_for(page, lambda: f"Step {i + 1} of {n}" in text_of(page, ".lesson-counter"), 30), \
        text_of(page, ".lesson-counter")
    assert wait_for(page, lambda: text_of(page, ".lesson-title") == step.title, 10), text_of(page, ".lesson-title")
    first = step.text.replace("**", "").replace("*", "")[:60]
    # the panel's counter, title and text change in one message; wait until the browser has shown it
    assert wait_for(page, lambda: first in text_of(page, ".lesson-text"), 10), (first, text_of(page, ".lesson-text"))
    assert wait_for(page, lambda: _state_ok(page, step)[0], 60), _state_ok(page, step)[1]
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))
    assert wait_for(page, lambda: dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query)).get("lesson")
                    == str(i + 1), 20), (page.url, q)
    # a class reads the step before it clicks on: the step's scroll is over (a click while the page moved under
    # the pointer was lost)
    assert wait_for(page, lambda: (page.evaluate(SCROLL_STATE) or "").startswith("done "), 20), \
        page.evaluate(SCROLL_STATE)


#: the state SCROLL_JS leaves on the page: "busy <value>" while a step's views are waited for, "done <value>" after
SCROLL_STATE = "() => document.documentElement.dataset.lessonScroll"


def test_the_lesson_walks_forward_and_back(open_page, server, steps):
    _, s = steps
    n = len(s)
    page = open_page()
    server.new_log()
    page.get_by_role("button", name="Lesson", exact=True).click()
    for i in range(n):
        _check_step(page, i, s[i], n)
        page.screenshot(path=str(SHOTS / f"lesson-step{i + 1}.png"))
        if i < n - 1:
            page.get_by_role("button", name="Next ▶").click()
    assert page.get_by_role("button", name="Next ▶").is_disabled()
    for i in range(n - 2, -1, -1):
        page.get_by_role("button", name="◀ Back").click()
        _check_step(page, i, s[i], n)
    assert page.get_by_role("button", name="◀ Back").is_disabled()
    page.get_by_role("button", name="Close lesson").click()
    assert wait_for(page, lambda: visible_text(page, ".lesson-counter") == "", 20)
    assert wait_for(page, lambda: "lesson" not in dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query,
                                                                             keep_blank_values=True))
                    or "lesson=&" in page.url + "&", 20), page.url
    assert page.external_requests == []
    assert [e for e in page.console_errors if "favicon" not in e] == []
    server.assert_clean()


#: set the lesson's hidden scroller (the model SCROLL_JS listens to) in the browser, as a step of the server does
SET_SCROLLER = """(value) => { for (const d of Bokeh.documents) { for (const m of (d.all_models ?? d._all_models.values())) {
    if (m.css_classes && m.css_classes.includes('lesson-scroll')) { m.value = value; return true; } } } return false; }"""


def test_a_step_left_before_its_views_settled_never_scrolls_the_page_later(open_page):
    """A step's scroll waits for its views (here the outlier table, on a tab not yet shown); when the class has moved
    on to a step that needs no scroll, the older wait gives up instead of scrolling, under the pointer, to a view
    that appears later (the table, once its tab opens, lies below this short window's fold)."""
    page = open_page(1400, 500)
    page.evaluate("() => { window.__scrolls = []; addEventListener('scroll', () => window.__scrolls.push(scrollY)); }")
    assert page.evaluate(SET_SCROLLER, "outliers|9001")  # waits: no outlier table on the map tab
    page.wait_for_timeout(400)
    assert page.evaluate(SET_SCROLLER, "|9002")  # the next step names nothing
    assert wait_for(page, lambda: page.evaluate(SCROLL_STATE) == "done |9002", 10), page.evaluate(SCROLL_STATE)
    tab(page, "Outliers")
    bottom = lambda: page.evaluate(BOXES, ["outliers"])["outliers"]  # noqa: E731
    assert wait_for(page, lambda: bottom() is not None, 20)
    page.wait_for_timeout(3000)  # the older step's wait (150 ms a try) would have found the table by now
    assert bottom()["bottom"] > 500  # the table does reach below the fold: the old step would have scrolled
    assert page.evaluate("() => [window.scrollY, window.__scrolls]") == [0, []]


def test_a_step_does_not_scroll_once_the_reader_has_acted(open_page):
    """A step waiting for its views (the outlier table, on a tab not yet shown) gives up its scroll when the reader
    presses something meanwhile (here the Outliers tab itself): a scroll after a press moves the page under the
    reader's click."""
    page = open_page(1400, 500)
    page.evaluate("() => { window.__scrolls = []; addEventListener('scroll', () => window.__scrolls.push(scrollY)); }")
    assert page.evaluate(SET_SCROLLER, "outliers|9003")  # waits: no outlier table on the map tab
    page.wait_for_timeout(300)
    assert page.evaluate(SCROLL_STATE) == "busy outliers|9003"
    tab(page, "Outliers")  # the reader clicks while the step waits; the table it waits for then appears
    assert page.evaluate(SCROLL_STATE) == "done outliers|9003"
    bottom = lambda: page.evaluate(BOXES, ["outliers"])["outliers"]  # noqa: E731
    assert wait_for(page, lambda: bottom() is not None, 20)
    page.wait_for_timeout(3000)  # the step's wait (150 ms a try) would have found the table by now
    assert bottom()["bottom"] > 500  # the table does reach below the fold: the step would have scrolled
    assert page.evaluate("() => [window.scrollY, window.__scrolls]") == [0, []]


def test_a_link_opens_the_lesson_at_its_step(open_page, browser, server, steps):
    """A teacher can send the class a link to step 4 (the worst phosphate)."""
    _, s = steps
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = ctx.new_page()
        server.new_log()
        page.goto(server.url + "?lesson=4", timeout=120_000)
        page.wait_for_selector("text=GP device", timeout=120_000)
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
        _check_step(page, 3, s[3], len(s))
        server.assert_clean()
    finally:
        ctx.close()


#: the boxes the browser draws for the first visible element with each CSS class (through shadow roots)
BOXES = """(classes) => { const find = (root, css) => { for (const el of root.querySelectorAll('*')) {
      if (el.classList && el.classList.contains(css)) { const r = el.getBoundingClientRect();
        if (r.width > 0 && r.height > 0) return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; }
      if (el.shadowRoot) { const b = find(el.shadowRoot, css); if (b) return b; } } return null; };
  const out = {}; for (const c of classes) out[c] = find(document, c);
  out.__page = {width: document.scrollingElement.scrollWidth, inner: window.innerWidth}; return out; }"""


def _outside(boxes: dict, width: int, height: int) -> dict:
    """The boxes not wholly inside the window (missing ones too); and a page wider than the window."""
    bad = {c: b for c, b in boxes.items() if c != "__page" and (
        b is None or b["left"] < -1 or b["top"] < -1 or b["right"] > width + 1 or b["bottom"] > height + 1)}
    if boxes["__page"]["width"] > boxes["__page"]["inner"] + 1:
        bad["page wider than the window"] = boxes["__page"]
    return bad


@pytest.mark.parametrize("width,height,query", [
    (1366, 768, ""),
    pytest.param(1920, 1080, "", marks=pytest.mark.slow),
    pytest.param(1920, 1080, "&projector=1&theme=dark", marks=pytest.mark.slow)])
def test_every_step_shows_what_it_names_inside_the_window(browser, server, steps, width, height, query):
    """The lesson's panel (its title, buttons and text) and the views a step's text names (Step.in_view: the map,
    the material's crystal, the calibration plots, the outlier table, the replay, the upload) all lie inside a
    1366×768 (and 1920×1080, also projected) window at every step, without a sideways scroll."""
    _, s = steps
    n = len(s)
    ctx = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = ctx.new_page()
        server.new_log()
        page.goto(f"{server.url}?lesson=1{query}", timeout=120_000)
        page.wait_for_selector("text=GP device", timeout=120_000)
        for i in range(n):
            if i:
                page.get_by_role("button", name="Next ▶").click()
            _check_step(page, i, s[i], n)
            assert s[i].in_view, s[i].title
            classes = ["lesson-counter", "lesson-next", "lesson-title", *s[i].in_view]
            # the lesson text starts inside the window (a long one may scroll inside its panel)
            ok = wait_for(page, lambda: not _outside(page.evaluate(BOXES, classes), width, height)
                          and page.evaluate(BOXES, ["lesson-text"])["lesson-text"]["top"] < height - 100, 20)
            boxes = page.evaluate(BOXES, classes + ["lesson-text"])
            assert ok, (i + 1, s[i].title, _outside(boxes, width, height), boxes)
            page.screenshot(path=str(SHOTS / f"lesson-{width}x{height}{'-projector' if query else ''}-step{i + 1}.png"))
        server.assert_clean()
    finally:
        ctx.close()
