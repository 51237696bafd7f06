"""Latent map tab in Chromium: every colouring shows the right legend or colour bar, taps and brushes
select materials, the live t-SNE converges with a monotone counter."""

import re

import pytest

from tests.dashboard.conftest import SHOTS, column, model_js, screen_xy, tab, text_of, view_boxes, wait_for


@pytest.fixture(scope="module")
def page(open_page):
    pg = open_page()
    tab(pg, "Latent map")
    return pg


def _colour(page, label):
    page.locator("select >> visible=true").first.select_option(label=label)


def _legend(page):
    return model_js(page, "latent-map-legend",
                    "m.visible ? m.items.map(i => (i.label.value ?? i.label)) : []")


def _colorbar(page):
    return model_js(page, "latent-map-colorbar", "m.visible ? m.title : null")


def _groups(page):
    return column(page, "map-source", "group")


def test_categorical_colourings_show_a_legend_and_the_right_groups(page, server, app_run):
    frame = app_run.materials.frame
    n_phos = int(frame.is_phosphate.sum())
    server.new_log()
    _colour(page, "phosphates")
    assert wait_for(page, lambda: any(str(e).startswith("phosphate (") for e in (_legend(page) or [])), 20)
    legend = _legend(page)
    assert legend == [f"phosphate ({n_phos:,})", f"other oxide ({len(frame) - n_phos:,})"]
    # no colour bar for a categorical colouring (its visibility may reach the page a message after the legend)
    assert wait_for(page, lambda: _colorbar(page) is None, 20), _colorbar(page)
    groups = _groups(page)
    assert groups.count("phosphate") == n_phos and len(groups) == len(frame)
    assert f"phosphate ({n_phos:,})" in text_of(page, ".map-legend-text")

    _colour(page, "split")
    assert wait_for(page, lambda: any(str(e).startswith("train (") for e in (_legend(page) or [])), 20)
    counts = {re.sub(r" \(.*", "", e): int(re.sub(r"\D", "", e.split("(")[-1])) for e in _legend(page)}
    split = app_run.split
    assert counts["train"] == len(split.train) and counts["test"] == len(split.test)
    assert counts["pool"] == len(split.pool)

    _colour(page, "element")
    page.locator(".map-element input >> visible=true").first.fill("Li")
    page.keyboard.press("Enter")
    n_li = int(frame.elements.map(lambda e: "Li" in e).sum())
    assert wait_for(page, lambda: any(str(e).startswith("contains Li (") for e in (_legend(page) or [])), 20)
    assert _legend(page)[0] == f"contains Li ({n_li:,})"
    assert _groups(page).count("contains Li") == n_li
    page.screenshot(path=str(SHOTS / "map-element.png"))
    server.assert_clean()
    assert page.console_errors == []


def test_bad_element_gets_a_message_not_a_traceback(page, server):
    _colour(page, "element")
    box = page.locator(".map-element input >> visible=true").first
    for bad in ("(", "Xx", "(\\w|\\w)*!"):
        box.fill(bad)
        page.keyboard.press("Enter")
        assert wait_for(page, lambda: "not an element symbol" in text_of(page, ".map-message"), 15), bad
    box.fill("P")
    page.keyboard.press("Enter")
    assert wait_for(page, lambda: "not an element symbol" not in text_of(page, ".map-message"), 15)
    assert wait_for(page, lambda: "contains P (" in text_of(page, ".map-legend-text"), 15)
    server.assert_clean()


@pytest.mark.parametrize("label,title", [("σ", "GP σ (eV/atom)"), ("residual", "residual GP − DFT (eV/atom)"),
                                         ("z-score", "z = (GP − DFT) / σ"), ("GP E_f", "GP E_f (eV/atom)"),
                                         ("DFT E_f", "DFT E_f (eV/atom)")])
def test_numeric_colourings_title_the_colour_bar_with_the_field(page, server, label, title):
    _colour(page, label)
    assert wait_for(page, lambda: _colorbar(page) == title, 20), _colorbar(page)
    assert _legend(page) == []
    field = model_js(page, "latent-map-points", "m.glyph.fill_color.field")
    assert title.startswith({"dft": "DFT", "gp": "GP E", "sigma": "GP σ", "residual": "resid", "z": "z ="}[field])
    server.assert_clean()


def test_tap_shows_the_nearest_material(page, server):
    """A click shows the material drawn nearest to it, also where points overlap (no tap tool hit-test)."""
    import numpy as np

    _colour(page, "DFT E_f")
    assert wait_for(page, lambda: _colorbar(page) == "DFT E_f (eV/atom)", 20)
    page.wait_for_timeout(1000)  # the colour bar replaced the legend: let the layout settle
    xs, ys = column(page, "map-source", "x"), column(page, "map-source", "y")
    ids = column(page, "map-source", "material_id")
    rng = np.random.default_rng(1)
    for row in rng.choice(len(ids), 3, replace=False):
        pix = np.array(screen_xy(page, "latent-map", xs, ys))  # where the points are drawn now
        click = pix[row] + [1.0, -1.0]
        nearest = int(np.argmin(np.hypot(*(pix - click).T)))
        page.mouse.move(5, 5)  # off the plot, so the last hover tooltip does not cover the next click
        page.wait_for_timeout(300)
        page.mouse.click(*click)
        assert wait_for(page, lambda: ids[nearest] in text_of(page, ".details"), 20), (ids[nearest],
                                                                                      text_of(page, ".details"))
        assert "atoms per cell" in text_of(page, ".details")
        assert model_js(page, "map-source", "m.selected.indices") == [nearest]
    page.screenshot(path=str(SHOTS / "map-tap.png"))
    server.assert_clean()


def test_hovering_a_flagged_material_shows_its_reason_and_widened_sigma(page, server, app_run):
    """The map's tooltip over a material out of the domain says why (e.g. "NO: rare ...") and gives E_f ± the
    shipped σ (calibrated and widened), beside the GP's own σ: the numbers are the results frame's."""
    import numpy as np

    from cfgp.results import load_results

    f = load_results(app_run).frame
    xs, ys = column(page, "map-source", "x"), column(page, "map-source", "y")
    pix = np.array(screen_xy(page, "latent-map", xs, ys))
    gap = np.array([np.sort(np.hypot(*(pix - q).T))[1] for q in pix])  # to the nearest other point, px
    flagged = np.flatnonzero(~f["in_domain"].to_numpy() & (gap > 12) & np.isfinite(f["sigma_cal"].to_numpy()))
    assert len(flagged), "no isolated flagged material on the tiny run's map"
    row = int(flagged[0])
    page.mouse.move(5, 5)
    page.wait_for_timeout(300)
    page.mouse.move(*pix[row])
    assert wait_for(page, lambda: str(f["material_id"].iat[row]) in text_of(page, ".bk-Tooltip"), 20), \
        text_of(page, ".bk-Tooltip")
    tip = text_of(page, ".bk-Tooltip")
    assert f"{f['gp'].iat[row]:.3f} ± {f['sigma_cal'].iat[row]:.3f} eV/atom" in tip, tip
    assert f"GP's own σ: {f['sigma'].iat[row]:.3f} eV/atom" in tip and f"in domain: {f['domain_label'].iat[row]}" in tip
    assert f["domain_label"].iat[row].startswith("NO: ") and f["sigma_cal"].iat[row] > f["sigma"].iat[row]
    page.mouse.move(5, 5)
    server.assert_clean()


def test_live_tsne_counts_up_and_converges(page, server):
    page.get_by_role("button", name="Recompute t-SNE live").click()
    seen = []

    def converged():
        t = text_of(page, ".tsne-status")
        m = re.search(r"iteration (\d+) of", t)
        if m:
            seen.append(int(m.group(1)))
        return "converged" in t

    assert wait_for(page, converged, 120), "live t-SNE did not converge"
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    n = len(column(page, "live-tsne-source", "x") or [])
    assert n and n > 0
    assert model_js(page, "live-tsne", "m.visible")
    server.assert_clean()


def _visible_points(page):
    """How many points the map draws: the renderer's view filter (all when there is none)."""
    return model_js(page, "latent-map-points",
                    "(m.view.filter.booleans == null) ? null : m.view.filter.booleans.filter(b => b).length")


def test_any_property_colours_the_map_and_filters_narrow_every_tab(page, server, app_run):
    """Colour by the data set's band gap (colour bar titled with it, its values sent), by space group (a legend),
    then filter by band gap and space group at once: the map draws exactly the passing materials, the Outliers
    table keeps only them, and the filter is in the link and survives opening it again."""
    import numpy as np

    frame = app_run.materials.frame
    server.new_log()
    _colour(page, "band gap (eV)")
    assert wait_for(page, lambda: _colorbar(page) == "band gap (eV)", 20), _colorbar(page)
    assert model_js(page, "latent-map-points", "m.glyph.fill_color.field") == "prop"
    sent = np.array(column(page, "map-source", "prop"), dtype=float)
    np.testing.assert_allclose(sent, frame.band_gap.to_numpy(float), rtol=1e-5)

    _colour(page, "space group")
    top = frame.spacegroup_symbol.value_counts().index[0]
    assert wait_for(page, lambda: any(str(e).startswith(f"{top} (") for e in (_legend(page) or [])), 20), \
        _legend(page)
    assert _legend(page)[-1].startswith("other (")

    assert _visible_points(page) is None
    text = f"band_gap:1..; spacegroup_symbol={top}"
    box = page.locator(".map-filters input >> visible=true").first
    box.fill(text)
    page.keyboard.press("Enter")
    expected = int(((frame.band_gap >= 1) & (frame.spacegroup_symbol == top)).sum())
    assert 0 < expected < len(frame)
    assert wait_for(page, lambda: _visible_points(page) == expected, 20), (_visible_points(page), expected)
    # the status is a second update after the map's filter: it reaches the page a moment later
    status = f"{expected:,} of {len(frame):,} materials shown"
    assert wait_for(page, lambda: status in text_of(page, ".map-filter-status"), 20), \
        text_of(page, ".map-filter-status")
    assert wait_for(page, lambda: "filters=" in page.url, 20), page.url
    url = page.url
    server.assert_clean()

    again = page.context.new_page()
    again.goto(url)
    assert wait_for(again, lambda: model_js(again, "latent-map-points", "m.view.filter.booleans != null"), 90)
    assert _visible_points(again) == expected
    assert wait_for(again, lambda: f"{expected:,} of" in text_of(again, ".map-filter-status"), 30)
    tab(again, "Outliers")
    passing = (frame.band_gap >= 1) & (frame.spacegroup_symbol == top)
    n_test = int((passing & (app_run.split.labels(len(frame)) == "test")).sum())
    assert wait_for(again, lambda: "property filters" in text_of(again, ".outliers-summary"), 30)
    assert f"Table: {min(n_test, 300):,} materials after the filters" in text_of(again, ".outliers-summary")
    again.close()

    box.fill("band_gap:3..1")
    page.keyboard.press("Enter")
    assert wait_for(page, lambda: "is above the maximum" in text_of(page, ".map-filter-status"), 20)
    assert _visible_points(page) == expected  # a bad filter keeps the last good one
    box.fill("")
    page.keyboard.press("Enter")
    assert wait_for(page, lambda: _visible_points(page) is None, 20)
    server.assert_clean()


def test_marker_size_follows_a_property_and_is_in_the_link(page, server, app_run):
    import numpy as np

    from cfgp.properties import marker_sizes

    frame = app_run.materials.frame
    server.new_log()
    page.locator(".map-size select >> visible=true").first.select_option(label="volume per atom (Å³)")
    assert wait_for(page, lambda: model_js(page, "latent-map-points", "m.glyph.size.field") == "size", 20)
    sizes = np.array(column(page, "map-source", "size"), dtype=float)
    np.testing.assert_allclose(sizes, marker_sizes(frame.volume_per_atom.to_numpy(float)), rtol=1e-5)
    assert sizes.max() > 2 * sizes.min()
    assert wait_for(page, lambda: "size=volume_per_atom" in page.url, 20), page.url
    page.locator(".map-size select >> visible=true").first.select_option(label="fixed")
    assert wait_for(page, lambda: model_js(page, "latent-map-points", "m.glyph.size.value") == 4, 20)
    server.assert_clean()


def test_any_two_properties_beside_the_tsne_and_hidden_again(page, server, app_run):
    """chemiscope's map beside the t-SNE: x and y by any numeric property, labelled axes, the values the data
    hold; the t-SNE stays as it was, the two plots lie side by side inside the window and share colours and
    selection; a tap on the scatter picks the material drawn nearest there; the axes are in the link; t-SNE on
    both axes hides the scatter again."""
    import numpy as np

    frame = app_run.materials.frame
    server.new_log()
    # every material is drawn (no filter left by an earlier test): the tap below aims at any of them
    assert _visible_points(page) is None, "a filter is still applied"
    page.locator(".map-x-axis select >> visible=true").first.select_option(label="band gap (eV)")
    page.locator(".map-y-axis select >> visible=true").first.select_option(label="DFT E_f (eV/atom)")
    # both selections have reached the page: the y axis's label names the second property (the glyph's fields
    # are already "ax"/"ay" after the first selection, with the t-SNE still in "ay")
    assert wait_for(page, lambda: model_js(page, "property-map", "m.left[0].axis_label") == "DFT E_f (eV/atom)", 20)
    assert wait_for(page, lambda: np.allclose(np.array(column(page, "map-source", "ay"), dtype=float),
                                              app_run.materials.y, rtol=1e-6), 20)
    assert model_js(page, "property-map-points", "m.glyph.y.field") == "ay"
    assert model_js(page, "property-map-points", "m.glyph.x.field") == "ax"
    # the t-SNE is untouched: same fields, axes still hidden, same title
    assert model_js(page, "latent-map-points", "[m.glyph.x.field, m.glyph.y.field]") == ["x", "y"]
    assert model_js(page, "latent-map", "[m.below[0].visible, m.title.text]") == [
        False, "t-SNE of the MEGNet latent space"]
    np.testing.assert_allclose(np.array(column(page, "map-source", "ax"), dtype=float),
                               frame.band_gap.to_numpy(float), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(np.array(column(page, "map-source", "ay"), dtype=float), app_run.materials.y,
                               rtol=1e-6)
    labels = model_js(page, "property-map", "[m.below[0].axis_label, m.left[0].axis_label, m.below[0].visible, "
                                            "m.title.text, m.visible]")
    assert labels == ["band gap (eV)", "DFT E_f (eV/atom)", True, "DFT E_f (eV/atom) against band gap (eV)", True]
    # the same colours: the scatter's points are coloured by the map's mapper
    assert model_js(page, "property-map-points", "m.glyph.fill_color.transform.id") == model_js(
        page, "latent-map-points", "m.glyph.fill_color.transform.id")
    assert wait_for(page, lambda: "x=band_gap" in page.url and "y=dft" in page.url, 20), page.url
    page.wait_for_timeout(1000)  # the scatter's ranges follow its data: let the layout settle
    # side by side, inside the window
    boxes = page.evaluate("""() => ['latent-map-figure', 'property-map-figure'].map((c) => {
        const find = (root) => { const el = root.querySelector('.' + c); if (el) return el;
          for (const h of root.querySelectorAll('*')) { if (h.shadowRoot) { const f = find(h.shadowRoot);
          if (f) return f; } } return null; };
        const r = find(document).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })""")
    (tl, tt, tr, tb), (pl, pt, pr, pb) = boxes
    width = page.viewport_size["width"]
    assert tr <= pl + 2 and pr <= width and tl >= 0 and abs(tt - pt) < 40 and pr - pl > 250, boxes
    # a click on a drawn point of the scatter selects that material: the nearest by the properties shown
    ax, ay = column(page, "map-source", "ax"), column(page, "map-source", "ay")
    ids = column(page, "map-source", "material_id")
    pix = np.array(screen_xy(page, "property-map", ax, ay), dtype=float)
    row = int(np.nanargmax(np.array(ax, dtype=float)))  # the widest gap, at the right edge
    click = pix[row] + [1.0, -1.0]
    nearest = int(np.nanargmin(np.hypot(*(pix - click).T)))
    page.mouse.move(5, 5)
    page.mouse.click(*click)
    assert wait_for(page, lambda: ids[nearest] in text_of(page, ".details"), 20), (ids[nearest],
                                                                                  text_of(page, ".details"))
    assert model_js(page, "map-source", "m.selected.indices") == [nearest]
    page.locator(".map-x-axis select >> visible=true").first.select_option(label="t-SNE")
    page.locator(".map-y-axis select >> visible=true").first.select_option(label="t-SNE")
    assert wait_for(page, lambda: model_js(page, "property-map", "m.visible") is False, 20)
    assert model_js(page, "property-map-points", "m.glyph.x.field") == "x"
    server.assert_clean()


def _key_boxes(page) -> dict:
    """The map, its legend and its colour bar as laid out (the map's view only while it is in the page)."""
    return view_boxes(page, ["latent-map-legend", "latent-map-colorbar", "latent-map"], connected=("latent-map",))


def _settled(page) -> bool:
    """The map's key boxes are unchanged over half a second (Bokeh's layout pass has ended)."""
    before = _key_boxes(page)
    page.wait_for_timeout(500)
    return _key_boxes(page) == before


@pytest.mark.parametrize("width, height, query", [(1920, 1080, ""), (1366, 768, "projector=1")])
def test_no_legend_or_colour_bar_is_clipped(browser, server, width, height, query):
    """For every colouring, at a projector's 1366×768 (large type) and at 1920×1080: the legend or colour bar that
    the colouring shows lies wholly inside the map's canvas, beside the plotting frame (never over the points)."""
    from tests.dashboard.conftest import open_watched

    from cfgp.dashboard.latent_map import COLOURINGS

    ctx = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = open_watched(ctx, f"{server.url}?{query}")
        tab(page, "Latent map")
        server.new_log()
        checked = 0
        for label, key in COLOURINGS.items():
            _colour(page, label)
            which = "latent-map-legend" if key in ("spacegroup_symbol", "split", "phosphate", "element") else \
                "latent-map-colorbar"
            assert wait_for(page, lambda: (_key_boxes(page).get(which) or {}).get("visible"), 20), label
            # the layout pass after the switch makes room for the new legend or colour bar (under load it took more
            # than 300 ms): the boxes are read once they have been the same for half a second
            assert wait_for(page, lambda: _settled(page), 20), label
            boxes = _key_boxes(page)
            box, (cw, ch) = boxes[which]["box"], boxes[which]["canvas"]
            fx, fy, fw, fh = boxes["latent-map"]["frame"]
            assert box[2] > 0 and box[3] > 0, (label, box)
            assert box[0] >= 0 and box[1] >= 0 and box[0] + box[2] <= cw + 0.5 and box[1] + box[3] <= ch + 0.5, \
                (label, box, (cw, ch))
            assert box[0] >= fx + fw - 0.5, (label, box, "over the plotting frame", (fx, fy, fw, fh))
            checked += 1
        assert checked == len(COLOURINGS)
        server.assert_clean()
    finally:
        ctx.close()


MAP_BOX = """() => { const seen = new Set(); const views = [];
  const walk = (v) => { if (!v || seen.has(v)) return; seen.add(v); views.push(v);
    for (const c of (v.child_views ?? [])) walk(c); };
  for (const k of Object.keys(Bokeh.index)) walk(Bokeh.index[k]);
  const v = views.find(v => v.model?.name === 'latent-map' && v.el?.isConnected && v.el.getBoundingClientRect().width);
  const r = v.el.getBoundingClientRect();
  return {box: [r.left, r.top, r.width, r.height], full: document.fullscreenElement !== null}; }"""


def test_full_screen_fills_the_window_with_the_map_and_the_material(browser, server):
    """The button puts the map and the details pane beside it on the whole screen (the map taller and as wide as
    the screen leaves beside the details), and the same button brings the page back."""
    from tests.dashboard.conftest import open_watched

    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        page = open_watched(ctx, server.url)
        tab(page, "Latent map")
        server.new_log()
        before = page.evaluate(MAP_BOX)
        assert not before["full"]
        button = page.get_by_role("button", name="Full screen")
        assert button.is_visible()
        button.click()
        assert wait_for(page, lambda: page.evaluate(MAP_BOX)["full"] and page.evaluate(MAP_BOX)["box"][3] >
                        before["box"][3] + 200, 20), page.evaluate(MAP_BOX)
        x, y, w, h = page.evaluate(MAP_BOX)["box"]
        assert w >= 1400 and x >= 0 and y >= 0 and x + w <= 1920 and y + h <= 1080, (x, y, w, h)
        details = page.locator(".map-details >> visible=true").first.bounding_box()
        assert details and details["x"] >= x + w - 1 and details["x"] + details["width"] <= 1920 + 1, details
        assert page.get_by_role("button", name="Leave full screen").is_visible()
        page.get_by_role("button", name="Leave full screen").click()
        assert wait_for(page, lambda: not page.evaluate(MAP_BOX)["full"], 20)
        assert wait_for(page, lambda: abs(page.evaluate(MAP_BOX)["box"][3] - before["box"][3]) < 2, 20)
        assert page.get_by_role("button", name="Full screen").is_visible()
        server.assert_clean()
    finally:
        ctx.close()


def test_a_selection_shows_its_cells_as_a_gallery_and_a_tile_opens_its_material(page, server, app_run):
    """A brush's selection (the indices a box select sends) shows the first 12 selected materials' cells with
    formula and id, says how many are shown of how many, and a tile's name opens that material beside the map."""
    from cfgp.dashboard.latent_map import GALLERY_TILES

    frame = app_run.materials.frame
    rows = [int(r) for r in frame.index[frame.is_phosphate.to_numpy(bool)][:20]]
    server.new_log()
    model_js(page, "map-source", f"(m.selected.indices = {rows}, true)")
    assert wait_for(page, lambda: "Cells of the selection" in text_of(page, ".map-gallery-text"), 20)
    assert f"showing {GALLERY_TILES} of 20 selected" in text_of(page, ".map-gallery-text")
    names = [t.strip() for t in page.locator(".gallery-open button >> visible=true").all_inner_texts()]
    want = [f"{frame.formula.iat[r]} · {frame.material_id.iat[r]}" for r in sorted(rows)[:GALLERY_TILES]]
    assert names == want
    sketches = page.locator(".gallery-sketch svg >> visible=true")
    # the sketches are panes of their own: they can reach the page a message after the names
    assert wait_for(page, lambda: sketches.count() == GALLERY_TILES, 20), sketches.count()
    assert page.locator(".gallery-sketch svg circle >> visible=true").count() >= GALLERY_TILES
    third = sorted(rows)[2]
    page.locator(".gallery-open button >> visible=true").nth(2).click()
    mid = str(frame.material_id.iat[third])
    assert wait_for(page, lambda: mid in text_of(page, ".map-details"), 30), text_of(page, ".map-details")[:300]
    page.screenshot(path=str(SHOTS / "map-gallery.png"))
    model_js(page, "map-source", "(m.selected.indices = [], true)")
    assert wait_for(page, lambda: not page.locator(".gallery-open button >> visible=true").count(), 20)
    server.assert_clean()
