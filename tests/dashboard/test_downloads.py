"""Take it away, in Chromium: the outlier table, the map selection and a material's CIF download as files that
parse and hold what the view shows."""

import io

import pandas as pd
import pytest

from tests.dashboard.conftest import column, model_js, replay_committed, tab, text_of, wait_for


@pytest.fixture(scope="module")
def page(open_page):
    return open_page()


def _download(page, css: str) -> bytes:
    with page.expect_download(timeout=60_000) as info:
        page.locator(f".{css} button >> visible=true").first.click()
    return open(info.value.path(), "rb").read()


def test_outlier_table_csv_matches_the_table(page, server, app_run):
    server.new_log()
    tab(page, "Outliers")
    page.wait_for_selector(".tabulator-row >> visible=true", timeout=60_000)
    csv = pd.read_csv(io.BytesIO(_download(page, "outliers-download")))
    assert list(csv.columns)[:2] == ["material", "formula"] and "σ (eV/atom)" in csv.columns
    shown = int(text_of(page, ".outliers-summary").split("Table: ")[1].split(" materials")[0].replace(",", ""))
    assert len(csv) == shown
    # the first page of the table, as the browser draws it, is the start of the file, in order, same numbers
    cells = page.locator(".tabulator-row >> visible=true").all_inner_texts()
    first = [c.split("\t")[0].split("\n")[0].strip() for c in cells]
    assert csv["material"].tolist()[: len(first)] == first
    row0 = [c.strip() for c in page.locator(".tabulator-row >> visible=true").first.locator(
        ".tabulator-cell").all_inner_texts()]
    i = row0.index(csv["material"].iloc[0])  # Tabulator may put a row-handle cell first
    assert row0[i + 1] == csv["formula"].iloc[0]
    for col in ("DFT E_f (eV/atom)", "σ (eV/atom)"):
        assert f"{csv[col].iloc[0]:.3f}" in row0, (col, row0)
    # the worst test outlier really is outside its ±2σ interval by the stated excess
    f = app_run.materials.frame.set_index("material_id")
    assert csv["|res| − 2σ (eV/atom)"].iloc[0] > 0
    assert set(csv["material"]) <= set(f.index)
    server.assert_clean()


def test_a_clicked_material_downloads_its_cif(page, server, app_run):
    from pymatgen.core import Structure

    tab(page, "Outliers")
    page.locator(".tabulator-row >> visible=true").first.click()
    assert wait_for(page, lambda: "atoms per cell" in text_of(page, ".details"), 30)
    mid = page.locator(".tabulator-row >> visible=true").first.inner_text().split("\t")[0].split("\n")[0].strip()
    cif = _download(page, "details-cif").decode()
    s = Structure.from_str(cif, fmt="cif")
    rec = app_run.materials.frame.set_index("material_id").loc[mid]
    assert s.composition.reduced_formula == Structure.from_str(rec["cif"], fmt="cif").composition.reduced_formula
    assert len(s) == rec["nsites"]
    server.assert_clean()


def test_selection_csv_holds_the_selected_materials(page, server):
    tab(page, "Latent map")
    page.wait_for_selector(".bk-Figure >> visible=true", timeout=60_000)
    ids = column(page, "map-source", "material_id")
    model_js(page, "map-source", "(m.selected.indices = [3, 11, 40], true)")
    page.wait_for_timeout(1500)  # the selection travels to the server
    assert wait_for(page, lambda: "3 materials selected" in text_of(page, ".details"), 30), text_of(page, ".details")
    csv = pd.read_csv(io.BytesIO(_download(page, "selection-download")))
    assert sorted(csv["material"]) == sorted(ids[i] for i in (3, 11, 40))
    assert {"DFT E_f (eV/atom)", "GP E_f (eV/atom)", "σ (eV/atom)", "z"} <= set(csv.columns)
    server.assert_clean()


def test_metrics_csv_matches_the_metric_table(page, server, app_run):
    import numpy as np

    from cfgp.uncertainty.metrics import METRIC_LABELS, regression_metrics
    from cfgp.dashboard.calibration import LABELS

    tab(page, "Calibration")
    page.wait_for_selector(".bk-Figure >> visible=true", timeout=60_000)
    page.get_by_role("button", name="Clear selection").click()
    assert wait_for(page, lambda: text_of(page, ".calibration-metrics").startswith("Metrics for 60 test"), 30), \
        text_of(page, ".calibration-metrics")
    csv = pd.read_csv(io.BytesIO(_download(page, "metrics-download")))
    assert csv["metric"].tolist() == [LABELS[k] for k in METRIC_LABELS]  # units and the count made explicit
    assert "materials (count),60\n" in _download(page, "metrics-download").decode()  # a count, not 60.0
    assert csv.columns[1].startswith("test oxides") or "(" in csv.columns[1]
    # the whole test split, recomputed here from the run's own GP predictions
    from cfgp.pipeline import load_gp

    X, y, te = app_run.latents(), app_run.materials.y, app_run.split.test
    mean, std = load_gp(app_run).predict(X[te], return_std=True)
    expected = regression_metrics(mean, std, y[te])
    values = dict(zip(csv["metric"], csv[csv.columns[1]]))
    assert float(values[LABELS["mae"]]) == pytest.approx(expected["mae"], rel=1e-6)
    assert float(values[LABELS["coverage_2sigma"]]) == pytest.approx(expected["coverage_2sigma"])
    assert "nats" in LABELS["nll"]
    assert f"{expected['mae']:.4f}" in text_of(page, ".calibration-metrics")
    assert np.isfinite(csv[csv.columns[1]].astype(float)).sum() >= 10
    server.assert_clean()


def test_replayed_run_csv_holds_its_committed_records(page, server, app_run):
    from cfgp.al import History

    stem = "entropy-b1-poolall-s2"
    _, records = History(app_run.dir / "al" / f"{stem}.jsonl").read()
    replay_committed(page, stem, 40)
    csv = pd.read_csv(io.BytesIO(_download(page, "al-download")), keep_default_na=False)
    assert csv["cycle"].tolist() == list(range(len(records)))
    assert csv["test MAE (eV/atom)"].tolist() == pytest.approx([r["mae"] for r in records], rel=1e-12)
    assert csv["picked"].tolist()[1:] == [";".join(r["picked"]) for r in records[1:]]
    page.locator(".al-run select").first.select_option(label="live run")
    server.assert_clean()


def test_csv_keeps_formula_like_text_as_text_and_numbers_as_numbers():
    """An uploaded file named "=HYPERLINK(…)" (a prediction's source) must open in a spreadsheet as text;
    negative energies stay numbers."""
    from cfgp.dashboard.downloads import csv_bytes

    frame = pd.DataFrame({"source": ['=HYPERLINK("http://x","y").cif', "+1", "@SUM(A1)", "-2", "Li2O.cif"],
                          "gp": [-1.5, -0.25, 0.0, 2.0, -3.0]})
    back = pd.read_csv(csv_bytes(frame, {"source": "file", "gp": "GP E_f (eV/atom)"}), dtype={"file": str})
    assert back["file"].tolist() == ["'=HYPERLINK(\"http://x\",\"y\").cif", "'+1", "'@SUM(A1)", "'-2", "Li2O.cif"]
    assert back["GP E_f (eV/atom)"].tolist() == [-1.5, -0.25, 0.0, 2.0, -3.0]
