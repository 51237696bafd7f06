"""The dashboard served by `panel serve app.py` and driven in headless Chromium (Playwright)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run):
    from cfgp.al import ALSettings
    from cfgp.pipeline import run_active_learning

    for seed in (0, 1):  # committed-style histories to replay and to draw the random band
        run_active_learning(tiny_run, ALSettings(strategy="random", cycles=15, seed=seed, pool_size=None),
                            progress=False)
    port = _free_port()
    env = dict(os.environ, CFGP_RUN=str(tiny_run.dir), PYTHONWARNINGS="ignore")
    log = open(tiny_run.dir / "panel.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "app.py", "--address", "127.0.0.1", "--port",
                             str(port), "--allow-websocket-origin", f"127.0.0.1:{port}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/app"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=60).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("panel serve did not answer: " + (tiny_run.dir / "panel.log").read_text()[-3000:])
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 720})
        pg.console_errors = []
        pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
        pg.external_requests = []  # the app must work offline: everything from the Panel server
        pg.on("request", lambda r: pg.external_requests.append(r.url)
              if not r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else None)
        pg.goto(server, timeout=120_000)
        pg.wait_for_selector("text=GP device", timeout=120_000)
        yield pg
        browser.close()


def _tab(page, name):
    page.get_by_text(name, exact=True).first.click()
    page.wait_for_timeout(1500)


def _wait_for(page, fn, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return True
        page.wait_for_timeout(300)
    return False


def test_every_view_renders(page):
    for tab, marker in [("Latent map", "Latent map."), ("Calibration", "Is the uncertainty honest?"),
                        ("Active learning", "Which material should DFT compute next?"),
                        ("Outliers", "Materials whose DFT value"), ("Predict", "Predict a new material.")]:
        _tab(page, tab)
        assert page.locator(f"text={marker}").first.is_visible(), tab
        if tab in ("Latent map", "Calibration", "Active learning", "Predict"):
            page.wait_for_selector("div.bk-Figure >> visible=true", timeout=60_000)
        page.screenshot(path=str(SHOTS / f"{tab.split()[0].lower()}.png"))
    assert page.locator("text=GP device: CPU").count() + page.locator("text=GP device: GPU").count() == 1
    assert page.console_errors == []
    assert page.external_requests == []


def test_brushing_recomputes_metrics(page):
    _tab(page, "Calibration")
    page.wait_for_timeout(2000)
    page.locator("[title='Box Select'] >> visible=true").nth(1).click()
    figure = page.locator("div.bk-Figure >> visible=true").nth(1).bounding_box()
    page.mouse.move(figure["x"] + figure["width"] * 0.3, figure["y"] + figure["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(figure["x"] + figure["width"] * 0.8, figure["y"] + figure["height"] * 0.8, steps=10)
    page.mouse.up()
    ok = _wait_for(page, lambda: page.locator("text=selected of the").count() > 0)
    page.screenshot(path=str(SHOTS / "calibration-brushed.png"))
    assert ok, "metrics did not follow the brushed selection"
    page.get_by_role("button", name="Clear selection").click()
    assert _wait_for(page, lambda: page.locator("text=selected of the").count() == 0)
    assert page.console_errors == []


def test_step_advances_the_cycle_and_extends_the_curve(page):
    _tab(page, "Active learning")
    page.get_by_role("button", name="Step").click()
    assert _wait_for(page, lambda: page.locator("text=cycle 1 ").count() > 0, 90), "first step did not run"
    page.get_by_role("button", name="Step").click()
    assert _wait_for(page, lambda: page.locator("text=cycle 2 ").count() > 0, 30)
    label = page.locator("text=labelled").first.inner_text()
    assert "GP updates run on" in page.locator("text=GP updates run on").first.inner_text()
    page.wait_for_timeout(800)
    page.screenshot(path=str(SHOTS / "active.png"))
    assert "cycle 2" in label
    assert page.console_errors == []


def test_outlier_table_reacts_to_phosphate_filter(page):
    _tab(page, "Outliers")
    table = page.locator(".tabulator >> visible=true").last
    table.wait_for(timeout=60_000)
    before = table.locator(".tabulator-row").first.inner_text()
    n_rows = page.locator(".tabulator >> visible=true").last.locator(".tabulator-row").count()
    boxes = [b for b in page.locator("input[type=checkbox]").all() if b.is_visible()]
    assert len(boxes) == 1
    boxes[0].click()
    changed = _wait_for(page, lambda: page.locator(".tabulator >> visible=true").last.locator(".tabulator-row")
                        .first.inner_text() != before, 30)
    page.screenshot(path=str(SHOTS / "outliers-phosphates.png"))
    assert n_rows > 0 and changed, "the phosphate filter did not change the table"
    page.locator(".tabulator >> visible=true").last.locator(".tabulator-row").first.locator(
        ".tabulator-cell").nth(1).click()
    assert _wait_for(page, lambda: page.locator("text=atoms per cell").count() > 0, 30)
    page.wait_for_selector(".js-plotly-plot >> visible=true", timeout=30_000)
    page.screenshot(path=str(SHOTS / "outliers.png"))
    assert page.console_errors == []


def test_upload_predicts_and_a_broken_file_gets_a_message(page, small_records, tmp_path):
    _tab(page, "Predict")
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\n_cell_length_a 3\nloop_\n junk\n")
    page.locator("input[type=file] >> visible=true").set_input_files(str(broken))
    assert _wait_for(page, lambda: page.locator("text=Could not use this file").count() > 0, 60)
    good = tmp_path / "mine.cif"
    record = small_records[0]
    good.write_text(record["cif"])
    page.locator("input[type=file] >> visible=true").set_input_files(str(good))
    assert _wait_for(page, lambda: page.locator("text=Predicted formation energy").count() > 0, 180)
    text = page.locator("text=Predicted formation energy").first.inner_text()
    assert "eV/atom" in text and "±" in text
    assert record["formula"] in page.locator("h3 >> visible=true").last.inner_text()
    page.screenshot(path=str(SHOTS / "predict.png"))
    errors = [e for e in page.console_errors if "Could not use" not in e]
    assert errors == []


def test_live_tsne_converges_in_the_page(page):
    _tab(page, "Latent map")
    page.get_by_role("button", name="Recompute t-SNE live").click()
    assert _wait_for(page, lambda: page.locator("text=converged").count() > 0, 120), "live t-SNE did not finish"
    assert page.console_errors == []


def test_play_pause_and_replay(page):
    _tab(page, "Active learning")
    page.get_by_role("button", name="Reset").click()
    page.get_by_role("button", name="▶ Play").click()
    assert _wait_for(page, lambda: page.locator("text=cycle 3 ").count() > 0, 90), "Play did not advance"
    page.get_by_role("button", name="❚❚ Pause").click()
    page.wait_for_timeout(2000)
    frozen = page.locator("text=labelled").first.inner_text()
    page.wait_for_timeout(2500)
    assert page.locator("text=labelled").first.inner_text() == frozen  # paused
    page.locator("select >> visible=true").first.select_option(label="replay random-b1-poolall-s1")
    page.get_by_role("button", name="Step").click()
    assert _wait_for(page, lambda: page.locator("text=Replaying committed run").count() > 0, 30)
    assert _wait_for(page, lambda: page.locator("text=cycle 1 ").count() > 0, 30)
    assert page.console_errors == []
