"""Dashboard latency at classroom scale: serve the app, drive it in headless Chromium, print one JSON line.

    python benchmarks/app_latency.py [--run data/default] [--sessions 10] [--query "x=band_gap&y=dft"]

Serves ``panel serve app.py`` on 127.0.0.1 (the embedded default unless --run), drives it with Playwright and
Debian's Chromium, and measures what a user waits for, in the browser: the first plot, a tap → details (the text,
then the crystal drawn), a brush → linked metrics, a search (Enter → results), active-learning steps per second at
the top speed, a committed 1,500-cycle replay to its end, a warm prediction, the live t-SNE until converged, then N concurrent
sessions (first plot of each) and the server's resident memory idle, with N sessions open, and after they close.
Pause any background job first (e.g. `kill -STOP`); the browsers run on the same machine as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from cfgp.app_server import app_url, free_port, start_server, stop_server, wait_for_page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

TEXT_OF = """(css) => { const find = (root) => { const el = root.querySelector(css); if (el) return el;
  for (const h of root.querySelectorAll('*')) { if (h.shadowRoot) { const f = find(h.shadowRoot); if (f) return f; } }
  return null; };
  const el = find(document); if (!el) return '';
  const txt = (n) => (n.shadowRoot ? txt(n.shadowRoot) : '') + Array.from(n.childNodes).map(
    c => c.nodeType === 3 ? c.textContent : (c.nodeType === 1 && !['STYLE', 'SCRIPT'].includes(c.nodeName)
             ? txt(c) : '')).join('');
  return txt(el).replace(/\\s+/g, ' ').trim(); }"""
MODEL_JS = """([name, expr]) => { for (const d of Bokeh.documents) { const m = d.get_model_by_name(name);
  if (m) return (new Function('m', 'return ' + expr))(m); } return null; }"""
FRAME = """(() => { const v = Bokeh.index.find_one(m); const r = v.el.getBoundingClientRect(); const f = v.frame.bbox;
  return {x: r.x + f.left, y: r.y + f.top, w: f.width, h: f.height}; })()"""
MAP_READY = """() => { if (!window.Bokeh) return false; for (const d of Bokeh.documents) {
  const s = d.get_model_by_name('map-source'); if (s) { const x = s.data instanceof Map ? s.data.get('x') : s.data.x;
  if (x && x.length > 0) return document.querySelector('.bk-Figure, [class*=bk-panel-models]') !== null; } }
  return false; }"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Page:
    """A Playwright page on the app with helpers that read what the user sees."""

    def __init__(self, page):
        self.page = page

    async def text(self, css: str) -> str:
        return await self.page.evaluate(TEXT_OF, css)

    async def model(self, name: str, expr: str):
        return await self.page.evaluate(MODEL_JS, [name, expr])

    async def wait_text(self, css: str, pattern: str, timeout: float = 120) -> str:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            t = await self.text(css)
            if re.search(pattern, t):
                return t
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{css}: no {pattern!r} within {timeout} s (last: {t[:200]!r})")

    async def tab(self, name: str) -> None:
        await self.page.get_by_text(name, exact=True).first.click()
        await asyncio.sleep(0.5)


async def ms_until(p: Page, css: str, changed_from: str, must_contain: str, t0: float, timeout: float) -> float | None:
    """Milliseconds from ``t0`` until the pane ``css`` shows new text containing ``must_contain`` (None on timeout)."""
    while time.perf_counter() < t0 + timeout:
        t = await p.text(css)
        if must_contain in t and t != changed_from:
            return 1000 * (time.perf_counter() - t0)
        await asyncio.sleep(0.01)
    return None


async def open_session(browser, url: str) -> tuple[Page, float, object]:
    ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
    pg = await ctx.new_page()
    t0 = time.perf_counter()
    await pg.goto(url, timeout=300_000)
    await pg.wait_for_function(MAP_READY, timeout=300_000, polling=50)
    return Page(pg), time.perf_counter() - t0, ctx


async def figure_box(p: Page, index: int = 0):
    figs = p.page.locator(".bk-Figure >> visible=true")
    return await figs.nth(index).bounding_box()


#: the crystal frames of the page (inside Panel's shadow roots; one per details panel, redrawn in place, see
#: cfgp/dashboard/crystal_frame.py): remember how many figures each has drawn / has one drawn a new figure since?
FRAMES = """(mark) => { const all = []; const walk = (root) => { for (const e of root.querySelectorAll('*')) {
  if (e.tagName === 'IFRAME' && e.classList.contains('structure-view')) all.push(e);
  if (e.shadowRoot) walk(e.shadowRoot); } }; walk(document);
  if (mark) { all.forEach(f => f.dataset.seen = f.dataset.drawn); return true; }
  return all.some(f => f.dataset.drawn !== f.dataset.seen && f.dataset.drawn !== '0'); }"""


async def measure_tap(p: Page) -> tuple[float, float, float]:
    """Median ms from a tap on the map to the details text of the nearest material and to its crystal drawn, and
    the first tap's ms to its crystal (the one that makes the frame and loads plotly.js)."""
    await p.tab("Latent map")
    box = await figure_box(p)
    texts, crystals = [], []
    spots = [(0.5, 0.5), (0.35, 0.4), (0.65, 0.6), (0.45, 0.7), (0.6, 0.35), (0.3, 0.6), (0.7, 0.45)]
    for fx, fy in spots:
        before = await p.text(".details")
        await p.page.evaluate(FRAMES, True)
        t0 = time.perf_counter()
        await p.page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        ms = await ms_until(p, ".details", before, "atoms per cell", t0, 20)
        if ms is None:  # an empty spot shows nothing new
            continue
        texts.append(ms)
        while time.perf_counter() < t0 + 30 and not await p.page.evaluate(FRAMES, False):
            await asyncio.sleep(0.01)
        crystals.append(1000 * (time.perf_counter() - t0))
    if not texts:
        raise RuntimeError("no tap gave details")
    return statistics.median(texts), statistics.median(crystals), crystals[0]


#: what a researcher types into the search box (the paper's three phosphates, an element set, an id)
SEARCHES = ("SnPO3F", "ZrP2(HO3)2", "In3(PO4)2", "P F -Si", "mp-555838", "Li Fe P O")


async def measure_search(p: Page) -> float:
    """Median ms from Enter in the search box to its summary naming the results."""
    times = []
    box = p.page.locator(".search-box input >> visible=true").first
    for query in SEARCHES:
        await box.fill(query)
        before = await p.text(".search-summary")
        t0 = time.perf_counter()
        await box.press("Enter")
        ms = await ms_until(p, ".search-summary", before, " for ", t0, 30)
        if ms is None:
            raise RuntimeError(f"search {query!r} showed no results")
        times.append(ms)
    await p.page.locator(".search-close button").first.click()
    return statistics.median(times)


async def measure_brush(p: Page) -> float:
    await p.tab("Calibration")
    times = []
    for a, b in [((0.2, 0.1), (0.7, 0.8)), ((0.3, 0.2), (0.9, 0.9)), ((0.1, 0.3), (0.6, 0.95))]:
        box = await p.model("residual-vs-sigma", FRAME)  # box select is the plot's active drag tool
        await p.page.mouse.move(box["x"] + box["w"] * a[0], box["y"] + box["h"] * a[1])
        await p.page.mouse.down()
        await p.page.mouse.move(box["x"] + box["w"] * b[0], box["y"] + box["h"] * b[1], steps=5)
        before = await p.text(".calibration-metrics")
        t0 = time.perf_counter()
        await p.page.mouse.up()
        ms = await ms_until(p, ".calibration-metrics", before, "selected of the", t0, 60)
        if ms is not None:
            times.append(ms)
        await p.page.get_by_role("button", name="Clear selection").click()
        await p.wait_text(".calibration-metrics", r"^(?!.*selected of the)", 30)
    if not times:
        raise RuntimeError("no brush updated the metrics")
    return statistics.median(times)


def _cycle(text: str) -> int:
    m = re.search(r"cycle (\d+)", text)
    return int(m.group(1)) if m else -1


async def set_slider_max(p: Page, name: str) -> None:
    """Move a Panel slider to its maximum with the keyboard (End on its handle)."""
    slider = p.page.locator(f".{name} .noUi-handle >> visible=true").first
    await slider.focus()
    await slider.press("End")
    await asyncio.sleep(0.3)


async def measure_al(p: Page, seconds: float = 8.0) -> float:
    await p.tab("Active learning")
    await p.page.get_by_role("button", name="Reset").click()
    await set_slider_max(p, "al-speed")
    await p.page.get_by_role("button", name="Step").click()  # builds the learner (not part of the rate)
    await p.wait_text(".al-cycle", r"cycle 1 ", 120)
    await p.page.get_by_role("button", name="▶ Play").click()
    await p.wait_text(".al-cycle", r"cycle ([3-9]|\d\d+) ", 60)
    c0, t0 = _cycle(await p.text(".al-cycle")), time.perf_counter()
    await asyncio.sleep(seconds)
    c1, t1 = _cycle(await p.text(".al-cycle")), time.perf_counter()
    await p.page.get_by_role("button", name="❚❚ Pause").click()
    return (c1 - c0) / (t1 - t0)


async def measure_replay(p: Page, stem: str) -> tuple[float, int]:
    await p.tab("Active learning")
    await p.page.get_by_role("button", name="Reset").click()
    await p.page.locator("select >> visible=true").first.select_option(label=f"replay {stem}")
    await p.wait_text(".al-status", "Replaying|replay", 60)
    await set_slider_max(p, "al-replay-speed")
    t0 = time.perf_counter()
    await p.page.get_by_role("button", name="▶ Play").click()
    # 1,500 cycles played (the default's entropy runs go on to 6,000; a frame may pass 1,500 by a few cycles)
    text = await p.wait_text(".al-cycle", r"cycle (1[5-9]\d\d|[2-9]\d\d\d) ", 120)
    return time.perf_counter() - t0, _cycle(text)


async def measure_predict(p: Page, cifs: list[tuple[str, Path]]) -> float:
    """Upload real CIFs one after another; the first may wait for the network to load (not counted)."""
    await p.tab("Predict")
    upload = p.page.locator("input[type=file] >> visible=true")
    times = []
    for k, (formula, path) in enumerate(cifs):
        t0 = time.perf_counter()
        await upload.set_input_files(str(path))
        deadline = t0 + 300
        while time.perf_counter() < deadline:
            t = await p.text(".prediction")
            if "Predicted formation energy" in t and path.name in t:
                break
            await asyncio.sleep(0.01)
        else:
            raise TimeoutError(f"no prediction for {path.name}: {t[:200]!r}")
        if k:
            times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


async def measure_tsne(p: Page) -> float:
    await p.tab("Latent map")
    t0 = time.perf_counter()
    await p.page.get_by_role("button", name="Recompute t-SNE live").click()
    await p.wait_text(".tsne-status", "converged", 300)
    return time.perf_counter() - t0


async def main_async(args) -> dict:
    from playwright.async_api import async_playwright

    port = free_port()
    url = app_url(port)
    env = dict(os.environ, CFGP_RUN=str(Path(args.run).resolve()), PYTHONWARNINGS="ignore")
    log = open(Path(tempfile.gettempdir()) / "cfgp_app_latency.log", "w")
    t_start = time.perf_counter()
    server = start_server(ROOT, port, env, log)
    out: dict = {"run": str(args.run), "machine": f"{os.cpu_count()} cores"}
    try:
        wait_for_page(server, url, 600, log=lambda: Path(log.name).read_text(errors="replace"))
        out["server_first_page_s"] = round(time.perf_counter() - t_start, 1)
        records = json.load(gzip.open(ROOT / "tests" / "fixtures" / "oxides_small.json.gz", "rt"))[:6]
        folder = Path(tempfile.mkdtemp())
        cifs = []
        for r in records:
            (folder / f"{r['material_id']}.cif").write_text(r["cif"])
            cifs.append((r["formula"], folder / f"{r['material_id']}.cif"))
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            warm, _, ctx = await open_session(browser, url)  # warms the server's shared data
            await ctx.close()
            await asyncio.sleep(args.settle)
            out["rss_mb_idle"] = round(rss_mb(server.pid))
            view = f"{url}?{args.query}" if args.query else url  # e.g. the property scatter shown beside the map
            out["query"] = args.query
            p, out["first_plot_s"], ctx = await open_session(browser, view)
            text_ms, crystal_ms, first_crystal_ms = await measure_tap(p)
            out["tap_details_ms"], out["tap_crystal_ms"] = round(text_ms), round(crystal_ms)
            out["tap_crystal_first_ms"] = round(first_crystal_ms)
            out["brush_metrics_ms"] = round(await measure_brush(p))
            out["search_ms"] = round(await measure_search(p))
            out["al_steps_per_s"] = round(await measure_al(p), 1)
            stem = args.replay
            out["replay_1500_s"], _ = await measure_replay(p, stem)
            out["replay_1500_s"] = round(out["replay_1500_s"], 2)
            out["predict_ms"] = round(await measure_predict(p, cifs))
            out["tsne_live_s"] = round(await measure_tsne(p), 1)
            await ctx.close()
            # a class opens the dashboard at once
            t0 = time.perf_counter()
            sessions = await asyncio.gather(*[open_session(browser, view) for _ in range(args.sessions)])
            out["sessions"] = args.sessions
            out["first_plot_s_10_sessions_max"] = round(max(s[1] for s in sessions), 1)
            out["first_plot_s_10_sessions_median"] = round(statistics.median(s[1] for s in sessions), 1)
            out["all_sessions_s"] = round(time.perf_counter() - t0, 1)
            await asyncio.sleep(2)
            out["rss_mb_10_sessions"] = round(rss_mb(server.pid))
            for _, _, c in sessions:
                await c.close()
            await browser.close()
        await asyncio.sleep(args.settle)  # Bokeh drops closed sessions after --unused-session-lifetime
        out["rss_mb_after_close"] = round(rss_mb(server.pid))
        out["rss_after_close_vs_idle"] = round(out["rss_mb_after_close"] / out["rss_mb_idle"] - 1, 3)
        text = Path(log.name).read_text(errors="replace")
        out["server_log_tracebacks"] = text.count("Traceback")
    finally:
        stop_server(server)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(ROOT / "data" / "default"))
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--replay", default="entropy-b1-pool7195-s0", help="committed history to replay")
    ap.add_argument("--query", default="", help="link parameters of the measured sessions' view (text after '?')")
    ap.add_argument("--settle", type=float, default=45.0,
                    help="seconds to wait for closed sessions to be cleaned up before reading memory")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
