"""One session's heavy or hostile actions do not stall another session (issue 12): while session A runs a live
t-SNE, plays active learning with the largest batch, uploads the largest legal crystal and types a regular-expression
bomb into the element box, session B's element filter still answers within about a second of its idle time."""

import re
import statistics
import time

import numpy as np

from tests.dashboard.conftest import tab, text_of, wait_for

LEGEND_STARTS = """(t) => { for (const d of Bokeh.documents) { const m = d.get_model_by_name('latent-map-legend');
  if (m && m.visible && m.items.some(i => String(i.label.value ?? i.label).startsWith(t))) return true; }
  return false; }"""
SYMBOLS = ["Li", "Mg", "Fe", "Na", "Ca", "Ti", "Zn", "Mn", "Co", "Ni", "Cu", "Al"]


def _element_latency(page, symbol: str) -> float:
    """Seconds from Enter in the element box to the legend naming the element, polled in the browser."""
    box = page.locator(".map-element input >> visible=true").first
    box.fill(symbol)
    t0 = time.perf_counter()
    page.keyboard.press("Enter")
    page.wait_for_function(LEGEND_STARTS, arg=f"contains {symbol} (", polling=20, timeout=120_000)
    return time.perf_counter() - t0


def _largest_legal_supercell(records, path):
    """A real crystal of the fixture repeated up to the upload's site limit."""
    from pymatgen.core import Structure

    from cfgp.structure_checks import MAX_SITES

    rec = max((r for r in records if r["nsites"] <= 20), key=lambda r: r["nsites"])
    s = Structure.from_str(rec["cif"], fmt="cif")
    best = (1, 1, 1)
    for a in range(1, 11):
        for b in range(a, 11):
            for c in range(b, 11):
                if len(s) * a * b * c <= MAX_SITES and a * b * c > np.prod(best):
                    best = (a, b, c)
    s.make_supercell(best)
    path.write_text(s.to(fmt="cif"))
    return len(s)


def test_a_busy_session_does_not_stall_another(open_page, server, small_records, tmp_path):
    server.new_log()
    a, b = open_page(), open_page()
    for pg in (a, b):
        tab(pg, "Latent map")
        pg.locator("select >> visible=true").first.select_option(label="element")
    idle = [_element_latency(b, s) for s in SYMBOLS[:4]]

    # session A: everything heavy at once
    a.get_by_role("button", name="Recompute t-SNE live").click()
    box = a.locator(".map-element input >> visible=true").first
    box.fill("(\\w|\\w|\\w|\\w)*!")
    a.keyboard.press("Enter")
    tab(a, "Active learning")
    a.wait_for_timeout(450)  # A's actions spaced as when a tab switch waited 700 ms (the spike bounds were set so)
    # the tab's models reach the browser when it is first shown (dynamic tabs): set the batch once it is there
    assert wait_for(a, lambda: a.evaluate(
        "() => { for (const d of Bokeh.documents) for (const m of (d._all_models ? [...d._all_models.values()] : "
        "[...d.all_models])) if ((m.css_classes ?? []).includes('al-batch') && 'value' in m) "
        "{ m.value = 100000; return true; } return false; }"), 30)
    a.get_by_role("button", name="▶ Play", exact=True).click()
    tab(a, "Predict")
    a.wait_for_timeout(450)
    big = tmp_path / "big.cif"
    n_sites = _largest_legal_supercell(small_records, big)
    a.locator("input[type=file] >> visible=true").set_input_files(str(big))

    busy = [_element_latency(b, s) for s in SYMBOLS[4:]]
    print(f"\nelement filter in session B: idle {[round(x, 2) for x in idle]} s; while A is busy "
          f"({n_sites}-site upload, live t-SNE, AL batch 100 at top speed): {[round(x, 2) for x in busy]} s")
    # A stall (A's work on the shared event loop) delays B for as long as that work runs, seconds, at every
    # interaction it overlaps. In the full suite (a server that has served ~150 sessions, 2 cores shared with
    # pytest and Chromium) one of B's 8 changes took 1.12-1.27 s in two CI runs, the others 0.14-0.38 s: one
    # such hiccup is tolerated (under 2 s), not two.
    spikes = sorted(busy)
    assert spikes[-2] <= statistics.median(idle) + 1.0 and spikes[-1] <= statistics.median(idle) + 2.0, (idle, busy)
    # the typical change: A's t-SNE and AL steps take CPU from B on 2 cores (every change of B a few tenths of a
    # second slower, 0.47-0.88 s against 0.20-0.42 s idle in one full-suite run), but no stall of seconds
    assert statistics.median(busy) <= statistics.median(idle) + 0.6, (idle, busy)

    # A's actions really ran: its upload was predicted, its batch size clamped, its run played, its regex refused
    assert wait_for(a, lambda: "eV/atom" in text_of(a, ".prediction"), 300), text_of(a, ".prediction")
    tab(a, "Active learning")
    batch = ("() => { for (const d of Bokeh.documents) for (const m of (d._all_models ? "
             "[...d._all_models.values()] : [...d.all_models])) "
             "if ((m.css_classes ?? []).includes('al-batch') && 'value' in m) return m.value; }")
    assert wait_for(a, lambda: a.evaluate(batch) == 100, 30), a.evaluate(batch)  # clamped, and the browser told
    assert wait_for(a, lambda: re.search(r"cycle [1-9]", text_of(a, ".al-cycle")), 300), text_of(a, ".al-cycle")
    a.get_by_role("button", name="❚❚ Pause", exact=True).click()
    tab(a, "Latent map")
    assert wait_for(a, lambda: "not an element symbol" in text_of(a, ".map-message"), 30), text_of(a, ".map-message")
    server.assert_clean()


def test_the_heap_is_frozen_by_a_served_page_not_by_a_notebook_or_script():
    """freeze_server_heap (why: its docstring and benchmarks/session_gc.py) acts only in a server session: a
    notebook kernel or a script calling create_app keeps its garbage collector as it was."""
    import gc

    from cfgp.dashboard.shared import freeze_server_heap

    before = gc.get_freeze_count()
    assert freeze_server_heap() is False
    assert gc.get_freeze_count() == before
