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
        pg.goto(server, timeout=120_000)
        pg.wait_for_selector("text=GP device", timeout=120_000)
        yield pg
        browser.close()


def test_calibration_view_renders_without_console_errors(page):
    page.wait_for_selector(".bk-Canvas, canvas", timeout=60_000)
    assert page.locator("text=Is the uncertainty honest?").count() == 1
    assert page.locator("text=GP device: CPU").count() + page.locator("text=GP device: GPU").count() == 1
    page.screenshot(path=str(SHOTS / "calibration.png"))
    assert page.console_errors == []


def test_outlier_table_reacts_to_phosphate_filter(page):
    page.get_by_text("Outliers", exact=True).first.click()
    page.wait_for_selector("text=Materials whose DFT value", timeout=60_000)
    table = page.locator(".tabulator").last
    table.wait_for(timeout=60_000)
    rows_all = table.locator(".tabulator-row").count()
    first_before = table.locator(".tabulator-row").first.inner_text()
    page.locator("input[type=checkbox]").last.check()  # "phosphates only" on the visible tab
    deadline = time.time() + 30
    first_after = first_before
    while time.time() < deadline and first_after == first_before:
        page.wait_for_timeout(300)
        first_after = page.locator(".tabulator").last.locator(".tabulator-row").first.inner_text()
    assert rows_all > 0 and first_after != first_before
    page.screenshot(path=str(SHOTS / "outliers.png"))
    assert page.console_errors == []
