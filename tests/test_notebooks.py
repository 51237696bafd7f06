"""Every notebook runs top to bottom on the embedded default (CFGP_QUICK=1 shortens the long cells), shows its
figures, and the numbers it prints are the ones computed here independently: a NumPy reference GP on the shipped
latents and gp.json, the committed active-learning histories, and the fixture's own records."""

import gzip
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from cfgp.artefacts import DEFAULT_RUN
from tests import reference
from tests.conftest import SMALL

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
DASHBOARD = next(p for p in NOTEBOOKS if p.stem == "06_dashboard")
PAPER_NOTEBOOKS = [p for p in NOTEBOOKS if p != DASHBOARD]  # 01-05: paper figures on the embedded default
PLOT_MIME = ("application/vnd.holoviews_exec.v0+json", "application/vnd.bokehjs_exec.v0+json")


def test_notebooks_are_committed_without_outputs():
    assert len(NOTEBOOKS) == 7
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.fixture(scope="module")
def expected():
    """What the notebooks should print, computed without the code paths they use."""
    from cfgp.pipeline import Run

    run = Run(DEFAULT_RUN)
    gp = json.loads((DEFAULT_RUN / "gp.json").read_text())["gp"]
    X, y = run.latents(), run.materials.y
    tr, te = run.split.train, run.split.test
    mu, sd = reference.gp_posterior_from_saved(gp, X[tr], y[tr], X)
    frame = run.materials.frame
    phos = frame.is_phosphate.to_numpy()
    err = mu[te] - y[te]
    histories = {}
    for path in sorted((DEFAULT_RUN / "al").glob("*.jsonl.gz")):  # the default ships its histories gzipped
        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
        histories[path.name.removesuffix(".jsonl.gz")] = [json.loads(line) for line in lines[1:]]
    records = json.load(gzip.open(SMALL, "rt"))[:120]
    rows = run.materials.index_of([r["material_id"] for r in records])
    mine_err = mu[rows] - np.array([r["formation_energy_per_atom"] for r in records])
    return {
        "sigma_phosphates": sd[phos].mean(), "sigma_others": sd[~phos].mean(),
        "test_mae": np.abs(err).mean(), "test_r2": 1 - np.sum(err**2) / np.sum((y[te] - y[te].mean()) ** 2),
        "outside_2sigma": int(np.sum(np.abs(err) > 2 * sd[te])), "n_test": len(te),
        "split": {"train": len(tr), "pool": len(run.split.pool), "test": len(te)},
        "histories": histories, "default_gp_mae_on_fixture": np.abs(mine_err).mean(),
    }


def _run_notebook(path, monkeypatch):
    monkeypatch.setenv("CFGP_QUICK", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, [f"{e['ename']}: {e['evalue']}" for e in errors]
    text = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []) if o.output_type == "stream")
    # a cell that ends in a plot expression displays a plot
    ends_in_plot = [c for c in cells if re.search(r"^(hv_plots\.\w+\(|base \*|hv\.)", c.source.strip().splitlines()[-1])]
    shown = [c for c in ends_in_plot
             if any(set(PLOT_MIME) & set(o.get("data", {})) for o in c.get("outputs", []) if o.output_type in
                    ("display_data", "execute_result"))]
    assert ends_in_plot and len(shown) == len(ends_in_plot), [c.source[:60] for c in ends_in_plot if c not in shown]
    return text


def _number(pattern, text):
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not printed in:\n{text[:3000]}"
    return [float(g) if re.fullmatch(r"[-+]?[\d.]+", g) else g for g in m.groups()]


def _close(printed, value, decimals):
    """A number printed with ``decimals`` decimals equals ``value`` rounded the same way (half a unit of slack
    for values on a rounding boundary)."""
    assert abs(printed - value) <= 0.5 * 10**-decimals + 1e-12, (printed, value)


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_RUN / "gp.json").exists(), reason="the embedded default is not built")
@pytest.mark.parametrize("path", PAPER_NOTEBOOKS, ids=[p.stem for p in PAPER_NOTEBOOKS])
def test_notebook_runs_shows_its_figures_and_prints_the_right_numbers(path, monkeypatch, expected):
    text = _run_notebook(path, monkeypatch)
    sizes = _number(r"split sizes: \{'train': (\d+), 'pool': (\d+), 'test': (\d+)\}", text)
    assert sizes == [expected["split"][k] for k in ("train", "pool", "test")]
    e = expected
    if path.stem.startswith("01"):
        phos, other = _number(r"mean σ: phosphates ([\d.]+), other oxides ([\d.]+)", text)
        _close(phos, e["sigma_phosphates"], 4)
        _close(other, e["sigma_others"], 4)
    elif path.stem.startswith("02"):
        mae, r2, n = _number(r"test MAE ([\d.]+) eV/atom, MSE [\d.]+ \(eV/atom\)², R² ([\d.]+), n = (\d+)", text)
        _close(mae, e["test_mae"], 4)
        _close(r2, e["test_r2"], 4)
        assert n == e["n_test"]
    elif path.stem.startswith("03"):
        outside, n = _number(r"(\d+) of (\d+) test oxides lie outside ±2σ", text)
        assert (outside, n) == (e["outside_2sigma"], e["n_test"])
    elif path.stem.startswith("04"):
        # the summary lines of the committed entropy runs: start and MAE averaged over their seeds after the 1,500
        # labels every committed run holds, then after the 6,000 of the paper's scale (the end of these runs)
        found = re.findall(r"after ([\d,]+) labels\n(?:.*\n)*?\s+entropy-b1-pool7195\s+seeds 4\s+MAE ([\d.]+) → ([\d.]+)",
                           text)
        runs = [h for k, h in e["histories"].items() if k.startswith("entropy-b1-pool7195-s")]
        assert [n for n, _, _ in found] == ["1,500", "6,000"], found
        for (n, start, final), at in zip(found, (1500, 6000)):
            _close(float(start), np.mean([h[0]["mae"] for h in runs]), 4)
            _close(float(final), np.mean([h[at]["mae"] for h in runs]), 4)
        assert all(len(h) == 6001 for h in runs)
        # the live run (entropy, seed 0, 20 cycles) is the committed entropy seed-0 run, pick for pick
        live = re.findall(r"cycle\s+(\d+)\s+picked (\S+)\s+n_train (\d+)\s+test MAE ([\d.]+)", text)
        committed = e["histories"]["entropy-b1-pool7195-s0"]
        assert len(live) >= 4
        for cycle, pick, n_train, mae in live:
            rec = committed[int(cycle)]
            assert rec["picked"] == [pick] and rec["n_train"] == int(n_train)
            _close(float(mae), rec["mae"], 4)
    elif path.stem.startswith("05"):
        assert "broken.cif" in text  # the bad file of the folder is reported by name
        (mae,) = _number(r"default GP on your 120 materials: MAE ([\d.]+)", text)
        _close(mae, e["default_gp_mae_on_fixture"], 3)  # featurised live = the stored latents (same weights)
        # the GP fitted on 90 of them beats predicting their mean energy for the other 30 (the notebook's split)
        (mine,) = _number(r"MAE on the other 30 = ([\d.]+)", text)
        y = np.array([r["formation_energy_per_atom"] for r in json.load(gzip.open(SMALL, "rt"))[:120]])
        order = np.random.default_rng(0).permutation(len(y))
        assert mine < np.abs(y[order[90:]] - y[order[:90]].mean()).mean()
    elif path.stem.startswith("07"):
        # every point of the committed learning curve, averaged here from the raw JSON
        curve = json.loads((DEFAULT_RUN.parent / "results" / "learning_curve.json").read_text())
        printed = re.findall(r"(\d+) labels  (.+?)\s+runs (\d+)  test MAE ([\d.]+)", text)
        frozen = {}
        for r in curve["frozen"]:
            frozen.setdefault(r["n_labels"], []).append(r["mae"])
        lines = {(int(n), who.strip()): (int(runs), float(mae)) for n, who, runs, mae in printed}
        for n, maes in frozen.items():
            runs, mae = lines[(n, "frozen-latent CFGP")]
            assert runs == len(curve["settings"]["seeds"]) == len(maes)
            _close(mae, np.mean(maes), 4)
        base = curve["base_readout"]
        _close(lines[(base["n_labels"], "MEGNet readout")][1], base["mae"], 4)
        for r in curve["retrained"]:
            same = [q["mae"] for q in curve["retrained"] if (q["model"], q["strategy"], q["n_labels"])
                    == (r["model"], r["strategy"], r["n_labels"])]
            runs, mae = lines[(r["n_labels"], f"{r['model']}, {r['strategy']} picks")]
            assert runs == len(same)
            _close(mae, np.mean(same), 4)
        assert len(lines) == len(frozen) + 1 + len({(r["model"], r["strategy"], r["n_labels"])
                                                     for r in curve["retrained"]})


# ---------------------------------------------------------------- 06: the live dashboard in a notebook
EXEC_MIME = "application/vnd.holoviews_exec.v0+json"  # Panel's live-view output: JupyterLab renders and links it
LOAD_MIME = "application/vnd.holoviews_load.v0+json"
TAB_NAMES = ["Latent map", "Calibration", "Active learning", "Outliers", "Predict"]


def _bokeh_models(output) -> list[dict]:
    """The Bokeh models of one Panel display output: the document (``docs_json``) its script builds in the page,
    with ``{"id": …}`` references resolved."""
    root = output["metadata"][EXEC_MIME]["id"]
    html = output["data"]["text/html"]
    assert f'data-root-id="{root}"' in html  # the page element the live view renders into
    m = re.search(r"var docs_json = (\{.*?\});\n", html, re.S)
    assert m, html[:500]
    found: list[dict] = []

    def walk(x):
        if isinstance(x, dict):
            if x.get("type") == "object" and "name" in x:
                found.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(json.loads(m.group(1)))
    return found


def _panel_output(cell) -> list[dict]:
    shown = [o for o in cell.get("outputs", []) if o.output_type in ("display_data", "execute_result")
             and EXEC_MIME in o.get("data", {})]
    assert len(shown) == 1, [list(o.get("data", {})) for o in cell.get("outputs", [])]
    return _bokeh_models(shown[0])


def test_dashboard_notebook_shows_the_live_dashboard(tiny_run, monkeypatch):
    """notebooks/06 on the tiny run: one tab and the whole app are displayed as live Panel views holding the run's
    results, Panel's scripts come with the notebook (nothing fetched from a CDN), the figure export works."""
    monkeypatch.setenv("CFGP_RUN", str(tiny_run.dir))
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    nb = nbformat.read(DASHBOARD, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(DASHBOARD.parent)}}).execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, [f"{e['ename']}: {e['evalue']}" for e in errors]

    def cell(snippet):
        return next(c for c in cells if snippet in c.source)

    # the extension cell loads BokehJS, Panel and Tabulator from the notebook itself: no script URL to fetch
    loads = [o["data"][LOAD_MIME] for o in cell("notebook_extension()").outputs if LOAD_MIME in o.get("data", {})]
    bundle = [js for js in loads if "const js_urls" in js]
    assert len(bundle) == 1 and len(bundle[0]) > 1_000_000 and "Tabulator" in bundle[0]
    assert re.search(r"const js_urls = \[\];", bundle[0]) and re.search(r"const css_urls = \[\];", bundle[0])

    n_test, n_materials = len(tiny_run.split.test), len(tiny_run.materials.frame)
    # one tab: the Calibration view with its three figures on the run's test split, and its download buttons
    models = _panel_output(cell('tab("Calibration"'))
    figures = {m["attributes"].get("name") for m in models if m["name"] == "Figure"}
    assert {"parity", "residual-vs-sigma", "calibration-curve"} <= figures
    titles = {m["attributes"].get("text") for m in models if m["name"] == "Title"}
    parity_title = next(t for t in titles if t and t.startswith("GP vs DFT"))
    assert parity_title.startswith(f"GP vs DFT: {n_test} test materials"), parity_title
    downloads = [m["attributes"] for m in models if m["name"].endswith("FileDownload")]
    assert {"PNG", "SVG", "Download metrics (CSV)"} <= {d.get("label") for d in downloads}
    assert {"parity-figure-png", "curve-figure-svg"} <= {c for d in downloads for c in d.get("css_classes", [])}
    text = "".join(m["attributes"].get("text") or "" for m in models if m["name"].endswith("markup.HTML"))
    assert "Is the uncertainty honest?" in text

    # the figure export from Python: the same title, an SVG whose text is the plot's
    export = cell("export_parity()")
    printed = "".join(o.get("text", "") for o in export.outputs if o.output_type == "stream")
    assert f"parity figure: {parity_title}" in printed
    svg = next(o["data"]["image/svg+xml"] for o in export.outputs if "image/svg+xml" in o.get("data", {}))
    import xml.etree.ElementTree as ET

    words = {"".join(t.itertext()) for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")}
    assert {"DFT E_f (eV/atom)", "GP E_f (eV/atom)", f"materials ({n_test})"} <= words

    # the whole app: the five tabs in order, the header, the latent map's source with every material
    models = _panel_output(cell("create_app(RUN)"))
    tabs = [m for m in models if m["name"].endswith("tabs.Tabs")]
    assert len(tabs) == 1
    by_id = {m["id"]: m for m in models if "id" in m}
    panels = [by_id.get(t["id"], t) if "attributes" not in t else t for t in tabs[0]["attributes"]["tabs"]]
    assert [p["attributes"]["title"] for p in panels] == TAB_NAMES
    text = "".join(m["attributes"].get("text") or "" for m in models if m["name"].endswith("markup.HTML"))
    assert "GP device" in text and f"{n_materials:,} Materials Project oxides" in text
    source = next(m for m in models if m["name"] == "ColumnDataSource" and m["attributes"].get("name") == "map-source")
    assert _column_length(source, "x") == n_materials


def _column_length(source: dict, column: str) -> int:
    """Rows of one column of a serialised ColumnDataSource (a list, or an ndarray with its shape)."""
    data = source["attributes"]["data"]
    entries = dict(data["entries"]) if isinstance(data, dict) and "entries" in data else data
    col = entries[column]
    return int(col["shape"][0]) if isinstance(col, dict) and "shape" in col else len(col)


@pytest.mark.slow
def test_dashboard_notebook_is_live_in_jupyterlab(tiny_run, tmp_path):
    """notebooks/06 in a served JupyterLab 4 and headless Chromium, run with Run All Cells: the tab and the whole
    app render, and the kernel answers the browser — a figure download is rendered by the kernel and a split
    change redraws the parity plot — through the comms JupyterLab offers Panel (its bundled extension)."""
    import os
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from cfgp.app_server import free_port, stop_server
    from tests.dashboard.conftest import ARGS, CHROMIUM, chromium_available

    pytest.importorskip("jupyterlab", reason='JupyterLab is the notebooks extra: pip install -e ".[notebooks]"')
    if not chromium_available():
        pytest.skip("Debian's chromium is not installed")
    from PIL import Image
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from cfgp.mpl_figures import DPI, FIGSIZE

    lab = tmp_path / "lab"
    lab.mkdir()
    shutil.copy(DASHBOARD, lab)  # JupyterLab saves what it opens: never the committed notebook
    port = free_port()
    env = dict(os.environ, CFGP_RUN=str(tiny_run.dir), PYTHONWARNINGS="ignore")
    log = open(tmp_path / "jupyterlab.log", "w")
    jupyter = Path(sys.executable).parent / "jupyter"
    proc = subprocess.Popen([str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                             "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={lab}",
                             "--allow-root", "--LabApp.extension_manager=readonly", "--LabApp.news_url="],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    n_test, n_pool = len(tiny_run.split.test), len(tiny_run.split.pool)
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=10)
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, (tmp_path / "jupyterlab.log").read_text()[-3000:]
                time.sleep(0.5)

        def drive() -> None:
            """The browser part, on a thread of its own: the notebook tests before this one (nbclient) leave an
            asyncio loop running on this thread, where Playwright's sync API refuses to start."""
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True).new_page()
                page.on("request", lambda r: external.append(r.url) if not r.url.startswith(
                    ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else None)
                page.on("response", lambda r: stylesheets.append((r.url, r.status)) if "/panel_dist/" in r.url
                        else None)
                page.goto(f"http://127.0.0.1:{port}/lab/tree/06_dashboard.ipynb", timeout=180_000)
                page.wait_for_selector(".jp-Notebook", timeout=300_000)
                page.wait_for_timeout(5_000)  # Run All waits for the kernel if it is still starting
                page.get_by_text("Run", exact=True).first.click()
                page.get_by_text("Run All Cells", exact=True).first.click()
                page.wait_for_selector(".parity-figure-png button", state="attached", timeout=600_000)
                page.wait_for_selector("text=GP device", timeout=600_000)
                tabs = page.evaluate("() => Bokeh.documents.flatMap(d => [...d.all_models].filter(m => Array.isArray("
                                     "m.tabs)).map(m => m.tabs.map(t => t.title)))")
                assert tabs == [TAB_NAMES], tabs  # the app's tabs, built in the page from the kernel's document
                assert page.get_by_text("Active learning", exact=True).first.is_visible()
                title = page.evaluate("() => { for (const d of Bokeh.documents) { const m = d.get_model_by_name('parity');"
                                      " if (m) return m.title.text; } return null; }")
                assert title and title.startswith(f"GP vs DFT: {n_test} test materials"), title
                # the kernel is idle (Run All has finished every cell: no "[*]" prompt) before the browser asks it
                deadline = time.time() + 300
                while page.evaluate("() => [...document.querySelectorAll('.jp-InputPrompt')]"
                                    ".some(e => e.textContent.includes('*'))"):
                    assert time.time() < deadline, "Run All did not finish in 5 minutes"
                    page.wait_for_timeout(500)
                # a click the kernel answers: the PNG of the parity figure, rendered by matplotlib in the kernel.
                # A click that reaches the page before the view's comm is open is dropped (nothing to answer):
                # click again, up to three times
                button = page.locator(".parity-figure-png button").first
                button.scroll_into_view_if_needed()
                for attempt in range(3):
                    try:
                        with page.expect_download(timeout=60_000) as info:
                            button.click()
                        break
                    except PlaywrightTimeout:
                        assert attempt < 2, "the kernel never answered the PNG download (3 clicks, 60 s each)"
                assert info.value.suggested_filename == "parity.png"
                im = Image.open(info.value.path())
                im.load()
                assert im.size == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
                # a widget change the kernel answers by redrawing: the pool split on the parity plot
                page.locator(".bk-btn-group button", has_text="pool").first.click()
                deadline = time.time() + 120
                while time.time() < deadline and f"{n_pool} pool materials" not in (title or ""):
                    page.wait_for_timeout(500)
                    title = page.evaluate("() => { for (const d of Bokeh.documents) { const m = d.get_model_by_name("
                                          "'parity'); if (m) return m.title.text; } return null; }")
                assert f"GP vs DFT: {n_pool} pool materials" in title, title
                tracebacks = page.locator(".jp-OutputArea-output", has_text="Traceback").count()
                assert tracebacks == 0
                browser.close()

        external: list[str] = []
        stylesheets: list[tuple[str, int]] = []
        with ThreadPoolExecutor(1) as pool:
            pool.submit(drive).result()
        # every script and stylesheet comes from the notebook or the Jupyter server, also those of panes a
        # callback redraws (notebook_extension points Panel's CDN fallback at the server's /panel_dist/)
        assert external == [], external
        assert stylesheets, "no stylesheet of a redrawn pane was requested from /panel_dist/"
        assert all(status == 200 for _, status in stylesheets), stylesheets
    finally:
        stop_server(proc)
        log.close()
