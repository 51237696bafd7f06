"""Calibration tab in Chromium: brushing scores the selected materials (an integer count), the
calibration curve follows the selection and comes back after Clear, a selection made on the latent
map shows up here, the phosphates filter replaces the plotted points, and nothing logs an error."""

import math
import re

import numpy as np
import pytest

from tests.dashboard.conftest import SHOTS, column, model_js, tab, wait_for

#: the text of a Panel pane (rendered inside a shadow root) found by its css class
PANE_TEXT = """e => { const r = e.shadowRoot; if (!r) return e.innerText;
  return Array.from(r.children).filter(c => !['STYLE', 'LINK'].includes(c.tagName)).map(c => c.innerText).join('\\n') }"""
#: page coordinates of a figure's plotting frame
FRAME = """(() => { const v = Bokeh.index.find_one(m); const r = v.el.getBoundingClientRect(); const f = v.frame.bbox;
  return {x: r.x + f.left, y: r.y + f.top, w: f.width, h: f.height}; })()"""


def _text(page, css: str) -> str:
    loc = page.locator(css).first
    return loc.evaluate(PANE_TEXT) if loc.count() else ""


def _metrics(page) -> str:
    return _text(page, ".calibration-metrics")


def _indices(page, source: str) -> list[int]:
    return sorted(model_js(page, source, "Array.from(m.selected.indices)") or [])


def _brush(page, figure: str, fx0: float, fy0: float, fx1: float, fy1: float) -> None:
    """Drag a box over a figure, corners in fractions of its plotting frame (y from the top)."""
    box = model_js(page, figure, FRAME)
    assert box, f"figure {figure} is not rendered"
    page.mouse.move(box["x"] + fx0 * box["w"], box["y"] + fy0 * box["h"])
    page.mouse.down()
    page.mouse.move(box["x"] + fx1 * box["w"], box["y"] + fy1 * box["h"], steps=8)
    page.mouse.up()


def _below(page, figure: str, source: str, y: str, quantile: float) -> float:
    """The fraction from the top of a figure's frame where ``quantile`` of the points lie below."""
    y0, y1 = model_js(page, figure, "[m.y_range.start, m.y_range.end]")
    cut = float(np.quantile(column(page, source, y), quantile))
    return (y1 - cut) / (y1 - y0)


def _split_rows(run, split: str) -> np.ndarray:
    labels = np.asarray(run.split.labels(len(run.materials)))
    return np.flatnonzero(labels == split)


def _count_cells(text: str) -> list[str]:
    m = re.search(r"materials \(count\)\t([^\t\n]+)(?:\t([^\t\n]+))?", text)
    assert m, text
    return [c for c in m.groups() if c]


def _clear(page) -> None:
    page.get_by_role("button", name="Clear selection").filter(visible=True).first.click()
    assert wait_for(page, lambda: "selected of the" not in _metrics(page), 30), _metrics(page)


def _choose(page, split: str, phosphates: bool = False) -> None:
    page.get_by_role("button", name=split, exact=True).filter(visible=True).first.click()
    label = page.get_by_text("phosphates only", exact=True).filter(visible=True).first
    box = label.evaluate_handle("e => e.getRootNode().querySelector('input[type=checkbox]')").as_element()
    if box.is_checked() != phosphates:
        box.click()


@pytest.fixture(scope="module")
def page(open_page):
    pg = open_page()
    tab(pg, "Calibration")
    assert wait_for(pg, lambda: (column(pg, "parity-source", "row") or []) != [], 60)
    assert wait_for(pg, lambda: _metrics(pg).startswith("Metrics for"), 60)
    return pg


def test_brushing_the_residual_plot_scores_the_selection(page, server, app_run):
    n_test = len(_split_rows(app_run, "test"))
    server.new_log()
    assert _metrics(page).startswith(f"Metrics for {n_test:,} test materials"), _metrics(page)
    assert _count_cells(_metrics(page)) == [f"{n_test:,}"]  # an integer, not "60.0000"
    unselected = column(page, "calibration-curve-source", "observed")
    assert len(unselected) == 100

    # the materials of smaller |residual| (box over the full σ axis, up to the median |residual|)
    _brush(page, "residual-vs-sigma", 0.0, _below(page, "residual-vs-sigma", "residual-source", "abs_residual", 0.5),
           1.0, 1.0)
    assert wait_for(page, lambda: "selected of the" in _metrics(page), 30), _metrics(page)
    n_sel = len(_indices(page, "residual-source"))
    assert 3 <= n_sel < n_test, f"the brush selected {n_sel} of {n_test}: move it"
    text = _metrics(page)
    assert text.startswith(f"Metrics for {n_sel:,} selected of the {n_test:,} test materials"), text
    assert _count_cells(text) == [f"{n_sel:,}", f"{n_test:,}"], text
    assert not re.search(r"materials \(count\)\t\d+\.\d", text)
    assert "MAE (eV/atom)" in text
    # the parity plot follows, and so does the calibration curve (its values differ from the unselected one)
    assert wait_for(page, lambda: _indices(page, "parity-source") == _indices(page, "residual-source"), 20)
    selected = column(page, "calibration-curve-source", "observed")
    assert any(not math.isclose(a, b, abs_tol=1e-12) for a, b in zip(selected, unselected)), selected
    assert column(page, "calibration-curve-source", "all") == unselected  # the whole split stays drawn
    assert model_js(page, "calibration-all", "m.visible")
    page.screenshot(path=str(SHOTS / "calibration-brush.png"))

    _clear(page)
    assert wait_for(page, lambda: column(page, "calibration-curve-source", "observed") == unselected, 20)
    assert _indices(page, "residual-source") == [] and _indices(page, "parity-source") == []
    assert _metrics(page).startswith(f"Metrics for {n_test:,} test materials")
    assert not model_js(page, "calibration-all", "m.visible")
    server.assert_clean()
    assert page.console_errors == []


def test_fewer_than_three_selected_get_a_warning(page, server, app_run):
    n_test = len(_split_rows(app_run, "test"))
    server.new_log()
    model_js(page, "residual-source", "(m.selected.indices = [0, 1], true)")  # as a tiny brush would
    assert wait_for(page, lambda: "too few to score" in _metrics(page), 30), _metrics(page)
    assert _metrics(page).startswith(f"Metrics for 2 selected of the {n_test:,} test materials")
    assert "MAE" not in _metrics(page)
    assert wait_for(page, lambda: _indices(page, "parity-source") == [0, 1], 20)
    _clear(page)
    server.assert_clean()


def test_a_latent_map_brush_shows_up_in_the_calibration_plots(page, server, app_run):
    test_rows = _split_rows(app_run, "test")
    server.new_log()
    tab(page, "Latent map")
    page.locator('[title="Box Select"]').filter(visible=True).first.click()
    _brush(page, "latent-map", 0.0, 0.0, 0.55, 1.0)
    assert wait_for(page, lambda: len(_indices(page, "map-source")) > 0, 30)
    rows = _indices(page, "map-source")  # the map's source holds every material: indices are frame rows
    tab(page, "Calibration")
    plotted = column(page, "parity-source", "row")
    expected = sorted(i for i, r in enumerate(plotted) if r in set(rows))
    assert len(plotted) == len(test_rows) and 0 < len(expected) < len(test_rows), (len(expected), len(rows))
    assert wait_for(page, lambda: _indices(page, "residual-source") == expected, 30)
    assert _indices(page, "parity-source") == expected
    assert _metrics(page).startswith(f"Metrics for {len(expected):,} selected of the {len(test_rows):,} test")
    _clear(page)
    tab(page, "Latent map")  # tabs render when shown: the map shows the cleared selection
    assert wait_for(page, lambda: _indices(page, "map-source") == [], 20)  # Clear clears it everywhere
    server.assert_clean()
    assert page.console_errors == []


def test_clear_right_after_another_control_changes(page, server, app_run):
    """A click that reaches the server while another control's change is still pending (Panel then runs both
    outside Bokeh's document lock: panel_fixes.py) still does both: the split changes and the selection clears."""
    tab(page, "Calibration")
    server.new_log()
    for split in ("train", "test", "train"):
        n_split = len(_split_rows(app_run, split))
        model_js(page, "residual-source", "(m.selected.indices = [0, 1, 2, 3, 4, 5], true)")
        assert wait_for(page, lambda: "selected of the" in _metrics(page), 30), _metrics(page)
        radio = page.get_by_role("button", name=split, exact=True).filter(visible=True).first
        clear = page.get_by_role("button", name="Clear selection").filter(visible=True).first
        page.evaluate("([a, b]) => { a.click(); b.click(); }", [radio.element_handle(), clear.element_handle()])
        assert wait_for(page, lambda: _metrics(page).startswith(f"Metrics for {n_split:,} {split} materials"),
                        30), _metrics(page)
        assert wait_for(page, lambda: len(column(page, "parity-source", "row") or []) == n_split, 30)
        assert _indices(page, "parity-source") == [] and _indices(page, "residual-source") == []
        server.assert_clean()
    _choose(page, "test")
    assert wait_for(page, lambda: len(column(page, "parity-source", "row") or []) ==
                    len(_split_rows(app_run, "test")), 30)
    server.assert_clean()
    assert page.console_errors == []


def test_phosphates_only_replaces_the_plotted_points(page, server, app_run):
    tab(page, "Calibration")
    phosphate = app_run.materials.frame["is_phosphate"].to_numpy(bool)
    counts = {s: int(phosphate[_split_rows(app_run, s)].sum()) for s in ("test", "pool", "train")}
    split = max(counts, key=counts.get)  # the split with the most phosphates
    n_split = len(_split_rows(app_run, split))
    server.new_log()
    _choose(page, split)
    assert wait_for(page, lambda: len(column(page, "parity-source", "row") or []) == n_split, 30)
    assert _metrics(page).startswith(f"Metrics for {n_split:,} {split} materials"), _metrics(page)
    _choose(page, split, phosphates=True)
    n = counts[split]
    assert wait_for(page, lambda: len(column(page, "parity-source", "row") or []) == n, 30), counts
    assert len(column(page, "residual-source", "row")) == n
    assert all(phosphate[r] for r in column(page, "parity-source", "row"))
    assert f"{n:,} {split} materials (phosphates only)" in _metrics(page)
    # the outlier sentence is computed from the data shown, not asserted
    assert "outside ±2σ" in _text(page, ".calibration-outliers")
    _choose(page, "test", phosphates=False)
    assert wait_for(page, lambda: len(column(page, "parity-source", "row") or []) ==
                    len(_split_rows(app_run, "test")), 30)
    server.assert_clean()
    assert page.console_errors == []


def test_per_group_table(page, server, app_run):
    """The per-group calibration table: phosphates vs other oxides, in domain vs flagged, element families, with
    counts that add up to the test split."""
    n_test = len(_split_rows(app_run, "test"))
    text = _text(page, ".calibration-groups")
    assert "Calibration per group of the test split" in text and "never the test split" in text
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in text.splitlines() if "\t" in line}
    assert rows.pop("group")[:3] == ["n (count)", "MAE (eV/atom)", "coverage 2σ"]  # the header, with units
    assert rows["all test oxides"][0] == f"{n_test:,}"
    n_phos, n_other = int(rows["phosphates"][0]), int(rows["other oxides (not phosphates)"][0])
    assert n_phos + n_other == n_test and n_phos > 0
    assert "in domain" in rows and any(k.startswith("contains ") for k in rows)
    assert all(0 <= float(r[2]) <= 1 for r in rows.values())  # coverage 2σ
    server.assert_clean()


@pytest.mark.parametrize(("summary", "verdict"), [
    ({"n": 100, "outside": 10, "phosphates_outside": 5, "phosphates": 20}, "over"),
    ({"n": 100, "outside": 10, "phosphates_outside": 1, "phosphates": 20}, "under"),
    ({"n": 100, "outside": 10, "phosphates_outside": 2, "phosphates": 20}, "about"),
])
def test_outlier_sentence_states_the_core_verdict(summary, verdict):
    """Both views word the core's verdict (cfgp.results.phosphate_verdict) and nothing else: no view keeps
    thresholds of its own (Python, no browser)."""
    from typing import get_args

    from cfgp.dashboard import lesson
    from cfgp.dashboard.calibration import VERDICTS, outlier_text
    from cfgp.results import Verdict

    assert set(VERDICTS) == set(lesson.VERDICTS) == set(get_args(Verdict))
    text = outlier_text(summary, "test")
    assert VERDICTS[verdict] in text
    assert all(VERDICTS[v] not in text for v in VERDICTS if v != verdict)
    assert "— about their share" not in outlier_text({**summary, "phosphates_outside": 3}, "test")  # 30 % > 25 %
