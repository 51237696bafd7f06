"""The crystal viewer and the "why is the GP wrong here?" comparison in Chromium, on a real phosphate of the
tiny run: the figure the iframe draws holds bonds, PO4 polyhedra (4 O around a P) and an element legend; the
coordination text reads "P: 4-fold tetrahedral"; the 2×2×2 toggle draws 8× the atoms; the comparison shows the
material and its nearest training material (checked with an independent NumPy search) with the frame's numbers;
nothing leaves 127.0.0.1 and the server log stays clean."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Composition

from tests.dashboard.conftest import SHOTS, crystal_frame, open_watched, tab, text_of, wait_for

# what Plotly draws (_fullData: arrays decoded from plotly.py's base64 "bdata", defaults filled in)
FIGURE = """el => el._fullData.map(t => ({type: t.type, name: t.name, mode: t.mode || null,
  showlegend: t.showlegend !== false, text: t.text ? Array.from(t.text) : null, meta: t.meta || null,
  x: t.x ? Array.from(t.x) : [], y: t.y ? Array.from(t.y) : [], z: t.z ? Array.from(t.z) : []}))"""


@pytest.fixture(scope="module")
def page(open_page):
    pg = open_page()
    tab(pg, "Outliers")
    pg.locator(".tabulator >> visible=true").last.wait_for(timeout=60_000)
    return pg


@pytest.fixture(scope="module")
def frame(app_run):
    """The run's materials with the GP's mean and σ, as the app computes them (load_gp + predictions)."""
    from cfgp.pipeline import load_gp, predictions

    gp = load_gp(app_run)
    pred = predictions(app_run, gp)
    f = app_run.materials.frame.copy()
    f["gp"], f["sigma"] = pred["mean"], pred["std"]
    X = app_run.latents()
    return f, gp, gp.scaler_.transform(np.nan_to_num(X)), X


#: tap the latent map on these frame rows (what a click on a point does: the map source's selection)
SELECT_ROWS = """(rows) => { for (const d of Bokeh.documents) { const s = d.get_model_by_name('map-source');
    if (s) s.selected.indices = rows; } }"""


def figure(page, css: str, timeout: float = 60_000) -> list[dict]:
    plot = page.frame_locator(f"iframe.structure-view.{css}-structure >> visible=true").first.locator(".js-plotly-plot")
    plot.wait_for(timeout=timeout)
    return plot.evaluate(FIGURE)


def own_atoms(fig: list[dict]) -> int:
    return sum(len(t["x"]) for t in fig if t["type"] == "scatter3d" and t["mode"] == "markers" and t["showlegend"])


def formulas(page) -> list[str]:
    cells = page.locator(".tabulator >> visible=true").last.locator(
        ".tabulator-row .tabulator-cell[tabulator-field=formula]")
    return [t.strip() for t in cells.all_inner_texts()]


def first_row_id(page) -> str:
    cells = page.locator(".tabulator >> visible=true").last.locator(
        ".tabulator-row .tabulator-cell[tabulator-field=material_id]")
    return cells.all_inner_texts()[0].strip()


def show_first_phosphate(page) -> str:
    page.locator("select >> visible=true").first.select_option("all")
    page.locator("input[type=checkbox] >> visible=true").first.check()  # phosphates only
    assert wait_for(page, lambda: formulas(page) and all(
        {"P", "O"} <= {el.symbol for el in Composition(f).elements} for f in formulas(page)), 60), formulas(page)
    mid = first_row_id(page)
    page.locator(".tabulator >> visible=true").last.locator(".tabulator-row").first.locator(
        ".tabulator-cell").nth(1).click()
    assert wait_for(page, lambda: mid in text_of(page, ".details"), 60), text_of(page, ".details")
    return mid


def test_phosphate_shows_bonds_po4_polyhedra_legend_and_coordination(page, server, app_run):
    server.new_log()
    mid = show_first_phosphate(page)
    f = app_run.materials.frame
    row = int(app_run.materials.index_of([mid])[0])
    assert f.is_phosphate.iloc[row]
    fig = figure(page, "details")
    names = {t["name"] for t in fig}
    legend = {t["name"] for t in fig if t["showlegend"]}
    assert {"P", "O", "bonds", "P polyhedra"} <= legend, legend
    assert own_atoms(fig) == f.nsites.iloc[row]
    bonds = next(t for t in fig if t["name"] == "bonds")
    assert sum(v is None for v in bonds["x"]) >= f.nsites.iloc[row] // 2  # one None ends each bond segment
    # every P polyhedron: 4 O vertices, each an O atom of the figure, all 1.45–1.65 Å from one P atom
    mesh = next(t for t in fig if t["name"] == "P polyhedra")
    assert mesh["type"] == "mesh3d" and set(mesh["meta"]["sizes"]) == {4}
    verts = np.c_[mesh["x"], mesh["y"], mesh["z"]]
    assert mesh["text"] == ["O"] * len(verts)
    o_atoms = np.vstack([np.c_[t["x"], t["y"], t["z"]] for t in fig if t["name"] in ("O", "O (repeat)")])
    p_atoms = np.vstack([np.c_[t["x"], t["y"], t["z"]] for t in fig if t["name"] in ("P", "P (repeat)")])
    assert np.all(np.min(np.linalg.norm(verts[:, None] - o_atoms[None], axis=2), axis=1) < 1e-3)
    for tet in verts.reshape(-1, 4, 3):
        d = np.linalg.norm(tet[None] - p_atoms[:, None], axis=2)  # (P atoms, 4)
        assert np.any(np.all((d > 1.45) & (d < 1.65), axis=1)), d.min(axis=0)
    assert "cell" in names
    assert wait_for(page, lambda: "P: 4-fold tetrahedral, P–O" in text_of(page, ".details-coordination"), 30), \
        text_of(page, ".details-coordination")
    coordination = text_of(page, ".details-coordination")
    assert "CrystalNN" in coordination
    legend_text = text_of(page, ".details-legend")
    assert "P" in legend_text and "O" in legend_text and "polyhedra of" in legend_text
    assert page.external_requests == []
    server.assert_clean()


def test_supercell_toggle_draws_eight_times_the_atoms(page, server, app_run):
    heading = text_of(page, ".details")
    mid = heading.split("(")[1].split(")")[0]
    n = int(app_run.materials.frame.nsites.iloc[int(app_run.materials.index_of([mid])[0])])
    assert own_atoms(figure(page, "details")) == n
    box = page.locator(".details-supercell input")
    box.check()
    assert wait_for(page, lambda: own_atoms(figure(page, "details")) == 8 * n, 60)
    assert "2×2×2 cell" in text_of(page, ".details-legend")
    page.screenshot(path=str(SHOTS / "viewer-supercell.png"))
    box.uncheck()
    assert wait_for(page, lambda: own_atoms(figure(page, "details")) == n, 60)
    assert page.external_requests == []
    server.assert_clean()


def axes_shown(page, css: str) -> list[bool]:
    """Whether the crystal's x, y, z axes are drawn (Plotly's resolved scene layout in the frame)."""
    plot = page.frame_locator(f"iframe.structure-view.{css}-structure >> visible=true").first.locator(".js-plotly-plot")
    plot.wait_for(timeout=60_000)
    return plot.evaluate("el => ['xaxis', 'yaxis', 'zaxis'].map(a => el._fullLayout.scene[a].visible)")


def test_crystal_axes_are_hidden_until_asked_for(page, server):
    """On a projector the axes' numbers crowded the crystal: hidden by default, drawn when "axes (Å)" is ticked."""
    server.new_log()
    assert "atoms per cell" in text_of(page, ".details")  # a material is shown (the tests above chose it)
    assert axes_shown(page, "details") == [False, False, False]
    box = page.locator(".details-axes input")
    box.check()
    assert wait_for(page, lambda: axes_shown(page, "details") == [True, True, True], 60)
    box.uncheck()
    assert wait_for(page, lambda: axes_shown(page, "details") == [False, False, False], 60)
    server.assert_clean()


def test_compare_with_nearest_training_material(page, server, app_run, frame):
    f, gp, Xs, X = frame
    heading = text_of(page, ".details")
    mid = heading.split("(")[1].split(")")[0]
    row = int(app_run.materials.index_of([mid])[0])
    train = np.asarray(app_run.split.train)
    train = train[np.isfinite(X[train]).all(axis=1) & (train != row)]
    d = np.linalg.norm(Xs[train] - Xs[row], axis=1)
    nb = int(train[np.argmin(d)])
    page.locator(".outliers-compare input").check()
    assert wait_for(page, lambda: f.material_id.iloc[nb] in text_of(page, ".compare-summary"), 60)
    summary = text_of(page, ".compare-summary")
    assert "Why is the GP wrong here?" in summary
    assert f"distance {d.min():.3f}" in summary, summary
    # what explains the error: the neighbour's smoother weight (cfgp.gp, tested against a direct solve), the
    # distance's percentile among test materials, the posterior correlation and the neighbour's own residual
    assert "exp(−d/l)" not in summary
    cond = np.asarray(app_run.split.train)
    cond = cond[np.isfinite(X[cond]).all(axis=1)]
    w = gp.smoother_weights(X[[row]])[0]
    assert f"has weight {w[int(np.flatnonzero(cond == nb)[0])]:.3f}" in summary, summary
    cov = gp.posterior_covariance(X[[row, nb]])
    assert f"between the two is {cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]):.2f}" in summary, summary
    assert f"({f.gp.iloc[nb] - f.formation_energy_per_atom.iloc[nb]:+.3f} eV/atom)" in summary, summary
    test = np.asarray(app_run.split.test)
    test = test[np.isfinite(X[test]).all(axis=1)]
    nearest = np.array([np.min(np.linalg.norm(Xs[cond] - Xs[t], axis=1)) for t in test])  # every training material
    assert f"farther than {100 * np.mean(nearest <= d.min()):.0f} % of test materials" in summary, summary
    for r in (row, nb):
        for value in (f"{f.formation_energy_per_atom.iloc[r]:.3f}", f"{f.gp.iloc[r]:.3f} ± {f.sigma.iloc[r]:.3f}",
                      f.formula.iloc[r], f.material_id.iloc[r]):
            assert value in summary, (value, summary)
    assert wait_for(page, lambda: f.material_id.iloc[row] in text_of(page, ".compare-left")
                    and f.material_id.iloc[nb] in text_of(page, ".compare-right"), 60)
    right = text_of(page, ".compare-right")
    assert f"{f.formation_energy_per_atom.iloc[nb]:.3f}" in right and "train split" in right
    fl, fr = figure(page, "compare-left"), figure(page, "compare-right")
    assert own_atoms(fl) == f.nsites.iloc[row] and own_atoms(fr) == f.nsites.iloc[nb]
    assert wait_for(page, lambda: text_of(page, ".compare-left-coordination").startswith("Coordination")
                    and text_of(page, ".compare-right-coordination").startswith("Coordination"), 30)
    page.screenshot(path=str(SHOTS / "viewer-compare.png"), full_page=True)
    # the comparison is part of the view: its link reopens the same two materials side by side
    assert wait_for(page, lambda: "out_compare=true" in page.url and f"material={mid}" in page.url, 10), page.url
    ctx = page.context.browser.new_context(viewport={"width": 1400, "height": 900})
    other = open_watched(ctx, page.url)
    assert wait_for(other, lambda: f.material_id.iloc[nb] in text_of(other, ".compare-right"), 60)
    ctx.close()
    page.locator(".outliers-compare input").uncheck()
    assert wait_for(page, lambda: page.locator(".compare-summary >> visible=true").count() == 0, 30)
    assert page.external_requests == []
    server.assert_clean()
    assert [e for e in page.console_errors if "favicon" not in e] == []


#: does the details pane (inside Panel's shadow roots) show this text? (polled in the page, every 10 ms)
TEXT_HAS = """((t) => { const walk = (root) => { for (const e of root.querySelectorAll('*')) {
  if (e.classList && e.classList.contains('details') && (e.shadowRoot ? e.shadowRoot.textContent : e.textContent)
      .includes(t)) return true; if (e.shadowRoot && walk(e.shadowRoot)) return true; } return false; };
  return walk(document); })"""


def test_two_quick_taps_end_on_the_second_material_text_and_crystal(open_page, server, app_run):
    """The details text is sent at once and the crystal on the next tick (details.py): a second tap before the
    first crystal is drawn must leave the second material's text and crystal, not a mix of the two."""
    f = app_run.materials.frame
    small = f.index[(f["nsites"] >= 2) & (f["nsites"] <= 12)]
    first = int(small[0])
    second = int(next(r for r in small[1:] if f["nsites"].iloc[r] != f["nsites"].iloc[first]))
    pg = open_page()
    tab(pg, "Latent map")
    server.new_log()
    pg.evaluate(SELECT_ROWS, [first])
    # the second tap as soon as the first material's text is shown, while its crystal is still on its way
    pg.wait_for_function(f"() => {TEXT_HAS}('{f['material_id'].iloc[first]}')", polling=10, timeout=30_000)
    pg.evaluate(SELECT_ROWS, [second])
    want = f["material_id"].iloc[second]
    assert wait_for(pg, lambda: want in text_of(pg, ".details"), 30), text_of(pg, ".details")
    assert f["material_id"].iloc[first] not in text_of(pg, ".details")
    assert wait_for(pg, lambda: own_atoms(figure(pg, "details")) == int(f["nsites"].iloc[second]), 30), \
        (own_atoms(figure(pg, "details")), int(f["nsites"].iloc[first]), int(f["nsites"].iloc[second]))
    pg.wait_for_timeout(1500)  # nothing of the first tap arrives later
    assert want in text_of(pg, ".details") and own_atoms(figure(pg, "details")) == int(f["nsites"].iloc[second])
    assert crystal_frame(pg, "details").get_attribute("data-label") == f"{want} 1x1x1"
    server.assert_clean()
    assert pg.console_errors == []  # one frame, never replaced: no plotly.js load is cancelled either


def test_the_next_material_is_drawn_in_the_same_frame(open_page, server, app_run):
    """plotly.js is parsed once per panel: the next material's figure is drawn with Plotly.react in the frame
    already there (a mark left in the frame's page survives), not in a new frame that loads plotly.js again."""
    f = app_run.materials.frame
    rows = [int(r) for r in f.index[(f["nsites"] >= 2) & (f["nsites"] <= 20)][:3]]
    pg = open_page()
    tab(pg, "Latent map")
    server.new_log()
    for i, row in enumerate(rows):
        pg.evaluate(SELECT_ROWS, [row])
        label = f"{f['material_id'].iloc[row]} 1x1x1"
        assert wait_for(pg, lambda: crystal_frame(pg, "details").get_attribute("data-label") == label, 30), \
            crystal_frame(pg, "details").get_attribute("data-label")
        assert own_atoms(figure(pg, "details")) == int(f["nsites"].iloc[row])
        frame = crystal_frame(pg, "details")
        if i == 0:
            frame.evaluate("el => { el.contentWindow.__cfgp_first = true; }")
        else:
            assert frame.evaluate("el => el.contentWindow.__cfgp_first === true"), "the frame was reloaded"
        assert frame.get_attribute("data-drawn") == str(i + 1)
    assert pg.locator("iframe.structure-view.details-structure").count() == 1
    server.assert_clean()
    assert pg.console_errors == []
