"""Active-learning tab: a live run of the real incremental GP update, or a replay of a committed run.

Why it is built this way: the old tab re-rendered two HoloViews plots (and the 16k-point map) on every
step, so "20 steps/s" ran at ~1 step/s and updates queued up behind a Pause. Here the two Bokeh figures
are built once per session and each step sends deltas only: one streamed point of the MAE curve and the
status line every step; for the map, a patch of the pool points whose σ changed visibly and the new picks
streamed as stars, sent every step when stepping and at most :data:`MAP_HZ` times a second when playing
(a browser without a GPU needs ~150 ms to repaint ~20k points). A periodic callback runs one step per
tick at the chosen speed (a few more when ticks came late, never a backlog); slow GP steps run on a
worker thread and a tick that finds one in flight is skipped, so nothing queues and Pause stops at once.
A replay needs no GP work: the committed records hold the picks and metrics, so a frame can advance
many cycles and the scrub slider jumps anywhere with one data replacement.
"""
from __future__ import annotations

import contextlib
import threading
import time
import weakref
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import (CDSView, ColorBar, ColumnDataSource, CustomJSHover, HoverTool, IndexFilter, Legend,
                          LegendItem, LinearColorMapper)
from bokeh.palettes import Plasma256
from bokeh.plotting import figure
from panel.io.state import set_curdoc

from cfgp.al import STRATEGIES
from cfgp.al_replay import (Replay, ReplayPlayback, background_rows, band_for, pool_rows, random_bands,
                            replay_of)
from cfgp.dashboard import untrusted
from cfgp.dashboard.al_controller import LIMITS, LIVE, LIVE_LOCK, LOCKED, REPLAY_LOCK, SETTINGS, ALController
from cfgp.dashboard.al_live import STEPS, LiveRun
from cfgp.dashboard.bokeh_figures import FIGURE_MIN_WIDTH, map_figure
from cfgp.dashboard.downloads import csv_bytes, download_button, figure_downloads
from cfgp.dashboard.shared import ServerData, SessionState, controls, note, on_session_end, on_session_tick
from cfgp.gp import device_label
from cfgp.mpl_figures import al_curves_figure
from cfgp.pipeline import active_learner
from cfgp.palette import BACKGROUND, HIGHLIGHT, LATEST, NEUTRAL

MAX_STEPS_PER_S = 30
#: most map repaints per second while playing: each repaints ~20k points (the curve and label follow every step)
MAP_HZ = 4
#: most grey background points drawn on the AL map (a seeded subsample of the shared map source, by index)
MAX_BACKGROUND = 6000
#: a replay draws at most this many frames per second and advances as many cycles per frame as its speed needs
REPLAY_FPS = 20
MAX_REPLAY_SPEED = 300
#: a pool point's colour is re-sent when its σ moved by more than this fraction of the colour range
SIGMA_PATCH_FRACTION = 0.005
#: the curve and the map side by side, as tall as a 900-px laptop window shows below the controls (the curve's
#: legend takes ~85 px of it, above the axes)
PLOT_HEIGHT = 400
CURVE_COLOUR = HIGHLIGHT
BAND_COLOUR = NEUTRAL
#: the pool map's title and colour bar: a live run shows σ after each update, a replay the starting σ (no GP work)
#: short enough for the map's width beside the curve (a 1366-px window with the lesson open, projector type); the
#: status line says why a replay shows the starting σ (it does no GP work)
MAP_TITLES = {"live": "Pool by σ now; ★ labelled", "replay": "Pool by σ at the start; ★ labelled"}
COLOUR_BAR_TITLES = {"live": "pool σ now (eV/atom)", "replay": "pool σ at the start (eV/atom)"}
LATEST_COLOUR = LATEST



def band_title(band: dict) -> str:
    """How the legend and the exported figure name a committed random band."""
    return f"committed {band['label']}: mean ± 2σ ({band['seeds']} seed{'s' if band['seeds'] != 1 else ''})"


# ------------------------------------------------------------------ per-server precomputation
@dataclass(frozen=True)
class Precomputed:
    """What every session of a server reads: replays, the random band, the pool split."""

    replays: dict[str, Replay]
    bands: list[dict]
    pool_rows: np.ndarray
    sigma_limits: tuple[float, float]
    background_rows: np.ndarray | None  # None: draw every material


_PRE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PRE_LOCK = threading.Lock()


def precomputed(data: ServerData) -> Precomputed:
    """Built once per server (a few ms for 16 committed runs), then shared read-only."""
    with _PRE_LOCK:
        pre = _PRE.get(data)
        if pre is None:
            f = data.frame
            formulas = f["formula"].to_numpy(dtype=object)
            replays = {stem: replay_of(stem, h, recs, data.row_of_id, formulas)
                       for stem, (h, recs) in data.committed.items()}
            bands = random_bands(data.al_histories)
            pool = pool_rows(f["split"].to_numpy(), data.xy, f["sigma"].to_numpy(float))
            background = background_rows(data.xy, MAX_BACKGROUND)
            pre = Precomputed(replays, bands, pool, data.colour_limits["sigma"], background)
            _PRE[data] = pre
        return pre


#: how the legend names the pool-scored curves (the paper's protocol, beside the fixed test set's)
POOL_SCORED = "on its unlabelled pool (paper's scoring)"


def label_text(cycle: int, n_train: int, mae: float, coverage: float, seconds: float, what: str = "last step",
               pool_mae: float = float("nan")) -> str:
    """The status line; tests and the benchmark read 'cycle N · labelled M · test MAE x'. The pool-scored MAE
    (the paper's scoring) follows when the record has it."""
    pool = f" · unlabelled pool {pool_mae:.4f}" if np.isfinite(pool_mae) else ""
    return (f"**cycle {cycle}** · labelled {n_train:,} · test MAE {mae:.4f} eV/atom{pool} · 2σ coverage "
            f"{coverage:.3f} · {what} {1000 * seconds:.1f} ms")


# ------------------------------------------------------------------ the tab
class ActiveLearning(pn.viewable.Viewer):
    """Live active learning (Play / Pause / Step at 1–20 steps/s) and replays of committed runs."""

    mode = param.Selector(default="live", objects=["live", "replay"], doc="live run or replay of a committed one")
    playing = param.Boolean(default=False, doc="the periodic callback is running")

    def __init__(self, data: ServerData, state: SessionState, source: ColumnDataSource, **params):
        params.setdefault("name", "Active learning")
        super().__init__(**params)
        self.data, self.state, self.map_source = data, state, source
        self.pre = precomputed(data)
        self._doc = pn.state.curdoc
        #: served by a Bokeh server: GP work on threads, results back on the event loop; else (a notebook, a
        #: test) everything runs synchronously
        self._served = self._doc is not None and self._doc.session_context is not None
        # session state (small): the learner, the σ last sent per pool point, the replay position
        self._live: LiveRun | None = None  # the live run, once its learner is built
        self._gen = 0  # bumps on reset: results of older work are dropped
        self._building = False
        self._busy = False  # a GP step is in flight
        self._missed = False  # a tick found the step still in flight
        self._intent = None  # "play" or "step" once the learner is built
        self._timer = None
        self._syncing = False  # the server itself is setting widget values
        #: the settings and run choice; the widgets, the URL and the lesson set these parameters
        self.controls = ALController(self.pre.replays)
        self._play: ReplayPlayback | None = None  # the replay shown (replay mode only)
        self._map_sent_at = 0.0
        self._lock_state = None
        self._build_widgets()
        self._build_figures()
        self._show_pool_split()
        self._show_start()
        on_session_end(self._cleanup)

    # ------------------------------------------------------------ construction
    def _build_widgets(self) -> None:
        c = self.controls
        self.run_select = pn.widgets.Select(label="run", options=c.param.run.objects, value=c.run, width=320,
                                            css_classes=["al-run"])
        self.strategy = pn.widgets.Select(label="strategy", options=sorted(STRATEGIES), value=c.strategy, width=150,
                                          css_classes=["al-strategy"])
        self.seed = pn.widgets.IntInput(label="seed", value=c.seed, start=LIMITS["seed"][0], width=90,
                                        css_classes=["al-seed"])
        self.batch = pn.widgets.IntInput(label="batch size", value=c.batch_size, start=LIMITS["batch_size"][0],
                                         end=LIMITS["batch_size"][1], width=90, css_classes=["al-batch"])
        self.cycles = pn.widgets.IntInput(label="cycles", value=c.cycles, start=LIMITS["cycles"][0],
                                          end=LIMITS["cycles"][1], width=90, css_classes=["al-cycles"])
        self.settings_widgets = {"strategy": self.strategy, "seed": self.seed, "batch_size": self.batch,
                                 "cycles": self.cycles}
        self.play_button = pn.widgets.Button(label="▶ Play", color="success", width=90)
        self.pause_button = pn.widgets.Button(label="❚❚ Pause", color="warning", width=90)
        self.step_button = pn.widgets.Button(label="Step", color="primary", width=80)
        self.reset_button = pn.widgets.Button(label="Reset", width=80)
        self.speed = pn.widgets.IntSlider(label="steps per second", start=1, end=MAX_STEPS_PER_S, value=10, width=180,
                                          css_classes=["al-speed"])
        self.replay_speed = pn.widgets.IntSlider(label="replay speed (cycles/s)", start=5,
                                                 end=MAX_REPLAY_SPEED, step=5, value=MAX_REPLAY_SPEED, width=220,
                                                 visible=False, css_classes=["al-replay-speed"])
        self.scrub = pn.widgets.IntSlider(label="replay cycle", start=0, end=1, value=0, width=260, visible=False,
                                          css_classes=["al-scrub"])
        self.status = pn.pane.Markdown("", name="al-status", css_classes=["al-status"])
        self.cycle_label = pn.pane.Markdown("", name="al-cycle", css_classes=["al-cycle"])
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, css_classes=["al-message"])
        self.play_button.on_click(self._on_play)
        self.pause_button.on_click(self._on_pause)
        self.step_button.on_click(self._on_step)
        self.reset_button.on_click(self._on_reset)
        self.speed.param.watch(self._on_speed, "value")
        self.replay_speed.param.watch(self._on_replay_speed, "value")
        # widgets -> parameters (checked there), parameters -> widgets and the tab
        self.scrub.param.watch(self._on_scrub_widget, "value")
        self.run_select.param.watch(self._on_run_widget, "value")
        for key, w in self.settings_widgets.items():
            w.param.watch(partial(self._on_setting_widget, key), "value")
        c.param.watch(self._on_settings, list(SETTINGS))
        c.param.watch(self._on_run, "run")
        c.param.watch(self._on_scrub, "replay_cycle")

    def _build_figures(self) -> None:
        # MAE vs labels: the committed random band drawn once, this run's curve streamed point by point
        self.history_download = download_button(
            "Download run (CSV)", "active-learning.csv", lambda: csv_bytes(self.history_frame()), "al-download",
            width=180)
        self.curve_downloads = figure_downloads("curves", "al-curves", self.export_curves, "al-figure")
        self.curve_source = ColumnDataSource({"labels": [], "mae": [], "cycle": [], "coverage": [], "pool_mae": []},
                                             name="al-curve-source")
        fig = figure(title="MAE vs labels added", name="al-curve", height=PLOT_HEIGHT, sizing_mode="stretch_width",
                     width=FIGURE_MIN_WIDTH, min_width=FIGURE_MIN_WIDTH,
                     tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above",
                     x_axis_label="labels added", y_axis_label="MAE (eV/atom)")
        items = []
        # every committed random band is drawn once; one is shown at a time, the one the run on screen is measured
        # against (band_for: random under the same settings, e.g. with the network fine-tuned alike)
        self._band_parts: dict[str, list] = {}
        for band in self.pre.bands:
            src = ColumnDataSource({k: band[k] for k in ("labels", "mean", "lower", "upper")},
                                   name=f"al-band-source-{band['label']}")
            area = fig.varea("labels", "lower", "upper", source=src, fill_color=BAND_COLOUR, fill_alpha=0.25,
                             name=f"al-band-area-{band['label']}")
            line = fig.line("labels", "mean", source=src, line_color=BAND_COLOUR, line_width=2, line_dash="dashed")
            parts = [area, line, LegendItem(label=band_title(band),
                                            renderers=[area, line])]
            if np.isfinite(band["pool_mean"]).any():
                pool = fig.line("labels", "pool_mean", source=ColumnDataSource(
                    {"labels": band["labels"], "pool_mean": band["pool_mean"]}, name=f"al-band-pool-{band['label']}"),
                    line_color=BAND_COLOUR, line_width=2, line_dash="dotted")
                parts += [pool, LegendItem(label=f"{band['label']} {POOL_SCORED}", renderers=[pool])]
            items += [p for p in parts if isinstance(p, LegendItem)]
            self._band_parts[band["label"]] = parts
        self.shown_band = band_for(self.controls.settings().to_dict(), self.pre.bands)
        self._show_band(self.shown_band)
        live = fig.line("labels", "mae", source=self.curve_source, line_color=CURVE_COLOUR, line_width=3)
        dots = fig.scatter("labels", "mae", source=self.curve_source, size=4, color=CURVE_COLOUR)
        pooled = fig.line("labels", "pool_mae", source=self.curve_source, line_color=CURVE_COLOUR, line_width=2,
                          line_dash="dotted")
        self.curve_item = LegendItem(label="this run", renderers=[live, dots])
        self.pool_item = LegendItem(label=f"this run {POOL_SCORED}", renderers=[pooled])
        # above the axes: inside the plot every corner hides a curve at some replay length (the pool-scored curves
        # of a 6,000-pick replay cross the bottom left between 2,000 and 4,000 labels), below them it falls out of
        # a laptop's window, and the labels are too long for two columns. "bottom_right" of that side panel: a
        # "top_*" legend is pushed down by twice its margin, onto the frame's top edge (Bokeh 3.9)
        fig.add_layout(Legend(items=[*items, self.curve_item, self.pool_item], location="bottom_right",
                              label_text_font_size="12px", spacing=0, padding=4, border_line_alpha=0,
                              name="al-curve-legend"), "above")
        fig.add_tools(HoverTool(renderers=[dots], tooltips=[("cycle", "@cycle"), ("labels added", "@labels materials"),
                                                            ("test MAE", "@mae{0.0000} eV/atom"),
                                                            ("MAE on the unlabelled pool", "@pool_mae{0.0000} eV/atom"),
                                                            ("2σ coverage", "@coverage{0.000} (fraction)")]))
        self.curve_fig = fig

        # the map: grey background = the session's shared map source (already in the browser)
        mfig, background = map_figure(self.map_source, MAP_TITLES["live"], "al-map", height=PLOT_HEIGHT)
        for g in (background.glyph, background.selection_glyph, background.nonselection_glyph):
            g.fill_color, g.fill_alpha, g.size = BACKGROUND, 0.5, 3
        if self.pre.background_rows is not None:  # the shape of the map needs only a subsample: fewer to repaint
            background.view = CDSView(filter=IndexFilter(self.pre.background_rows.tolist()))
        # canvas, not WebGL: a browser without a GPU (headless Chromium, many school laptops) repaints ~20k
        # points ~4x faster on a canvas (measured 150 ms against 620 ms)
        mfig.output_backend = "canvas"
        lo, hi = self.pre.sigma_limits
        self.sigma_mapper = LinearColorMapper(palette=Plasma256, low=lo, high=hi, nan_color="rgba(0,0,0,0)")
        self._sigma_step = SIGMA_PATCH_FRACTION * max(hi - lo, 1e-12)
        self.pool_source = ColumnDataSource({"x": [], "y": [], "sigma": [], "row": []}, name="al-pool-source")
        pool = mfig.scatter("x", "y", source=self.pool_source, size=5, line_color=None, name="al-pool-points",
                            fill_color={"field": "sigma", "transform": self.sigma_mapper})
        self.picked_source = ColumnDataSource({"x": [], "y": [], "material_id": [], "formula": [], "cycle": []},
                                              name="al-picked-source")
        stars = mfig.scatter("x", "y", source=self.picked_source, marker="star", size=11, fill_color="black",
                             line_color="white", line_width=0.5, name="al-picked-points")
        self.latest_source = ColumnDataSource({"x": [], "y": []}, name="al-latest-source")
        mfig.scatter("x", "y", source=self.latest_source, marker="circle", size=18, fill_alpha=0,
                     line_color=LATEST_COLOUR, line_width=3, name="al-latest-points")
        self.sigma_bar = ColorBar(color_mapper=self.sigma_mapper, title=COLOUR_BAR_TITLES["live"], width=12,
                                  name="al-map-colorbar")
        mfig.add_layout(self.sigma_bar, "right")
        # the pool source holds no strings: hover looks names up in the map source the browser already has
        lookup = CustomJSHover(args={"src": self.map_source}, code=(
            "const d = src.data; const col = (k) => (d instanceof Map ? d.get(k) : d[k]);"
            "return col('material_id')[value] + ' ' + col('formula')[value];"))
        mfig.add_tools(HoverTool(renderers=[pool], tooltips=[("material", "@row{custom}"),
                                                             ("σ", "@sigma{0.000} eV/atom")],
                                 formatters={"@row": lookup}),
                       HoverTool(renderers=[stars], tooltips=[("picked", "@material_id @formula"),
                                                              ("cycle", "@cycle")]))
        self.map_fig = mfig

    # ------------------------------------------------------------ small helpers
    def _hold(self):
        return pn.io.hold(self._doc) if self._served else contextlib.nullcontext()

    def _warn(self, message: str) -> None:
        """Show a plain-text message (escaped: it may quote a setting or an error)."""
        self.message.object, self.message.visible = untrusted.text(message), True
        notes = getattr(pn.state, "notifications", None)
        if notes is not None:
            try:
                notes.warning(untrusted.text(message), duration=6000)
            except Exception:  # notifications are a nicety; the alert above already shows the message
                pass

    def _set_widget(self, widget, value) -> None:
        """Show a value the server chose (the widget's own watcher ignores it)."""
        syncing, self._syncing = self._syncing, True
        try:
            widget.value = value
        finally:
            self._syncing = syncing

    @property
    def learner(self):
        """The live run's learner (None before Step or Play, and in a replay)."""
        return self._live.learner if self._live is not None else None

    def _steps_taken(self) -> int:
        return self.learner.cycle if self.learner is not None else 0

    def _locked(self) -> bool:
        """Settings are frozen while a live run exists beyond cycle 0 (or is being built) and during a replay."""
        return self.mode == "replay" or self._live_under_way()

    def _live_under_way(self) -> bool:
        return self.mode == "live" and (self._building or self._busy or self._steps_taken() > 0)

    def _update_locks(self) -> None:
        locks = (self._locked(), self._live_under_way())
        if locks == self._lock_state:
            return
        self._lock_state = locks
        self.controls.settings_lock = "" if not locks[0] else LIVE_LOCK if self.mode == "live" else REPLAY_LOCK
        self.controls.run_lock = f"A live run is under way: {LOCKED}" if locks[1] else ""
        with self._hold():
            for w in self.settings_widgets.values():
                w.disabled = locks[0]
            self.run_select.disabled = locks[1]

    def _sync_widget(self, widget, value) -> None:
        if widget.value != value:
            self._set_widget(widget, value)

    # ------------------------------------------------------------ timer
    def _start_timer(self, period_ms: int) -> None:
        self._stop_timer()
        if self._served:
            self._timer = ("doc", self._doc.add_periodic_callback(self._tick, period_ms))
        else:  # a notebook: Panel's own periodic callback
            self._timer = ("panel", pn.state.add_periodic_callback(self._tick, period=period_ms))
        self.playing = True

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        self.playing = False
        if timer is None:
            return
        kind, cb = timer
        try:
            if kind == "doc":
                self._doc.remove_periodic_callback(cb)
            else:
                cb.stop()
        except ValueError:  # already gone with the session
            pass

    def _tick(self) -> None:
        if self._timer is None:
            return
        with set_curdoc(self._doc):
            try:
                self._tick_body()
            except Exception as exc:  # never a traceback 20 times a second: stop and say what went wrong
                self._stop_timer()
                self._busy = False
                self._warn(f"Stopped: {exc}")

    def _tick_body(self) -> None:
        """A replay frame, or one live step (a few when ticks came late)."""
        if self.mode == "replay":
            self._replay_frame()
            return
        n = 1
        if self._live is not None and not self._busy:  # a late tick (busy CPU) catches up a few steps
            n = self._live.steps_due(self.speed.value, time.perf_counter())
        for _ in range(n):
            self._live_step()


    # ------------------------------------------------------------ buttons
    def _on_play(self, _=None) -> None:
        self.message.visible = False
        if self.mode == "replay":
            if self._play.finished:
                self._show_replay_cycle(0)
            self._play.start_clock(time.perf_counter())
            self._start_timer(int(1000 / REPLAY_FPS))
            return
        if self.learner is None:
            self._intent = "play"
            self._build()
            return
        if self._finished():
            self._warn("This run is finished. Reset to start a new one.")
            return
        self._start_live_timer()

    def _start_live_timer(self) -> None:
        """One step per tick at the chosen speed; the clock lets a late tick catch up."""
        self._live.start_clock(time.perf_counter())
        self._start_timer(int(round(1000 / max(1, min(MAX_STEPS_PER_S, self.speed.value)))))

    def _on_pause(self, _=None) -> None:
        self._intent = None
        self._stop_timer()
        self._flush_map(force=True)
        if self.mode == "live" and self.learner is not None:
            self.status.object = self._live_status("Paused")

    def _on_step(self, _=None) -> None:
        self._stop_timer()
        self.message.visible = False
        if self.mode == "replay":
            if not self._play.finished:
                self._advance_replay(self._play.cycle + 1)
            return
        if self.learner is None:
            self._intent = "step"
            self._build()
            return
        self._live_step()

    def _on_reset(self, _=None) -> None:
        self._stop_timer()
        self._drop_learner()
        self.message.visible = False
        if self.mode == "replay":
            self._show_replay_cycle(0)
        else:
            self._show_pool_split()
            self._show_start()
        self._update_locks()

    def _on_speed(self, event) -> None:
        if self.playing and self.mode == "live":
            self._start_live_timer()

    def _on_replay_speed(self, _event) -> None:
        if self._play is not None:
            self._play.start_clock(time.perf_counter())  # the new speed counts from now

    # ------------------------------------------------------------ settings and run selection
    def _on_setting_widget(self, key: str, event) -> None:
        """A widget's value goes to its parameter (clamped or refused there); the widget then shows the result."""
        if self._syncing:
            return
        messages = self.controls.set_values({key: event.new})
        if messages:
            self._warn(" ".join(messages))
        else:
            self.message.visible = False
        self._sync_widget(self.settings_widgets[key], getattr(self.controls, key))

    def _on_settings(self, *events) -> None:
        for e in events:
            self._sync_widget(self.settings_widgets[e.name], e.new)
        if self.learner is not None:  # a learner at cycle 0 has taken no step: rebuild it with the new settings
            self._drop_learner()
            self._show_start()

    def _on_run_widget(self, event) -> None:
        if self._syncing:
            return
        problem = self.controls.choose_run(event.new)
        if problem:
            self._warn(problem)
        self._sync_widget(self.run_select, self.controls.run)

    def _on_run(self, event) -> None:
        self._sync_widget(self.run_select, event.new)
        self._stop_timer()
        self._drop_learner()
        self.message.visible = False
        stem = self.controls.replay_stem
        if stem is not None and stem in self.pre.replays:
            self._enter_replay(self.pre.replays[stem])
        else:
            self._enter_live()

    def _enter_replay(self, replay: Replay) -> None:
        self.mode, self._play = "replay", ReplayPlayback(replay)
        s = replay.settings
        self.controls.show_run_settings(replay.run_settings)  # the widgets follow: the replayed run's settings
        with self._hold():
            self.speed.visible = False
            self.replay_speed.visible = self.scrub.visible = True
            self._syncing = True
            try:
                self.scrub.param.update(start=0, end=max(1, replay.n_cycles), value=0)
                self.controls.replay_cycle = 0
            finally:
                self._syncing = False
            self.curve_item.label = {"value": f"replay of {replay.stem}"}
            self.pool_item.label = {"value": f"replay of {replay.stem} {POOL_SCORED}"}
            self._show_band(band_for(s, self.pre.bands))
            self._title_map("replay")
            self._show_pool_split()
            self._show_replay_cycle(0)
            pool = s.get("pool_size")
            t = untrusted.text  # a file name and its header's values
            tuned = s.get("finetune_every")
            network = ("" if tuned is None else
                       f" MEGNet was fine-tuned and every material re-featurised every {t(tuned)} picks during this "
                       "run, so σ changed with the labels; the map places the picks by the shipped network's latents.")
            self.status.object = (
                f"Replaying the committed run **{t(replay.stem)}**: {t(s.get('strategy'))}, batch "
                f"{t(s.get('batch_size'))}, seed {t(s.get('seed'))}, pool {'all' if pool is None else t(pool)}, "
                f"{replay.n_cycles:,} cycles.{network} No GP "
                f"work is needed (the records hold the picks and metrics); the map shows the starting σ. Drag "
                f"“replay cycle” to jump; choose “{LIVE}” to change the settings.")
        self._update_locks()

    def _show_band(self, label: str | None) -> None:
        """Show the committed random band ``label`` (its area, lines and legend rows) and hide the others."""
        self.shown_band = label
        for key, parts in self._band_parts.items():
            for part in parts:
                if part.visible != (key == label):
                    part.visible = key == label

    def _enter_live(self) -> None:
        self.mode, self._play = "live", None
        with self._hold():
            self._show_band(band_for(self.controls.settings().to_dict(), self.pre.bands))
            self.speed.visible = True
            self.replay_speed.visible = self.scrub.visible = False
            self.curve_item.label = {"value": "this run"}
            self.pool_item.label = {"value": f"this run {POOL_SCORED}"}
            self._title_map("live")
            self._show_pool_split()
            self._show_start()
        self._update_locks()

    # ------------------------------------------------------------ live run
    def _build(self) -> None:
        """Build the learner off the event loop (conditioning the GP takes seconds on the default run)."""
        if self._building:
            return
        settings = self.controls.settings()
        self._building = True
        self._update_locks()
        self.status.object = (f"Preparing a live run ({settings.strategy}, batch {settings.batch_size}, seed "
                              f"{settings.seed}): conditioning the GP on the training materials…")
        gen, doc, data = self._gen, (self._doc if self._served else None), self.data

        def work():
            try:
                # no lock: the learner conditions its own copy of the GP, so other sessions never wait on it
                learner = active_learner(data.run, settings, data.gp)
                rec0 = learner.record()
                sigma = learner.posterior.std[: learner.n_pool].astype(np.float32)
                result = (learner, rec0, sigma, None)
            except Exception as exc:  # shown as a message; the session lives on
                result = (None, None, None, exc)
            on_session_tick(doc, partial(self._on_built, gen, *result))

        if self._served:
            threading.Thread(target=work, daemon=True, name="al-build").start()
        else:
            work()

    def _on_built(self, gen, learner, rec0, sigma, error) -> None:
        if gen != self._gen:
            return  # reset (or the session ended) while building
        self._building = False
        if error is not None:
            self._intent = None
            self._update_locks()
            self._warn(f"Could not start the live run: {error}")
            self.status.object = "Press Step or Play to start a live run."
            return
        self._live = LiveRun(learner, sigma, self._sigma_step, rec0["n_train"])
        rows = np.asarray(learner.pool_index)
        xy = self.data.xy[rows]
        with self._hold():
            self.pool_source.data = {"x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32),
                                     "sigma": sigma, "row": rows.astype(np.int32)}
            self.curve_source.data = {"labels": [0], "mae": [rec0["mae"]], "cycle": [0], "pool_mae": [rec0["pool_mae"]],
                                      "coverage": [rec0["coverage_2sigma"]]}
            self.picked_source.data = {"x": [], "y": [], "material_id": [], "formula": [], "cycle": []}
            self.latest_source.data = {"x": [], "y": []}
            self._show_record(rec0)
            self.status.object = self._live_status("Ready")
        intent, self._intent = self._intent, None
        if intent == "play":
            self._start_live_timer()
            self._live_step()
        elif intent == "step":
            self._live_step()
        self._update_locks()

    def _finished(self) -> bool:
        return self._live is None or self._live.finished

    def _live_step(self) -> None:
        """One GP step: inline when steps are fast (a thread hand-off would cost more than the step), else on the
        worker pool unless one is in flight (a slow step skips ticks, never queues)."""
        if self.learner is None:
            return
        if self._busy:  # the tick comes back once the step lands (at most one: nothing piles up)
            self._missed = self.playing
            return
        if self._finished():
            self._stop_timer()
            self.status.object = self._live_status("Finished")
            return
        self._busy, self._missed = True, False
        self._update_locks()
        gen, doc = self._gen, (self._doc if self._served else None)
        live = self._live
        if not self._served or live.inline:
            try:
                payload, error = live.step_work(), None
            except Exception as exc:  # a failed step becomes a message
                payload, error = None, exc
            self._apply_step(gen, payload, error)
            return
        fut = STEPS.submit(live.step_work)

        def done(f):
            try:
                payload, error = f.result(), None
            except Exception as exc:  # a failed step becomes a message
                payload, error = None, exc
            on_session_tick(doc, partial(self._apply_step, gen, payload, error))

        fut.add_done_callback(done)

    def _apply_step(self, gen, payload, error) -> None:
        if gen != self._gen:
            return
        self._busy = False
        if error is not None:
            self._stop_timer()
            self._warn(f"Active-learning step failed: {error}")
            self.status.object = self._live_status("Stopped")
            self._update_locks()
            return
        rec = payload["rec"]
        ids = [str(i) for i in rec["picked"]]
        self._live.landed(payload)
        with self._hold():
            self.curve_source.stream({"labels": [rec["n_train"] - self._live.n0], "mae": [rec["mae"]],
                                      "pool_mae": [rec["pool_mae"]],
                                      "cycle": [rec["cycle"]], "coverage": [rec["coverage_2sigma"]]})
            self._show_record(rec)
            if self._finished():
                self._stop_timer()
                self.status.object = self._live_status("Finished")
            elif rec["cycle"] == 1:
                self.status.object = self._live_status("Running")
            self._flush_map(force=not self.playing)
        if ids:
            self.state.picked = [*self.state.picked, *ids]
        self._update_locks()
        if self._missed and self.playing:  # a tick came while this step was in flight: catch up once
            self._live_step()

    # ------------------------------------------------------------ map deltas, sent at most MAP_HZ times a second
    def _flush_map(self, force: bool = False) -> None:
        """Send the queued map deltas: every step when stepping, at most MAP_HZ times a second when playing
        (a repaint of ~20k points costs the browser far more than a step costs the server)."""
        now = time.perf_counter()
        if not force and now - self._map_sent_at < 1 / MAP_HZ:
            return
        self._map_sent_at = now
        if self.mode == "replay":
            self._flush_replay_map()
            return
        p = self._live.take() if self._live is not None else None
        if p is None:
            return
        with self._hold():
            if p["column"] is not None:
                self.pool_source.data["sigma"] = p["column"]
            if p["sigma"]:
                self.pool_source.patch({"sigma": list(p["sigma"].items())})
            if p["hide"]:  # labelled points leave the pool: no coordinates, nothing drawn or hovered
                self.pool_source.patch({"x": [(i, float("nan")) for i in p["hide"]]})
            if p["rows"]:
                rows = np.asarray(p["rows"], dtype=int)
                xy = self.data.xy[rows]
                f = self.data.frame
                self.picked_source.stream({"x": xy[:, 0], "y": xy[:, 1],
                                           "material_id": f["material_id"].to_numpy(dtype=object)[rows].tolist(),
                                           "formula": f["formula"].to_numpy(dtype=object)[rows].tolist(),
                                           "cycle": p["cycles"]})
                latest = self.data.xy[np.asarray(p["latest"], dtype=int)].reshape(-1, 2)
                self.latest_source.data = {"x": latest[:, 0], "y": latest[:, 1]}

    def _flush_replay_map(self) -> None:
        """Stream the replay's picks from the cycle the map shows up to the current one."""
        delta = self._play.map_picks() if self._play is not None else None
        if delta is None:
            return
        new, last = delta
        rp = self._play.replay
        with self._hold():
            if new.stop > new.start:
                xy = self.data.xy[rp.pick_rows[new]]
                self.picked_source.stream({"x": xy[:, 0], "y": xy[:, 1], "material_id": rp.pick_ids[new].tolist(),
                                           "formula": rp.pick_formula[new].tolist(), "cycle": rp.pick_cycle[new]})
            latest = self.data.xy[rp.pick_rows[last]]
            self.latest_source.data = {"x": latest[:, 0], "y": latest[:, 1]}

    def _live_status(self, what: str) -> str:
        lr = self.learner
        if lr is None:
            return "Press Step or Play to start a live run."
        s = lr.settings

        locked = f" {LOCKED}" if lr.cycle > 0 else ""
        return (f"{what}: live run, {s.strategy}, batch {s.batch_size}, seed {s.seed}, up to {s.cycles:,} cycles, "
                f"pool {lr.n_pool:,}. Each step is the real Cholesky update of the GP "
                f"({lr.posterior.backend} on {device_label()}).{locked}")

    def _show_record(self, rec: dict) -> None:
        self.cycle_label.object = label_text(rec["cycle"], rec["n_train"], rec["mae"], rec["coverage_2sigma"],
                                             rec["seconds"], pool_mae=rec.get("pool_mae", float("nan")))

    def _drop_learner(self) -> None:
        """Forget the live run (its in-flight work is ignored when it lands)."""
        self._gen += 1
        self._live = None
        self._building = self._busy = self._missed = False
        self._intent = None
        if self.state.picked:
            self.state.picked = []

    # ------------------------------------------------------------ what is shown before a run
    def _show_pool_split(self) -> None:
        """The pool split coloured by the starting GP's σ (one data replacement)."""
        rows = self.pre.pool_rows
        xy = self.data.xy[rows]
        if self._live is not None:
            self._live.pending = None
        with self._hold():
            self.pool_source.data = {"x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32),
                                     "sigma": self.data.frame["sigma"].to_numpy(float)[rows].astype(np.float32),
                                     "row": rows.astype(np.int32)}
            self.picked_source.data = {"x": [], "y": [], "material_id": [], "formula": [], "cycle": []}
            self.latest_source.data = {"x": [], "y": []}

    def _show_start(self) -> None:
        with self._hold():
            self.curve_source.data = {"labels": [], "mae": [], "cycle": [], "coverage": [], "pool_mae": []}
            self.cycle_label.object = "**cycle 0** · press Step or Play to start a live run"
            self.status.object = "Press Step or Play to start a live run, or choose a committed run to replay."

    # ------------------------------------------------------------ replay
    def _show_replay_cycle(self, c: int) -> None:
        """Jump to cycle c: one data replacement of the curve and the picks."""
        rp = self._play.replay
        c = rp.clamp(c)
        k = rp.ends[c]
        k0 = rp.pick_slice(c - 1, c).start if c > 0 else 0
        xy = self.data.xy[rp.pick_rows[:k]]
        with self._hold():
            self.curve_source.data = rp.curve(0, c + 1)
            self.picked_source.data = {"x": xy[:, 0], "y": xy[:, 1], "material_id": rp.pick_ids[:k].tolist(),
                                       "formula": rp.pick_formula[:k].tolist(), "cycle": rp.pick_cycle[:k]}
            self.latest_source.data = {"x": xy[k0:, 0], "y": xy[k0:, 1]}  # the picks of cycle c
            self._play.map_cycle = c
            self._replay_shown(c)

    def _advance_replay(self, c: int) -> None:
        """Move forward to cycle c by streaming only the new curve points (and the new picks, see _flush_map)."""
        rp = self._play.replay
        c = int(min(c, rp.n_cycles))
        a = self._play.cycle
        if c <= a:
            return
        with self._hold():
            self.curve_source.stream(rp.curve(a + 1, c + 1))
            self._replay_shown(c)
            self._flush_map(force=not self.playing)

    def _replay_shown(self, c: int) -> None:
        rp = self._play.replay
        self._play.cycle = c
        self.cycle_label.object = label_text(c, int(rp.n_train[c]), float(rp.mae[c]), float(rp.coverage[c]),
                                             float(rp.seconds[c]), "recorded step", float(rp.pool_mae[c]))
        if self.controls.replay_cycle != c:
            self._syncing = True
            try:
                self.controls.replay_cycle = c
            finally:
                self._syncing = False
        ids = rp.picked_ids(c)
        if ids != self.state.picked:
            self.state.picked = ids

    def _replay_frame(self) -> None:
        """Advance by as many cycles as the replay speed asks for since the play started (dropped frames catch up)."""
        play = self._play
        if play is None:
            self._stop_timer()
            return
        self._advance_replay(play.target(self.replay_speed.value, time.perf_counter()))
        if play.finished:
            self._stop_timer()
            self._flush_map(force=True)
            self.status.object = self.status.object.split(" Replay finished")[0] + " Replay finished."

    def _on_scrub_widget(self, event) -> None:
        if not self._syncing:
            self.controls.replay_cycle = max(0, int(event.new))

    def _on_scrub(self, event) -> None:
        self._sync_widget(self.scrub, event.new)
        if self._syncing or self._play is None:
            return
        self._stop_timer()  # a drag takes over from Play
        self._show_replay_cycle(int(event.new))
        if not self._play.finished:  # back from the end: the replay is not finished any more
            self.status.object = self.status.object.split(" Replay finished")[0]

    def _title_map(self, mode: str) -> None:
        """A replay does no GP work, so its map keeps the starting σ: the title and colour bar say which σ."""
        self.map_fig.title.text = MAP_TITLES[mode]
        self.sigma_bar.title = COLOUR_BAR_TITLES[mode]

    # ------------------------------------------------------------ session end
    def _cleanup(self) -> None:
        """Stop the timer and let the learner (hundreds of MB on the default run) be freed."""
        self._stop_timer()
        self._gen += 1
        self._live = self._play = None

    def history_frame(self) -> pd.DataFrame:
        """The shown run, cycle by cycle: labels, test MAE, 2σ coverage and the materials picked at that cycle."""
        d = self.curve_source.data
        cycles = [int(c) for c in d["cycle"]]
        if self.mode == "replay" and self._play is not None:
            rp = self._play.replay
            picks = {c: ";".join(rp.pick_ids[rp.ends[c - 1]:rp.ends[c]]) for c in cycles if c > 0}
        else:
            lr = self.learner
            b = lr.settings.batch_size if lr is not None else 1
            ids = [str(lr.pool_ids[p]) for p in lr.picked] if lr is not None else []
            picks = {c: ";".join(ids[(c - 1) * b:c * b]) for c in cycles if c > 0}
        return pd.DataFrame({"cycle": cycles, "new labels": [int(x) for x in d["labels"]],
                             "test MAE (eV/atom)": list(d["mae"]), "test 2σ coverage": list(d["coverage"]),
                             "MAE on the unlabelled pool (eV/atom)": list(d["pool_mae"]),
                             "picked": [picks.get(c, "") for c in cycles]})

    def export_curves(self):
        """The MAE curves as shown: the committed random band(s) and the run on screen, up to its current cycle."""
        shown = [b for b in self.pre.bands if b["label"] == self.shown_band]
        series = [{"label": band_title(b), "labels": b["labels"],
                   "mae": b["mean"], "lower": b["lower"], "upper": b["upper"], "colour": BAND_COLOUR, "dashed": True}
                  for b in shown]
        series += [{"label": f"{b['label']} {POOL_SCORED}", "labels": b["labels"],
                    "mae": b["pool_mean"], "colour": BAND_COLOUR, "dotted": True}
                   for b in shown if np.isfinite(b["pool_mean"]).any()]
        label = self.curve_item.label
        label = str(label.get("value") if isinstance(label, dict) else getattr(label, "value", label))
        if self.mode == "live" and self.learner is not None:
            s = self.learner.settings
            label += f" ({s.strategy}, batch {s.batch_size}, seed {s.seed})"
        d = self.curve_source.data
        if len(d["labels"]):
            series.append({"label": label, "labels": d["labels"], "mae": d["mae"], "colour": CURVE_COLOUR,
                           "markers": True})
            if np.isfinite(np.asarray(d["pool_mae"], dtype=float)).any():
                series.append({"label": f"{label} {POOL_SCORED}", "labels": d["labels"],
                               "mae": d["pool_mae"], "colour": CURVE_COLOUR, "dotted": True})
        return al_curves_figure(series, title=self.curve_fig.title.text, ylabel=self.curve_fig.yaxis[0].axis_label)

    def __panel__(self):
        return pn.Column(
            note("**Which material should DFT compute next?** Each step labels pool oxides chosen by the strategy "
                 "(entropy: largest σ; random; batch-diverse; UCB/EI: hunt for the lowest formation energy), reveals "
                 "their DFT energy and updates the GP by a Cholesky update, without refitting. Watch the test MAE "
                 "fall against the grey band of committed random runs (solid: the fixed test set; dotted: the same "
                 "runs scored the paper's way, on the pool materials still unlabelled), and σ shrink around the "
                 "picks (stars; the latest "
                 "are ringed). Committed runs replay without any GP work, at up to 300 cycles per second, and the "
                 "“replay cycle” slider jumps to any cycle at once. The settings are locked while a live run is "
                 "under way: Reset to change them."),
            controls(self.run_select, self.strategy, self.seed, self.batch, self.cycles),
            controls(self.play_button, self.pause_button, self.step_button, self.reset_button, self.speed,
                     self.replay_speed, self.scrub, self.history_download, css_classes=["al-controls"]),
            self.message, self.status, self.cycle_label,
            pn.Row(pn.Column(pn.pane.Bokeh(self.curve_fig, sizing_mode="stretch_width"), self.curve_downloads,
                             sizing_mode="stretch_width"),
                   pn.pane.Bokeh(self.map_fig, sizing_mode="stretch_width"), css_classes=["al-figures"]),
            name="Active learning")
