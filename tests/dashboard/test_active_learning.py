"""Active-learning tab in Chromium: Step streams one curve point, Play runs at the top speed and Pause freezes at
once, a committed run replays with its own settings and a scrub slider, settings cannot wipe a live run.
Plus the tab driven in Python without a browser (its controller: tests/dashboard/test_al_controller.py; the replay
arrays: tests/test_al_replay.py)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from cfgp.dashboard.active_learning import MAX_STEPS_PER_S
from tests.dashboard.conftest import SHOTS, column, model_js, tab, view_boxes, wait_for

ENTROPY = "entropy-b1-poolall-s2"  # the committed-style entropy run of app_run (40 cycles)


# ------------------------------------------------------------------ fast, no browser
def test_tab_without_a_server_steps_replays_and_locks(app_run):
    """The same object a session gets, driven synchronously: deltas, replay arrays, locks, picks."""
    from cfgp.dashboard.active_learning import ActiveLearning
    from cfgp.dashboard.bokeh_figures import map_source
    from cfgp.dashboard.shared import SessionState, server_data

    data = server_data(app_run.dir)
    state = SessionState()
    al = ActiveLearning(data, state, map_source(data))
    al._on_step()
    assert al.cycle_label.object.startswith("**cycle 1** · labelled 151 · test MAE")
    assert len(al.curve_source.data["mae"]) == 2 and len(state.picked) == 1
    assert al.seed.disabled and "Reset to change the settings" in al.status.object
    al.seed.value = 9  # as if sent through the Bokeh model despite the disabled widget
    assert al.seed.value == 0 and al.controls.seed == 0 and "cannot change" in al.message.object
    assert al.learner.cycle == 1  # the run survived
    picked_pos = al.learner.picked[0]
    assert np.isnan(al.pool_source.data["x"][picked_pos])  # the labelled point left the pool
    al._on_reset()
    assert not al.seed.disabled and state.picked == [] and al.learner is None
    al.batch.value = 1000
    assert al.batch.value == al.controls.batch_size == 100 and "1,000" in al.message.object
    al.controls.set_values({"batch_size": 2, "seed": 4})  # the URL and the lesson set parameters: widgets follow
    assert (al.batch.value, al.seed.value) == (2, 4)
    al.controls.set_values({"batch_size": 1, "seed": 0})
    al.run_select.value = f"replay {ENTROPY}"
    assert (al.strategy.value, al.seed.value, al.batch.value, al.cycles.value) == ("entropy", 2, 1, 40)
    assert al.controls.settings_lock and al.controls.set_values({"seed": 5}) and al.seed.value == 2
    al.scrub.value = 40
    header, records = data.committed[ENTROPY]
    assert len(al.curve_source.data["mae"]) == 41 and al.curve_source.data["mae"][-1] == records[-1]["mae"]
    assert state.picked == [p for r in records[1:] for p in r["picked"]]
    al.scrub.value = 5
    assert len(al.curve_source.data["mae"]) == 6 and len(al.picked_source.data["x"]) == 5
    # a replay does no GP work: its map says it shows the starting σ; a live run's map says σ now
    assert "at the start" in al.map_fig.title.text and "at the start" in al.sigma_bar.title
    # played to the end, then scrubbed back: the status no longer says the replay is finished
    al.playing = True
    al._play.clock = (0.0, al._play.cycle)  # a clock long past: the next frame reaches the end
    al._replay_frame()
    assert al._play.cycle == 40 and al.status.object.endswith("Replay finished.")
    al.scrub.value = 12
    assert "Replay finished" not in al.status.object and len(al.curve_source.data["mae"]) == 13
    al.controls.replay_cycle = 3  # as the URL does: the slider and the curve follow
    assert al.scrub.value == 3 and len(al.curve_source.data["mae"]) == 4
    al.run_select.value = al.run_select.options[0]  # back to a live run
    assert "σ now" in al.map_fig.title.text and al.sigma_bar.title == "pool σ now (eV/atom)"


# ------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def page(open_page):
    pg = open_page()
    tab(pg, "Active learning")
    pg.locator(".al-cycle").first.wait_for(timeout=30_000)
    return pg


def _text(page, css: str) -> str:
    """Visible text of a Panel pane (its content lives in the host element's shadow root)."""
    return page.locator(css).first.evaluate(
        "e => Array.from(e.shadowRoot ? e.shadowRoot.children : [e])"
        ".filter(c => !['STYLE', 'LINK'].includes(c.tagName)).map(c => c.innerText).join(' ')")


def _label(page) -> str:
    return _text(page, ".al-cycle")


def _cycle(page) -> int:
    m = re.search(r"cycle (\d+)", _label(page))
    return int(m.group(1)) if m else -1


def _status(page) -> str:
    return _text(page, ".al-status")


def _button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def _widget_js(page, css: str, expr: str):
    """Evaluate ``expr`` on the Bokeh model of the Panel widget with css class ``css`` (``m`` in expr)."""
    return page.evaluate(
        "([css, expr]) => { for (const d of Bokeh.documents) { const ms = d._all_models ? "
        "[...d._all_models.values()] : [...d.all_models]; for (const m of ms) { if (m.css_classes && "
        "m.css_classes.includes(css) && 'value' in m) return (new Function('m', 'return ' + expr))(m); } } "
        "return null; }", [css, expr])


def _drag(page, css: str, fraction: float) -> None:
    """Drag the handle of the slider with css class ``css`` to ``fraction`` of its track, as a user would."""
    handle = page.locator(f".{css} .noUi-handle").first
    track = page.locator(f".{css} .noUi-base").first.bounding_box()
    h = handle.bounding_box()
    page.mouse.move(h["x"] + h["width"] / 2, h["y"] + h["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + fraction * track["width"], track["y"] + track["height"] / 2, steps=8)
    page.mouse.move(track["x"] + (fraction + (0.05 if fraction >= 1 else -0.05)) * track["width"],
                    track["y"] + track["height"] / 2, steps=2)
    page.mouse.up()


def _curve_len(page) -> int:
    return len(column(page, "al-curve-source", "mae") or [])


def _reset(page) -> None:
    _button(page, "Reset").click()
    assert wait_for(page, lambda: _cycle(page) == 0 and _curve_len(page) == 0, 20)


def test_step_streams_one_point_and_shows_its_mae(page, server):
    server.new_log()
    _button(page, "Step").click()
    assert wait_for(page, lambda: _cycle(page) == 1, 120), _label(page)
    assert wait_for(page, lambda: _curve_len(page) == 2, 20)
    mae = column(page, "al-curve-source", "mae")
    assert re.match(r"cycle 1 · labelled \d+ · test MAE ", _label(page))
    assert f"test MAE {mae[-1]:.4f}" in _label(page)
    _button(page, "Step").click()
    assert wait_for(page, lambda: _cycle(page) == 2 and _curve_len(page) == 3, 30), _label(page)
    assert f"test MAE {column(page, 'al-curve-source', 'mae')[-1]:.4f}" in _label(page)
    assert len(column(page, "al-picked-source", "x")) == 2  # two stars
    nan_x = [x for x in column(page, "al-pool-source", "x") if x is None or x != x]
    assert len(nan_x) == 2  # the two picks left the pool
    page.screenshot(path=str(SHOTS / "active-step.png"))
    _reset(page)
    server.assert_clean()
    assert page.console_errors == []


def test_play_at_top_speed_and_pause_stops_at_once(page, server):
    handle = page.locator(".al-speed .noUi-handle").first
    handle.focus()
    page.keyboard.press("End")
    assert wait_for(page, lambda: _widget_js(page, "al-speed", "m.value") == MAX_STEPS_PER_S, 10)
    _button(page, "▶ Play").click()
    assert wait_for(page, lambda: _cycle(page) >= 1, 120), _label(page)
    c1, t1 = _cycle(page), time.perf_counter()
    page.wait_for_timeout(2000)
    c2, t2 = _cycle(page), time.perf_counter()
    rate = (c2 - c1) / (t2 - t1)
    print(f"\nAL Play at {MAX_STEPS_PER_S} steps/s: {c2 - c1} cycles in {t2 - t1:.2f} s = {rate:.1f} steps/s in the browser")
    assert c2 - c1 >= 15, f"only {c2 - c1} cycles in {t2 - t1:.2f} s"
    try:
        _button(page, "❚❚ Pause").click()
        # once the server has taken the click (it says so), no further step reaches the page: on a loaded machine
        # the click itself can wait behind the browser's drawing (clean-clone CIs: 5 cycles came 0.5-2 s after it,
        # and 32 cycles, 1.07 s at the top speed, between the last read and the click landing)
        assert wait_for(page, lambda: "Paused" in _status(page), 10), _status(page)
        p = _cycle(page)
        page.wait_for_timeout(1500)
        a = _cycle(page)
        assert a <= p + 1, "more than the step in flight at the click landed after Pause"
        assert a <= c2 + 2 * MAX_STEPS_PER_S  # did not run on for more than ~2 s after the last read
        page.wait_for_timeout(1000)
        assert _cycle(page) == a, "the cycle moved after Pause"
        assert _curve_len(page) == a + 1
    finally:  # the next tests start from a stopped run, whatever happened here
        _button(page, "❚❚ Pause").click() if "Paused" not in _status(page) else None
        _reset(page)
    server.assert_clean()


def test_settings_cannot_wipe_a_live_run(page, server):
    seed = page.locator(".al-seed input").first
    assert wait_for(page, lambda: seed.is_enabled(), 30), "the previous test's Reset did not unlock the settings"
    _button(page, "Step").click()
    assert wait_for(page, lambda: _cycle(page) == 1, 120)
    assert wait_for(page, lambda: seed.is_disabled(), 10), "seed still editable during a live run"
    assert "Reset to change the settings" in _status(page)
    assert page.locator(".al-strategy select").first.is_disabled()
    # a value forced through the Bokeh model is refused on the server; the run lives on
    _widget_js(page, "al-seed", "(m.value = 7, true)")
    assert wait_for(page, lambda: _widget_js(page, "al-seed", "m.value") == 0, 10)
    assert wait_for(page, lambda: "cannot change during a run" in _text(page, ".al-message"), 10)
    assert _cycle(page) == 1 and _curve_len(page) == 2
    _reset(page)
    assert wait_for(page, lambda: seed.is_enabled(), 10)
    seed.fill("7")
    seed.press("Enter")
    assert wait_for(page, lambda: _widget_js(page, "al-seed", "m.value") == 7, 10)
    _button(page, "Step").click()
    assert wait_for(page, lambda: _cycle(page) == 1 and "seed 7" in _status(page), 120), _status(page)
    _reset(page)
    # out-of-range values are clamped with a message, never used
    _widget_js(page, "al-batch", "(m.value = 1000, true)")
    assert wait_for(page, lambda: _widget_js(page, "al-batch", "m.value") == 100, 10)
    assert wait_for(page, lambda: "batch size must be from 1 to 100" in
                    _text(page, ".al-message"), 10)
    _widget_js(page, "al-batch", "(m.value = 1, true)")
    assert wait_for(page, lambda: _widget_js(page, "al-batch", "m.value") == 1, 10)
    server.assert_clean()


def test_replay_shows_its_settings_and_scrubs_at_once(page, server, app_run):
    from cfgp.al import History

    _, records = History(app_run.dir / "al" / f"{ENTROPY}.jsonl").read()
    page.locator(".al-run select").first.select_option(label=f"replay {ENTROPY}")
    assert wait_for(page, lambda: page.locator(".al-strategy select").first.input_value() == "entropy", 20)
    assert wait_for(page, lambda: page.locator(".al-seed input").first.input_value() == "2", 10)
    # the lock can reach the page a message after the value
    assert wait_for(page, lambda: page.locator(".al-seed input").first.is_disabled(), 10)
    assert "Replaying the committed run" in _status(page)
    _drag(page, "al-scrub", 1.0)
    assert wait_for(page, lambda: _cycle(page) == 40 and _curve_len(page) == 41, 20), _label(page)
    assert f"test MAE {records[-1]['mae']:.4f}" in _label(page)
    # both scorings side by side: the fixed test set and, dotted, the paper's unlabelled pool
    assert f"unlabelled pool {records[-1]['pool_mae']:.4f}" in _label(page)
    assert column(page, "al-curve-source", "pool_mae") == pytest.approx([r["pool_mae"] for r in records])
    legend = model_js(page, "al-curve-legend", "m.items.map(i => (i.label.value ?? i.label))")
    assert legend[-2:] == [f"replay of {ENTROPY}", f"replay of {ENTROPY} on its unlabelled pool (paper's scoring)"]
    assert any(x.endswith("on its unlabelled pool (paper's scoring)") and x.startswith("random") for x in legend)
    # the legend lies inside the canvas and above the plotting frame: it hides no curve at any replay length
    boxes = view_boxes(page, ["al-curve", "al-curve-legend"])
    (lx, ly, lw, lh), (cw, ch) = boxes["al-curve-legend"]["box"], boxes["al-curve-legend"]["canvas"]
    fx, fy, fw, fh = boxes["al-curve"]["frame"]
    assert lw > 0 and lh > 0 and lx >= 0 and ly >= 0 and lx + lw <= cw + 0.5, (boxes, (cw, ch))
    assert ly + lh <= fy + 0.5 and fh > 150, ("legend over the curves, or no room left for them", boxes)
    assert len(column(page, "al-picked-source", "x")) == 40
    _drag(page, "al-scrub", 0.0)
    assert wait_for(page, lambda: _cycle(page) == 0 and _curve_len(page) == 1, 20)
    # Play replays many cycles per frame: the 40 cycles take well under a second
    t0 = time.perf_counter()
    _button(page, "▶ Play").click()
    assert wait_for(page, lambda: _cycle(page) == 40, 20), _label(page)
    print(f"\nreplay of 40 cycles shown in {time.perf_counter() - t0:.2f} s")
    assert _curve_len(page) == 41
    page.screenshot(path=str(SHOTS / "active-replay.png"))
    page.locator(".al-run select").first.select_option(label="live run")
    assert wait_for(page, lambda: page.locator(".al-seed input").first.is_enabled(), 10)
    assert page.locator(".al-seed input").first.input_value() == "2"  # the replayed settings, ready to run live
    server.assert_clean()
    assert page.console_errors == []
