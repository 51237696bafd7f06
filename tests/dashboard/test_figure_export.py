"""Figures as PNG and SVG, in Chromium: each "Save …: PNG · SVG" button downloads a file drawn on the server by the
core's matplotlib figures from what the view shows now (colouring, split, selection, the run on screen). The PNG
decodes at the size cfgp.mpl_figures promises with the view's colours in it; the SVG parses as XML and its text —
title, axis labels with units, legend entries with counts — is the view's."""

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from cfgp.mpl_figures import DPI, FIGSIZE
from tests.dashboard.conftest import model_js, replay_committed, tab, text_of, wait_for

SVG = "{http://www.w3.org/2000/svg}"
RED = (0xD6, 0x27, 0x28)  # the phosphate / selection / AL-curve red of the dashboard


@pytest.fixture(scope="module")
def page(open_page):
    return open_page()


def _download(page, css: str) -> tuple[str, bytes]:
    with page.expect_download(timeout=120_000) as info:
        page.locator(f".{css} button >> visible=true").first.click()
    d = info.value
    return d.suggested_filename, open(d.path(), "rb").read()


def _png(page, css: str, stem: str) -> np.ndarray:
    name, data = _download(page, f"{css}-png")
    assert name == f"{stem}.png"
    im = Image.open(io.BytesIO(data))
    im.load()  # decodes the whole image: a truncated file fails here
    assert im.format == "PNG"
    assert im.size == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
    px = np.asarray(im.convert("RGB")).astype(int)
    non_white = (px < 245).any(axis=2).mean()
    assert non_white > 0.02, f"{stem}.png is nearly blank ({non_white:.1%} non-white)"
    return px


def _near(px: np.ndarray, rgb, tol: int = 40) -> int:
    return int((np.abs(px - np.array(rgb)) <= tol).all(axis=2).sum())


def _svg(page, css: str, stem: str) -> tuple[ET.Element, list[str]]:
    name, data = _download(page, f"{css}-svg")
    assert name == f"{stem}.svg"
    root = ET.fromstring(data)  # well-formed XML
    assert root.tag == f"{SVG}svg"
    texts = ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]
    return root, texts


def _colour(page, label):
    page.locator("select >> visible=true").first.select_option(label=label)


def test_latent_map_saves_the_colouring_shown(page, server, app_run):
    server.new_log()
    tab(page, "Latent map")
    page.wait_for_selector(".bk-Figure >> visible=true", timeout=60_000)
    frame = app_run.materials.frame
    n_phos = int(frame["is_phosphate"].sum())
    _colour(page, "phosphates")
    assert wait_for(page, lambda: f"phosphate ({n_phos:,})" in text_of(page, ".map-legend-text"), 30), \
        text_of(page, ".map-legend-text")
    root, texts = _svg(page, "map-figure", "latent-map")
    assert root.find(f"{SVG}title").text == "t-SNE of the MEGNet latent space"
    assert texts[0] == "t-SNE of the MEGNet latent space"
    # the legend of the file is the legend on screen: title and 'label (count)' entries
    assert "phosphates" in texts
    assert f"phosphate ({n_phos:,})" in texts and f"other oxide ({len(frame) - n_phos:,})" in texts
    px = _png(page, "map-figure", "latent-map")
    assert _near(px, RED) > n_phos  # the phosphates are drawn in the legend's red (a few pixels each)

    # a numeric colouring: a colour bar titled with the field and its unit, many shades
    _colour(page, "DFT E_f")
    assert wait_for(page, lambda: "DFT E_f (eV/atom)" in text_of(page, ".map-legend-text"), 30)
    _, texts = _svg(page, "map-figure", "latent-map")
    assert "DFT E_f (eV/atom)" in texts and not any(t.startswith("phosphate (") for t in texts)
    px = _png(page, "map-figure", "latent-map")
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 100
    assert not page.external_requests, page.external_requests
    server.assert_clean()


def test_parity_and_calibration_curve_save_the_split_and_the_selection(page, server):
    tab(page, "Calibration")
    page.wait_for_selector(".bk-Figure >> visible=true", timeout=60_000)
    page.get_by_role("button", name="Clear selection").click()
    assert wait_for(page, lambda: text_of(page, ".calibration-metrics").startswith("Metrics for 60 test"), 30), \
        text_of(page, ".calibration-metrics")
    root, texts = _svg(page, "parity-figure", "parity")
    title = model_js(page, "parity", "m.title.text")
    assert title.startswith("GP vs DFT: 60 test materials")
    assert root.find(f"{SVG}title").text == title
    assert {"DFT E_f (eV/atom)", "GP E_f (eV/atom)", "materials (60)", "GP = DFT"} <= set(texts)
    assert "±2σ (60 materials)" in texts  # the tiny test split has fewer than 100 materials: a bar on each
    px = _png(page, "parity-figure", "parity")
    assert _near(px, RED, 60) > 200  # the ±2σ bars

    # brush ten materials on the parity plot: the curve file gains the selection's curve next to the whole split
    model_js(page, "parity-source", "(m.selected.indices = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], true)")
    assert wait_for(page, lambda: "Metrics for 10 selected" in text_of(page, ".calibration-metrics"), 30), \
        text_of(page, ".calibration-metrics")
    _, texts = _svg(page, "curve-figure", "calibration-curve")
    assert {"expected proportion in interval", "observed proportion", "ideal", "all 60 test materials",
            "selected (10)"} <= set(texts)
    assert "Calibration curve: test materials" in texts
    _, texts = _svg(page, "parity-figure", "parity")
    assert "selected (10)" in texts  # the parity file rings the same ten
    px = _png(page, "curve-figure", "calibration-curve")
    assert _near(px, RED) > 300 and _near(px, (0x7F, 0x7F, 0x7F), 20) > 300  # red selection, grey whole split
    page.get_by_role("button", name="Clear selection").click()
    assert not page.external_requests, page.external_requests
    server.assert_clean()


def test_active_learning_curves_save_the_replayed_run(page, server, app_run):
    from cfgp.al import History

    stem = "entropy-b1-poolall-s2"
    _, records = History(app_run.dir / "al" / f"{stem}.jsonl").read()
    replay_committed(page, stem, len(records) - 1, timeout=60)
    root, texts = _svg(page, "al-figure", "al-curves")
    assert {"MAE (eV/atom)", "MAE vs labels added", f"replay of {stem}"} <= set(texts)
    assert "committed random-b1-poolall: mean ± 2σ (2 seeds)" in texts
    # both scorings: the random runs and the replayed run also on their unlabelled pool (the paper's protocol)
    assert {"random-b1-poolall on its unlabelled pool (paper's scoring)",
            f"replay of {stem} on its unlabelled pool (paper's scoring)"} <= set(texts)
    # series: the random band, its pool scoring, the replayed run (one marker per committed record), its pool
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("id")}
    run = groups["series-2"]
    assert len(list(run.iter(f"{SVG}use"))) == len(records)
    assert "series-3" in groups and not list(groups["series-3"].iter(f"{SVG}use"))  # a dotted line, no markers
    assert "band-0" in groups  # the random band is drawn
    px = _png(page, "al-figure", "al-curves")
    assert _near(px, RED) > 300
    page.locator(".al-run select").first.select_option(label="live run")
    assert not page.external_requests, page.external_requests
    server.assert_clean()
