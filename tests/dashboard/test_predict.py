"""Predict tab in Chromium: an empty or broken file gets a message and leaves no cross on the map; a CIF
of a material of the data set is predicted, marked and recognised (its mp-id)."""

import re
import time

import pytest

from tests.dashboard.conftest import SHOTS, column, model_js, tab, wait_for

CROSS = "predict-cross-source"


@pytest.fixture(scope="module")
def page(open_page):
    pg = open_page()
    tab(pg, "Predict")
    return pg


def result(page) -> str:
    loc = page.locator(".prediction div >> visible=true")  # the text lives in the pane's shadow root
    return " ".join(loc.all_inner_texts()).strip()  # one snapshot: the pane may hide meanwhile


def upload(page, path) -> None:
    page.locator("input[type=file] >> visible=true").set_input_files(str(path))


def cross_x(page):
    return column(page, CROSS, "x")


def in_run(records, run, n=2):
    """Records of the fixture that are in the run, smallest cells first."""
    ids = set(run.materials.ids)
    return sorted((r for r in records if r["material_id"] in ids), key=lambda r: r["nsites"])[:n]


def test_empty_file_says_so(page, server, tmp_path):
    server.new_log()
    empty = tmp_path / "empty.cif"
    empty.write_bytes(b"")
    upload(page, empty)
    assert wait_for(page, lambda: "empty.cif is empty" in result(page), 30), result(page)
    assert "Could not use this file" in result(page)
    assert cross_x(page) == []
    server.assert_clean()


def test_broken_then_good_then_broken(page, server, small_records, app_run, tmp_path):
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\n_cell_length_a 3\nloop_\n junk\n")
    upload(page, broken)
    assert wait_for(page, lambda: "Could not use this file" in result(page), 60), result(page)
    assert cross_x(page) == []
    server.assert_clean()

    record = in_run(small_records, app_run)[0]
    good = tmp_path / "mine.cif"
    good.write_text(record["cif"])
    t0 = time.perf_counter()
    upload(page, good)
    assert wait_for(page, lambda: "Predicted formation energy" in result(page), 300), result(page)
    first_s = time.perf_counter() - t0
    text = result(page)
    assert re.search(r"Predicted formation energy -?\d+\.\d+ ± \d+\.\d+ eV/atom", text), text
    assert record["formula"] in text
    assert wait_for(page, lambda: "Already in the data set" in result(page), 60), result(page)
    text = result(page)
    assert f"Already in the data set: {record['material_id']}" in text
    assert f"{record['formation_energy_per_atom']:.3f}" in text  # its DFT value
    assert wait_for(page, lambda: len(cross_x(page) or []) == 1, 20)
    assert model_js(page, "predict-map-colorbar", "m.title") == "DFT E_f (eV/atom)"
    # the map draws the session's shared source: no second copy of the materials in the document
    n_sources = page.evaluate("() => { let n = 0; for (const d of Bokeh.documents) for (const m of d.all_models)"
                              " if (m.name === 'map-source') n++; return n; }")
    assert n_sources == 1
    page.screenshot(path=str(SHOTS / "predict.png"))
    server.assert_clean()

    # warm: a second material (the network is loaded and traced)
    other = in_run(small_records, app_run)[1]
    second = tmp_path / "second.cif"
    second.write_text(other["cif"])
    t0 = time.perf_counter()
    upload(page, second)
    assert wait_for(page, lambda: "Predicted formation energy" in result(page) and other["formula"] in result(page),
                    60), result(page)
    warm_ms = 1000 * (time.perf_counter() - t0)
    assert wait_for(page, lambda: f"Already in the data set: {other['material_id']}" in result(page), 60)
    server_ms = re.search(r"prediction ([\d,]+) ms", result(page))
    print(f"\npredict: first {first_s:.1f} s, warm {warm_ms:.0f} ms in the browser "
          f"({server_ms.group(1) if server_ms else '?'} ms on the server)")

    broken2 = tmp_path / "broken2.cif"
    broken2.write_text("data_y\n_cell_length_a 4\n")
    upload(page, broken2)
    assert wait_for(page, lambda: "Could not use this file" in result(page), 60), result(page)
    assert wait_for(page, lambda: cross_x(page) == [], 20), cross_x(page)
    server.assert_clean()


def test_binary_file_gets_a_message(page, server, tmp_path):
    binary = tmp_path / "picture.cif"
    binary.write_bytes(bytes(range(256)) * 4)
    upload(page, binary)
    assert wait_for(page, lambda: "not a text CIF file" in result(page), 30), result(page)
    assert cross_x(page) == []
    server.assert_clean()


def test_same_file_again_after_clearing_the_input(page, server, small_records, app_run, tmp_path):
    record = in_run(small_records, app_run)[0]
    good = tmp_path / "again.cif"
    good.write_text(record["cif"])
    upload(page, good)
    assert wait_for(page, lambda: "again.cif" in result(page) and "Already in the data set" in result(page), 60)
    page.locator("input[type=file] >> visible=true").set_input_files([])  # clear, as a benchmark or a user does
    page.wait_for_timeout(500)
    # count re-renders of the result pane from now on
    page.locator(".prediction div >> visible=true").first.evaluate(
        "e => { window.__renders = 0; new MutationObserver(() => window.__renders++)"
        ".observe(e.getRootNode(), {subtree: true, childList: true, characterData: true}); }")
    upload(page, good)
    assert wait_for(page, lambda: page.evaluate("() => window.__renders") > 0
                    and f"Already in the data set: {record['material_id']}" in result(page), 60), result(page)
    assert len(cross_x(page) or []) == 1
    server.assert_clean()
