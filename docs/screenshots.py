"""Re-make the README's screenshots of the dashboard on the embedded default (``python docs/screenshots.py``).

Serves ``app.py`` on data/default, opens each view by its link (the URL state of cfgp/dashboard/view_state.py),
does what the view needs (a click, a checkbox) in headless Chromium, and writes docs/<name>.png. Needs Debian's
chromium and Playwright (the test extra). Prints one JSON line: the files written and any server-log errors.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from cfgp.app_server import app_url, free_port, start_server, stop_server, wait_for_page

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _wait_loaded(page, url: str) -> None:
    page.goto(url, timeout=300_000)
    page.wait_for_selector("text=GP device", timeout=300_000)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=120_000)
    page.wait_for_timeout(4000)


def _structure_drawn(page, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        frames = [f for f in page.frames if f.url == "about:srcdoc"]
        if frames and all(f.evaluate("() => !!(window.Plotly && document.getElementById('fig')"
                                     " && document.getElementById('fig')._fullLayout)") for f in frames):
            return
        page.wait_for_timeout(500)


def outliers_compare(page) -> None:
    page.wait_for_selector(".tabulator-row >> visible=true", timeout=120_000)
    page.locator(".tabulator-row >> visible=true").first.click()
    page.wait_for_timeout(1500)
    page.locator(".outliers-compare input").check()
    page.wait_for_timeout(3000)
    _structure_drawn(page)


def predict_iron(page) -> None:
    """Upload Fe metal (mp-13, a real Materials Project record cut into the test fixtures) on the Predict tab."""
    import gzip
    import tempfile

    fixtures = ROOT / "tests" / "fixtures" / "domain_records.json.gz"
    iron = next(r for r in json.load(gzip.open(fixtures, "rt"))["nonoxides"] if r["material_id"] == "mp-13")
    with tempfile.TemporaryDirectory() as tmp:  # the browser reads the file at once
        cif = Path(tmp) / "Fe.cif"
        cif.write_text(iron["cif"])
        page.locator("input[type=file] >> visible=true").first.set_input_files(str(cif))
    page.wait_for_selector("text=Out of domain", timeout=180_000)
    page.wait_for_timeout(2000)


#: file name → (query of the link, action after load, full page)
VIEWS = {
    "latent_map": ("tab=map&colour=sigma", None, False),
    "calibration": ("tab=calibration", None, False),
    "active": ("tab=al&al=replay&strategy=entropy&seed=0&cycle=6000", None, False),
    "outliers": ("tab=outliers&out_split=all&out_phosphates=true", outliers_compare, True),
    "lesson": ("lesson=4&projector=1", _structure_drawn, False),
    "dark": ("theme=dark&tab=calibration", None, False),
    "predict-out-of-domain": ("tab=predict", predict_iron, False),
    "search": ("tab=map&q=ZrP2(HO3)2&material=mp-24030", _structure_drawn, False),
}


def main() -> int:
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = Path("/tmp/cfgp-screenshots-panel.log")
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("CFGP_RUN", None)
    with open(log, "w") as fh:
        server = start_server(ROOT, port, env, fh)
    url = app_url(port)
    written = []
    try:
        wait_for_page(server, url, 300, poll=1.0, log=lambda: log.read_text(errors="replace"))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            only = set(sys.argv[1:])
            for name, (query, action, full) in VIEWS.items():
                if only and name not in only:
                    continue
                size = {"width": 1920, "height": 1080} if "projector" in query else {"width": 1400, "height": 900}
                ctx = browser.new_context(viewport=size)
                page = ctx.new_page()
                _wait_loaded(page, f"{url}?{query}")
                if action:
                    action(page)
                out = DOCS / f"{name}.png"
                page.screenshot(path=str(out), full_page=full)
                written.append(str(out.relative_to(ROOT)))
                ctx.close()
            browser.close()
    finally:
        stop_server(server, grace=60)
    errors = [line for line in log.read_text(errors="replace").splitlines()
              if any(b in line for b in ("Traceback", "Error:", "Exception"))]
    print(json.dumps({"written": written, "server_errors": errors}))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
