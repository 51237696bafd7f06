"""The search box: the paper's named phosphates found by formula on the shipped data, in Python and in Chromium;
a click on a result opens the material (selected on the map, its details shown); the query goes in the link; a
query the core cannot read gets a message, not a traceback."""

from __future__ import annotations

import html
import urllib.parse
from pathlib import Path

import pytest

from cfgp.artefacts import DEFAULT_RUN
from tests.dashboard.conftest import SHOTS, model_js, open_watched, serving, tab, text_of, wait_for

#: the paper's three phosphates (Allotey et al. 2021) as a reader types them → their ids in the shipped data
PAPER_PHOSPHATES = {"ZrP2(HO3)2": {"mp-24030", "mp-643013"}, "SnPO3F": {"mp-555838"}, "In3(PO4)2": {"mp-28708"}}


@pytest.fixture(scope="module")
def default_data():
    from cfgp.dashboard.shared import server_data

    return server_data(DEFAULT_RUN)


def test_the_papers_phosphates_are_found_by_formula(default_data):
    from cfgp.dashboard.finder import Finder

    opened = []
    finder = Finder(default_data, on_open=opened.append)
    for query, ids in PAPER_PHOSPHATES.items():
        finder.query = query
        assert set(finder.table.value["material_id"]) == ids, query
        assert finder.table.visible and f"**{len(ids)}** material" in finder.summary.object
    # elements with an exclusion: every row has P and F and no Si, and the count is the data's
    finder.query = "P F -Si"
    elements = default_data.run.materials.frame["elements"]
    expected = int(elements.map(lambda e: "P" in e and "F" in e and "Si" not in e).sum())
    assert finder.result.n_matches == expected > 0
    assert all({"P", "F"} <= set(elements.iloc[r]) and "Si" not in elements.iloc[r] for r in finder.table.value.index)
    # a click opens the row's material
    finder.query = "mp-555838"

    class Click:
        row = 0
    finder._on_click(Click())
    assert opened == [default_data.row_of_id["mp-555838"]]
    # what the core cannot read is said, escaped, and shows no table
    finder.query = "<b>Xx</b> Qq"
    assert not finder.table.visible and "not an element symbol" in html.unescape(finder.summary.object)
    assert "<b>" not in finder.summary.object
    finder.query = ""
    assert not finder.summary.visible and not finder.table.visible


def _search(page, query: str) -> None:
    box = page.locator(".search-box input >> visible=true").first
    box.fill(query)
    box.press("Enter")


def _result_ids(page) -> list[str]:
    cells = page.locator(".search-results .tabulator-row .tabulator-cell[tabulator-field=material_id]")
    return [t.strip() for t in cells.all_inner_texts()]


def _inside_viewport(page, css: str) -> bool:
    box = page.locator(f"{css} >> visible=true").first.bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 200) <= size["height"] and \
        box["x"] >= 0 and box["x"] + box["width"] <= size["width"] + 1


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    """``panel serve app.py`` on the shipped default (only read), for what the tiny run cannot hold."""
    yield from serving(Path(DEFAULT_RUN).resolve(), tmp_path_factory.mktemp("default-server") / "panel.log")


@pytest.mark.slow  # the whole app served on the shipped 16,388 oxides (a minute to start): run with the long jobs;
# the finder on the default's data is tested above in Python, and in the browser on the tiny run below
def test_the_papers_phosphates_in_the_browser(browser, default_server):
    """On the shipped data, as a researcher opens the app: each of the paper's phosphates typed by formula is listed
    with its ids, inside a 1920×1080 window, from the Calibration tab too; the server log stays clean."""
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = ctx.new_page()
    page.goto(default_server.url, timeout=120_000)
    page.wait_for_selector("text=GP device", timeout=120_000)
    default_server.new_log()
    tab(page, "Calibration")
    for query, ids in PAPER_PHOSPHATES.items():
        _search(page, query)
        assert wait_for(page, lambda: set(_result_ids(page)) == ids, 20), (query, _result_ids(page))
        assert _inside_viewport(page, ".search-results")
    page.screenshot(path=str(SHOTS / "search-phosphates.png"))
    default_server.assert_clean()
    ctx.close()


def test_a_result_opens_the_material_and_the_query_is_in_the_link(open_page, browser, server, app_run):
    frame = app_run.materials.frame
    phosphate = frame[frame["elements"].map(lambda e: "P" in e)].iloc[0]
    page = open_page()
    server.new_log()
    tab(page, "Active learning")
    _search(page, phosphate["formula"])
    assert wait_for(page, lambda: phosphate["material_id"] in _result_ids(page), 20), _result_ids(page)
    assert "click one to open it" in text_of(page, ".search-summary")
    page.locator(".search-results .tabulator-row >> visible=true").filter(
        has_text=phosphate["material_id"]).first.click()
    row = int(app_run.materials.index_of([phosphate["material_id"]])[0])
    # the map tab opens with the material selected and its details shown
    assert wait_for(page, lambda: model_js(page, "map-source", "Array.from(m.selected.indices)") == [row], 20)
    assert wait_for(page, lambda: phosphate["material_id"] in text_of(page, ".details"), 20)
    assert page.locator("text=Each dot is an oxide").first.is_visible()  # the Latent map tab is the one shown
    # the link holds the query; opened elsewhere it shows the same results
    assert wait_for(page, lambda: "q=" in page.url, 10)
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["q"] == [phosphate["formula"]]
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    other = open_watched(ctx, page.url)
    assert wait_for(other, lambda: phosphate["material_id"] in _result_ids(other), 30)
    ctx.close()
    # a query the core cannot read: a message in the box's summary, no table, no traceback
    _search(page, "Qq Xx")
    assert wait_for(page, lambda: "not an element symbol" in text_of(page, ".search-summary"), 15)
    assert not page.locator(".search-results >> visible=true").count()
    page.locator(".search-close button").first.click()
    assert wait_for(page, lambda: not page.locator(".search-summary >> visible=true").count(), 10)
    server.assert_clean()
    assert page.console_errors == []
