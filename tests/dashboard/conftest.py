"""One served app for every browser test (``panel serve app.py`` on the tiny real run), one Chromium.

Tests open their own pages (``open_page``) and check what the user sees — text, legend entries, the
data the browser holds — and that the server log gained no traceback (``server.assert_clean()``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from cfgp.app_server import app_url, free_port, start_server, stop_server, wait_for_page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
BAD_LOG = ("Traceback", "Error:", "error:", "Exception")


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


class Server:
    """A running ``panel serve app.py`` and its log."""

    def __init__(self, run_dir: Path, log_path: Path):
        self.port = free_port()
        self.url = app_url(self.port)
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = start_server(ROOT, self.port, dict(os.environ, CFGP_RUN=str(run_dir), PYTHONWARNINGS="ignore"),
                                 self._log)
        self.mark = 0

    def wait(self, timeout: float = 180) -> None:
        wait_for_page(self.proc, self.url, timeout, poll=0.5, log=self.log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def new_log(self) -> str:
        """Log lines written since the last call."""
        text = self.log()
        out, self.mark = text[self.mark:], len(text)
        return out

    def assert_clean(self) -> None:
        """No traceback or error in the server log since the last check."""
        new = self.new_log()
        bad = [line for line in new.splitlines() if any(b in line for b in BAD_LOG)]
        assert not bad, "server log:\n" + new[-4000:]

    def stop(self) -> None:
        stop_server(self.proc)
        self._log.close()


@pytest.fixture(scope="session")
def app_run(tiny_run):
    """The tiny run with two committed-style random histories (to replay and to draw the band)."""
    from cfgp.al import ALSettings
    from cfgp.pipeline import run_active_learning

    for seed in (0, 1):
        run_active_learning(tiny_run, ALSettings(strategy="random", cycles=15, seed=seed, pool_size=None),
                            progress=False)
    run_active_learning(tiny_run, ALSettings(strategy="entropy", cycles=40, seed=2, pool_size=None),
                        progress=False)
    return tiny_run


@pytest.fixture(scope="session")
def server(app_run):
    if not chromium_available():
        pytest.skip("Debian's chromium is not installed")
    yield from serving(app_run.dir, app_run.dir / "panel.log")


def serving(run_dir: Path, log: Path):
    """A fixture's body: ``panel serve app.py`` on ``run_dir`` started and yielded, stopped afterwards; a server that
    does not come up fails the test with what its log says."""
    srv = Server(run_dir, log)
    try:
        srv.wait()
    except RuntimeError as exc:
        srv.stop()
        pytest.fail(str(exc))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _request_failed(pg, request) -> None:
    """A failed request is an error, except a load that an iframe cancelled (``net::ERR_ABORTED`` outside the main
    frame): a crystal frame replaced or hidden before plotly.js arrived drops its load, and nothing is missing on
    screen — the tests that draw crystals check the drawing itself. Those go to ``aborted_requests``."""
    text = f"request failed: {request.url} ({request.failure})"
    try:
        in_subframe = request.frame != pg.main_frame
    except Exception:  # the frame is gone already
        in_subframe = True
    if "ERR_ABORTED" in (request.failure or "") and in_subframe:
        pg.aborted_requests.append(text)
    else:
        pg.console_errors.append(text)


def open_watched(ctx, url: str):
    """A new page of ``ctx`` on ``url``, fully loaded, recording what the tests check afterwards: console errors,
    page errors and failed requests (``console_errors``; loads an iframe cancelled in ``aborted_requests``) and any
    request that leaves 127.0.0.1 (``external_requests``: the app must work offline, everything from the server)."""
    pg = ctx.new_page()
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    pg.aborted_requests = []
    pg.on("requestfailed", lambda r: _request_failed(pg, r))
    pg.external_requests = []
    pg.on("request", lambda r: pg.external_requests.append(r.url)
          if not r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else None)
    pg.goto(url, timeout=120_000)
    pg.wait_for_selector("text=GP device", timeout=120_000)
    pg.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    return pg


@pytest.fixture(scope="session")
def open_page(browser, server):
    """open_page() → a fresh page on the app (own browser context, so its own session), fully loaded."""
    contexts = []

    def _open(width: int = 1400, height: int = 900):
        ctx = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        contexts.append(ctx)
        return open_watched(ctx, server.url)

    yield _open
    for ctx in contexts:
        ctx.close()


def crystal_frame(page, css: str):
    """The crystal frame of the details panel with CSS class ``css`` (one per panel, redrawn in place)."""
    return page.locator(f"iframe.structure-view.{css}-structure >> visible=true").first


def crystal_label(page, css: str) -> str | None:
    """Which material the visible crystal frame of panel ``css`` has drawn ('mp-… 1x1x1'); None before any."""
    frame = crystal_frame(page, css)
    return frame.get_attribute("data-label") if frame.count() else None


def wait_for(page, fn, timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return True
        page.wait_for_timeout(200)
    return False


def tab(page, name: str) -> None:
    """Click the tab header ``name`` and wait until the page shows that tab as the active one (then a short settle
    for its content's first layout pass)."""
    page.get_by_role("tab", name=name).click() if page.get_by_role("tab", name=name).count() else \
        page.get_by_text(name, exact=True).first.click()
    active = page.locator(".bk-tab.bk-active")
    wait_for(page, lambda: active.count() > 0 and active.first.inner_text().strip() == name, 10)
    page.wait_for_timeout(250)


def model_js(page, name: str, expr: str):
    """Evaluate ``expr`` on the Bokeh model called ``name`` in the browser's document (``m`` in expr)."""
    return page.evaluate(
        "([name, expr]) => { for (const d of Bokeh.documents) { const m = d.get_model_by_name(name);"
        " if (m) return (new Function('m', 'return ' + expr))(m); } return null; }", [name, expr])


#: for each Bokeh view of the page named in ``names``: visible, laid-out box, its canvas's size and (for a plot) its
#: plotting frame; a view of a name in ``connected`` counts only while it is in the page
_VIEW_BOXES = """([names, connected]) => { const seen = new Set(); const views = [];
  const walk = (v) => { if (!v || seen.has(v)) return; seen.add(v); views.push(v);
    for (const c of (v.child_views ?? [])) walk(c);
    if (v.renderer_views) for (const c of v.renderer_views.values()) walk(c); };
  for (const k of Object.keys(Bokeh.index)) walk(Bokeh.index[k]);
  const out = {};
  for (const v of views) {
    const name = v.model?.name ?? '';
    if (!names.includes(name) || !v.bbox || !v.el?.isConnected && connected.includes(name)) continue;
    const b = v.bbox, c = (v.canvas_view ?? v.parent?.canvas_view)?.bbox;
    out[name] = {visible: v.model.visible, box: [b.x, b.y, b.width, b.height], canvas: c ? [c.width, c.height] : null,
                 frame: v.frame ? [v.frame.bbox.x, v.frame.bbox.y, v.frame.bbox.width, v.frame.bbox.height] : null};
  }
  return out; }"""


def view_boxes(page, names: list[str], connected: tuple[str, ...] = ()) -> dict:
    """Where Bokeh laid out the named views (a legend, a colour bar, a plot and its frame), as the browser holds it."""
    return page.evaluate(_VIEW_BOXES, [list(names), list(connected)])


def column(page, source: str, col: str) -> list | None:
    """The values the browser holds in column ``col`` of the ColumnDataSource called ``source``."""
    return model_js(page, source, f"Array.from(m.data instanceof Map ? m.data.get('{col}') : m.data['{col}'])")


def text_of(page, css: str) -> str:
    """Visible text of the first element with CSS selector ``css`` (a Panel pane's ``css_classes``),
    including its shadow DOM, where Panel renders the content."""
    return page.evaluate(
        """(css) => { const find = (root) => { const el = root.querySelector(css); if (el) return el;
             for (const h of root.querySelectorAll('*')) { if (h.shadowRoot) { const f = find(h.shadowRoot);
             if (f) return f; } } return null; };
           const el = find(document); if (!el) return '';
           const txt = (n) => (n.shadowRoot ? txt(n.shadowRoot) : '') + Array.from(n.childNodes).map(
             c => c.nodeType === 3 ? c.textContent : (c.nodeType === 1 && !['STYLE', 'SCRIPT'].includes(c.nodeName)
             ? txt(c) : '')).join('');
           return txt(el).replace(/\\s+/g, ' ').trim(); }""", css)


SCREEN_XY = """([name, xs, ys]) => {
  const seen = new Set(); const views = [];
  const walk = (v) => { if (!v || seen.has(v)) return; seen.add(v); views.push(v);
    for (const c of (v.child_views ?? [])) walk(c);
    if (v.renderer_views) for (const c of v.renderer_views.values()) walk(c); };
  for (const k of Object.keys(Bokeh.index)) walk(Bokeh.index[k]);
  const pv = views.find(v => v.model && v.model.name === name && v.frame && v.el.isConnected
                              && v.el.getBoundingClientRect().width > 0);
  if (!pv) return null;
  const r = pv.canvas_view.el.getBoundingClientRect();
  return xs.map((x, i) => [r.left + pv.frame.x_scale.compute(x), r.top + pv.frame.y_scale.compute(ys[i])]); }"""


def screen_xy(page, figure: str, xs, ys) -> list | None:
    """Page pixel positions of data points (xs, ys) on the Bokeh figure called ``figure``."""
    return page.evaluate(SCREEN_XY, [figure, [float(v) for v in xs], [float(v) for v in ys]])


def replay_committed(page, stem: str, cycle: int, timeout: float = 30) -> None:
    """Choose the committed run ``stem`` on the Active learning tab and Play it until ``cycle`` shows."""
    tab(page, "Active learning")
    page.locator(".al-run select").first.select_option(label=f"replay {stem}")
    assert wait_for(page, lambda: "Replaying the committed run" in text_of(page, ".al-status"), 30)
    page.get_by_role("button", name="▶ Play", exact=True).click()
    assert wait_for(page, lambda: f"cycle {cycle} " in text_of(page, ".al-cycle"), timeout), text_of(page, ".al-cycle")

