"""Shareable views: what the dashboard shows, held in the page's URL, so that a link reopens the same view.

A teacher who found the worst phosphate, or a student who wants to show the entropy run at cycle 40, sends a
link; whoever opens it sees the same tab, colouring, filters, material and active-learning replay. The view is
a :class:`ViewState` of plain strings, kept in the URL's query by Panel's ``pn.state.location.sync``. The tabs
keep their own ``param`` state; :class:`ViewSync` copies it into the :class:`ViewState` when the user changes
something (so the URL follows) and applies a URL's values to the tabs when a session opens.

A link is untrusted text: :func:`ViewSync.apply` checks every value (an unknown colouring, a bogus element, a
row out of range, a seed without a committed run, a cycle past the end) and falls back to the default with a
message naming the parameter, never a traceback. The same :func:`ViewSync.apply` sets the dashboard for the
guided tour (:mod:`cfgp.dashboard.lesson`): one code path for links and lesson steps.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import panel as pn
import param

from cfgp.dashboard import untrusted
from cfgp.dashboard.al_controller import DEFAULTS, LIVE, REPLAY_PREFIX, check_setting
from cfgp.dashboard.calibration import SPLITS as CALIBRATION_SPLITS
from cfgp.dashboard.latent_map import AXES, COLOURINGS, SIZES
from cfgp.dashboard.outliers import SPLITS as OUTLIER_SPLITS
from cfgp.dashboard.shared import ServerData, SessionState, on_session_tick, parse_element
from cfgp.dashboard.untrusted import as_text, quoted
from cfgp.properties import parse_filters

#: tab name → the short name a link uses (a tab not listed gets its lower-cased, hyphenated name)
TAB_SLUGS = {"Latent map": "map", "Calibration": "calibration", "Active learning": "al", "Outliers": "outliers",
             "Predict": "predict"}
#: query parameters, in the order they are applied (the material last: where its details show depends on the tab)
KEYS = ("lesson", "tab", "colour", "element", "size", "x", "y", "filters", "cal_split", "cal_phosphates", "out_split", "out_phosphates",
        "out_element", "out_compare", "al", "strategy", "seed", "batch", "finetune", "cycle", "q", "material")
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass
class DashboardParts:
    """The pieces of one session's dashboard that a view touches (all public attributes of the tabs)."""

    data: ServerData
    state: SessionState
    tabs: pn.Tabs
    latent: Any  # LatentMap
    calibration: Any  # Calibration
    active: Any  # ActiveLearning
    outliers: Any  # Outliers
    predict: Any = None  # Predict (holds no view state yet)
    finder: Any = None  # Finder (the search box)


class ViewState(param.Parameterized):
    """The view as the URL holds it: one value per query parameter (strings when written by the dashboard;
    whatever Panel parsed from a link — ints, floats, booleans — until :class:`ViewSync` has checked them)."""

    lesson = param.Parameter(default="", doc="lesson step shown (1-based), empty when the lesson is closed")
    tab = param.Parameter(default="map", doc="active tab (see TAB_SLUGS)")
    colour = param.Parameter(default="dft", doc="latent map colouring")
    element = param.Parameter(default="P", doc="element of the latent map's 'element' colouring")
    size = param.Parameter(default="", doc="property the map's marker size follows (empty: fixed)")
    x = param.Parameter(default="", doc="property on the map's x axis (empty: the t-SNE)")
    y = param.Parameter(default="", doc="property on the map's y axis (empty: the t-SNE)")
    filters = param.Parameter(default="", doc="property filters of every tab (cfgp.properties link text)")
    material = param.Parameter(default="", doc="material id whose details are shown (one selected material)")
    cal_split = param.Parameter(default="test", doc="split of the Calibration tab")
    cal_phosphates = param.Parameter(default="false", doc="Calibration: phosphates only")
    out_split = param.Parameter(default="test", doc="split of the Outliers tab")
    out_phosphates = param.Parameter(default="false", doc="Outliers: phosphates only")
    out_element = param.Parameter(default="", doc="Outliers: element filter")
    out_compare = param.Parameter(default="false", doc="Outliers: the material beside its nearest training material")
    al = param.Parameter(default="live", doc="active learning: 'live' run or 'replay' of a committed one")
    strategy = param.Parameter(default="entropy", doc="active-learning strategy")
    seed = param.Parameter(default="0", doc="active-learning seed")
    batch = param.Parameter(default="1", doc="active-learning batch size")
    finetune = param.Parameter(default="", doc="a replayed run's network updates: MEGNet fine-tuned every N picks "
                                                 "(empty: the network frozen, as in every live run)")
    cycle = param.Parameter(default="", doc="cycle of a replayed run (empty for a live run)")
    q = param.Parameter(default="", doc="the search box's query (empty: no search)")


def parse_int(value: Any) -> int:
    """A whole number from link text; ValueError otherwise (no floats, no 10⁴⁰-digit numbers)."""
    s = as_text(value).strip()
    if not re.fullmatch(r"[+-]?\d{1,12}", s):
        raise ValueError(s)
    return int(s)


def parse_bool(value: Any) -> bool:
    s = as_text(value).strip().lower()
    if s in TRUE:
        return True
    if s in FALSE:
        return False
    raise ValueError(s)


def soon(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the session's next tick, with its document locked and current.

    Applying a view edits column data (the Calibration curve follows the selection) and Bokeh refuses such edits
    from a widget callback ("_pending_writes should be non-None", see ``shared.in_document``). Outside a served
    session (a notebook, a test) ``fn`` runs at once.
    """
    doc = pn.state.curdoc
    on_session_tick(doc if getattr(doc, "session_context", None) is not None else None, fn)


def tab_slug(name: str) -> str:
    return TAB_SLUGS.get(name, re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))


COPY_JS = """
const url = window.location.href;
const label = source.label;
const say = (text) => { source.label = text; setTimeout(() => { source.label = label; }, 2500); };
const fallback = () => {
  const ta = document.createElement('textarea');
  ta.value = url; ta.setAttribute('readonly', ''); ta.style.position = 'fixed'; ta.style.opacity = '0';
  document.body.appendChild(ta); ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
  ta.remove();
  say(ok ? 'Link copied ✓' : 'Copy blocked: select the link and copy it');
};
if (navigator.clipboard && window.isSecureContext) {
  navigator.clipboard.writeText(url).then(() => say('Link copied ✓'), fallback);
} else {
  fallback();
}
"""


class ViewSync:
    """Keeps one session's view and its URL in step, and applies views (from a link or a lesson step).

    ``apply(view)`` is the one way a view is set; it returns the problems it found (each already fallen back to
    the default). The header gets a "Copy link" button (the clipboard where the browser allows it) and the link
    as text (for an http page on another host, where browsers block the clipboard).
    """

    def __init__(self, parts: DashboardParts, location=None):
        self.parts = parts
        self.view = ViewState()
        self._writing = False
        self._seen: dict[str, set[str]] = {}  # the opening link's values: applied once, not again when echoed
        #: the lesson registers here: step text ("3") → problem or None; it opens the lesson at that step
        self.lesson_handler: Callable[[Any], str | None] | None = None
        self.lesson_step = ""
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, name="view-message",
                                     css_classes=["view-message"], margin=(0, 10))
        self.copy_button = pn.widgets.Button(label="Copy link", color="light", width=260,
                                             css_classes=["copy-link"])
        self.copy_button.js_on_click(code=COPY_JS)
        self.link = pn.pane.HTML("", name="view-link", css_classes=["view-link"], sizing_mode="stretch_width",
                                 styles={"font-size": "0.85em", "overflow-wrap": "anywhere"}, margin=(4, 10))
        self._watch_parts()
        self.location = location if location is not None else pn.state.location
        self._restored = False
        #: True while the opening link is applied (during session creation, where everything runs at once)
        self.restoring = False

    # ------------------------------------------------------------ reading the dashboard
    def tab_names(self) -> list[str]:
        return [tab_slug(str(getattr(obj, "name", ""))) for obj in self.parts.tabs.objects]

    def current(self) -> dict[str, str]:
        """The view the dashboard shows now, as link text."""
        p = self.parts
        names = self.tab_names()
        active = int(p.tabs.active or 0)
        sel = p.state.selected
        material = str(p.data.frame["material_id"].iloc[sel[0]]) if len(sel) == 1 else ""
        al = p.active
        replay = al.mode == "replay"
        ctrl = al.controls
        cycle = as_text(self.view.cycle) if (replay and al.playing) else (str(ctrl.replay_cycle) if replay else "")
        stem = ctrl.replay_stem if replay else None
        tuned = al.pre.replays[stem].settings.get("finetune_every") if stem in al.pre.replays else None
        finetune = "" if tuned is None else as_text(tuned)
        return {
            "lesson": self.lesson_step,
            "tab": names[active] if 0 <= active < len(names) else names[0],
            "colour": p.latent.colour, "element": p.latent.element, "size": p.latent.size,
            "x": p.latent.x_axis, "y": p.latent.y_axis,
            "filters": p.latent.filters,
            "material": material,
            "cal_split": p.calibration.split, "cal_phosphates": as_text(bool(p.calibration.phosphates)),
            "out_split": p.outliers.split, "out_phosphates": as_text(bool(p.outliers.phosphates_only)),
            "out_element": p.outliers.element, "out_compare": as_text(bool(p.outliers.compare_nearest)),
            "al": "replay" if replay else "live", "strategy": as_text(ctrl.strategy),
            "seed": as_text(ctrl.seed), "batch": as_text(ctrl.batch_size), "finetune": finetune, "cycle": cycle,
            "q": p.finder.query if p.finder is not None else "",
        }

    # ------------------------------------------------------------ dashboard → URL
    def _watch_parts(self) -> None:
        p = self.parts
        p.tabs.param.watch(self._changed, "active")
        p.latent.param.watch(self._changed, ["colour", "element", "size", "x_axis", "y_axis", "filters"])
        p.calibration.param.watch(self._changed, ["split", "phosphates"])
        p.outliers.param.watch(self._changed, ["split", "phosphates_only", "element", "compare_nearest"])
        p.state.param.watch(self._changed, "selected")
        p.active.param.watch(self._changed, ["mode", "playing"])
        p.active.controls.param.watch(self._changed, ["run", "strategy", "seed", "batch_size", "replay_cycle"])
        if p.finder is not None:
            p.finder.param.watch(self._changed, "query")

    def _changed(self, *events) -> None:
        p = self.parts.active
        if p.playing and all(getattr(e, "name", None) == "replay_cycle" for e in events):
            return  # a replay plays at up to 300 cycles/s: the URL follows when it stops
        self.write()

    def write(self) -> None:
        """Copy the dashboard's view into the ViewState (the synced URL follows), changed values only."""
        cur = self.current()
        changed = {k: v for k, v in cur.items() if as_text(getattr(self.view, k)) != v}
        if not changed:
            return
        self._writing = True
        try:
            self.view.param.update(**changed)
        finally:
            self._writing = False

    def set_lesson(self, step: int | None) -> None:
        """The lesson's step (1-based) in the link, or none when the lesson is closed."""
        self.lesson_step = "" if step is None else str(int(step))
        self.write()

    # ------------------------------------------------------------ URL → dashboard
    def restore(self) -> list[str]:
        """Apply the link this session was opened with (once; call it when every part, the lesson too, is
        built), show what could not be applied, then keep the URL in sync with the view."""
        if self._restored:
            return []
        self._restored = True
        self.restoring = True
        try:
            messages = self._restore()
        finally:
            self.restoring = False
        self.show_messages(messages)
        return messages

    def _restore(self) -> list[str]:
        loc = self.location
        if loc is None:  # no page URL (e.g. a notebook without a location): nothing to restore or to share
            self.link.visible = self.copy_button.visible = False
            return []
        pairs = urllib.parse.parse_qsl((loc.search or "").lstrip("?"), keep_blank_values=True)
        raw = {k: v for k, v in pairs if k in KEYS}
        others = {k: v for k, v in pairs if k not in KEYS}  # other parts of the page's query (e.g. ?theme=dark)
        messages = self.apply(raw) if raw else []
        for key, value in raw.items():  # the browser sends its URL back once: do not report the same values twice
            self._seen.setdefault(key, set()).update({as_text(value), as_text(_panel_parsed(key, value))})
        self.write()
        # the URL the browser shows becomes the checked view; from here on Panel keeps them in step
        loc.search = "?" + urllib.parse.urlencode({**others, **self.current()})
        loc.sync(self.view, {k: k for k in KEYS})
        self.view.param.watch(self._from_url, list(KEYS))
        loc.param.watch(self._show_link, ["search", "href", "pathname", "hostname", "port", "protocol"])
        self._show_link()
        return messages

    def _from_url(self, *events) -> None:
        """The browser sent a URL (its own, once, on load): apply what is new in it, then put back the checked
        view."""
        if self._writing:
            return
        view = {}
        for e in events:
            text = as_text(e.new)
            if text in self._seen.get(e.name, ()):
                continue
            view[e.name] = e.new
        if not view:  # only the echo of the opening link: keep its messages, put back the checked view
            self.write()
            return

        def apply():
            messages = self.apply(view)
            self.write()
            self.show_messages(messages)
        soon(apply)

    def _show_link(self, *_events) -> None:
        loc = self.location
        if not loc.hostname:  # not served (a notebook): there is no page URL to share
            self.link.visible = self.copy_button.visible = False
            return
        self.link.visible = self.copy_button.visible = True
        host = loc.hostname + (f":{loc.port}" if loc.port else "")
        url = f"{loc.protocol}//{host}{loc.pathname}{loc.search}"
        safe = untrusted.text(url)
        self.link.object = f'Link to this view: <a class="view-link-url" href="{safe}">{safe}</a>'

    # ------------------------------------------------------------ apply a view
    def apply(self, view: Mapping[str, Any]) -> list[str]:
        """Set the dashboard to ``view`` (query name → value; missing names are left as they are).

        Every value is checked; a bad one falls back to the default and yields a message naming it. Used for
        links and for lesson steps alike.
        """
        # an empty value means "as it is" (Panel leaves `colour=` behind when it rewrites a query), except where
        # empty is a value of its own: no material, no element filter, no replay cycle, the lesson closed
        view = {k: view[k] for k in KEYS
                if k in view and (as_text(view[k]).strip()
                    or k in ("material", "out_element", "cycle", "lesson", "q", "filters", "size", "x", "y",
                             "finetune"))}
        messages: list[str] = []
        if "lesson" in view and self.lesson_handler is not None:
            problem = self.lesson_handler(view["lesson"])
            if problem:
                messages.append(problem)
        # the tab last: the tab that a switch renders is drawn with its new state (fewer messages to the browser)
        for apply in (self._apply_map, self._apply_calibration, self._apply_outliers, self._apply_al,
                      self._apply_search, self._apply_material, self._apply_tab):
            try:
                apply(view, messages)
            except Exception as exc:  # a view must never break the session: say what failed and go on
                messages.append(f"Could not apply part of this view ({type(exc).__name__}: {str(exc)[:200]}).")
        return messages

    def _target_tab(self, view, messages=None) -> int:
        """The tab index ``view`` asks for (the current one when it names none; the first when it is unknown)."""
        names = self.tab_names()
        if "tab" not in view:
            return int(self.parts.tabs.active or 0)
        slug = as_text(view["tab"]).strip().lower()
        if slug in names:
            return names.index(slug)
        if messages is not None:
            messages.append(f"Link parameter tab: {quoted(view['tab'])} is not a tab (tabs: {', '.join(names)}); "
                            f"showing the {self.parts.tabs.objects[0].name} tab.")
        return 0

    def _apply_tab(self, view, messages) -> None:
        if "tab" not in view:
            return
        index = self._target_tab(view, messages)
        if self.parts.tabs.active != index:
            self.parts.tabs.active = index

    def _apply_map(self, view, messages) -> None:
        lm = self.parts.latent
        if "colour" in view:
            key = as_text(view["colour"]).strip()
            if key not in COLOURINGS.values():
                by_label = {k.lower(): v for k, v in COLOURINGS.items()}
                key = by_label.get(key.lower(), "")
            if not key:
                messages.append(f"Link parameter colour: {quoted(view['colour'])} is not a colouring (one of "
                                f"{', '.join(COLOURINGS.values())}); the map is coloured by DFT E_f.")
                key = "dft"
            if lm.colour != key:
                lm.colour = key
        if "element" in view:
            try:
                symbol = parse_element(as_text(view["element"]))
            except ValueError as exc:
                messages.append(f"Link parameter element: {exc}; the map's element colouring uses P.")
                symbol = "P"
            if lm.element != symbol:
                lm.element = symbol
        if "size" in view:
            size = as_text(view["size"]).strip()
            if size not in SIZES.values():
                messages.append(f"Link parameter size: {quoted(view['size'])} is not a numeric property (one of "
                                f"{', '.join(v for v in SIZES.values() if v)}); the markers have a fixed size.")
                size = ""
            if lm.size != size:
                lm.size = size
        for k, which in (("x", "x_axis"), ("y", "y_axis")):
            if k in view:
                key = as_text(view[k]).strip()
                if key not in AXES.values():
                    messages.append(f"Link parameter {k}: {quoted(view[k])} is not a numeric property (one of "
                                    f"{', '.join(v for v in AXES.values() if v)}); the scatter's {k} axis is the t-SNE coordinate.")
                    key = ""
                if getattr(lm, which) != key:
                    setattr(lm, which, key)
        if "filters" in view:
            text = as_text(view["filters"]).strip()
            try:
                parse_filters(text)
            except ValueError as exc:
                messages.append(f"Link parameter filters: {exc}; no filter is applied.")
                text = ""
            if lm.filters != text:
                lm.filters = text

    def _apply_calibration(self, view, messages) -> None:
        cal = self.parts.calibration
        self._apply_filters(view, messages, "cal", CALIBRATION_SPLITS, cal, "phosphates", "Calibration")

    def _apply_outliers(self, view, messages) -> None:
        out = self.parts.outliers
        self._apply_filters(view, messages, "out", list(OUTLIER_SPLITS.values()), out, "phosphates_only", "Outliers")
        if "out_element" in view:
            text = as_text(view["out_element"]).strip()
            symbol = ""
            if text:
                try:
                    symbol = parse_element(text)
                except ValueError as exc:
                    messages.append(f"Link parameter out_element: {exc}; the outliers are not filtered by element.")
            if out.element != symbol:
                out.element = symbol
        if "out_compare" in view:
            value = self._bool(view, "out_compare", messages)
            if out.compare_nearest != value:
                out.compare_nearest = value

    def _apply_filters(self, view, messages, prefix: str, splits, view_obj, phosphates: str, tab: str) -> None:
        """``<prefix>_split`` and ``<prefix>_phosphates`` of a link onto one tab's ``split`` and phosphate
        parameters (Calibration and Outliers share the pair; their widgets follow); a bad value is named and the
        default used."""
        key = f"{prefix}_split"
        if key in view:
            split = as_text(view[key]).strip().lower()
            if split not in splits:
                messages.append(f"Link parameter {key}: {quoted(view[key])} is not a split (one of "
                                f"{', '.join(splits)}); the {tab} tab shows the test split.")
                split = "test"
            if view_obj.split != split:
                view_obj.split = split
        key = f"{prefix}_phosphates"
        if key in view:
            value = self._bool(view, key, messages)
            if getattr(view_obj, phosphates) != value:
                setattr(view_obj, phosphates, value)

    @staticmethod
    def _bool(view, key, messages) -> bool:
        try:
            return parse_bool(view[key])
        except ValueError:
            messages.append(f"Link parameter {key}: {quoted(view[key])} is neither true nor false; false is used.")
            return False

    def _apply_al(self, view, messages) -> None:
        """The link's active-learning part sets the tab's controller (checked there, with a message each)."""
        keys = {"al", "strategy", "seed", "batch", "finetune", "cycle"} & set(view)
        if not keys:
            return
        al = self.parts.active
        ctrl = al.controls
        mode = as_text(view.get("al", al.mode)).strip().lower()
        if mode not in ("live", "replay"):
            messages.append(f"Link parameter al: {quoted(view['al'])} is neither live nor replay; a live run is "
                            f"shown.")
            mode = "live"
        values = {"strategy": ctrl.strategy, "seed": ctrl.seed, "batch_size": ctrl.batch_size}
        if "strategy" in view:
            values["strategy"], problem = check_setting("strategy", as_text(view["strategy"]).strip())
            if problem:
                messages.append(f"Link parameter strategy: {problem}")
        for key, name in (("seed", "seed"), ("batch", "batch_size")):
            if key not in view:
                continue
            if not as_text(view[key]).strip():
                values[name] = DEFAULTS[name]
                continue
            try:
                value, problem = check_setting(name, parse_int(view[key]))
            except ValueError:
                value, problem = DEFAULTS[name], f"{key} must be a whole number; {quoted(view[key])} is not"
            if problem:
                messages.append(f"Link parameter {key}: {problem.rstrip('.')}; {value} is used." if "used" not in
                                problem else f"Link parameter {key}: {problem}")
            values[name] = value
        if mode == "replay":
            batch = values["batch_size"] if "batch" in view else None
            tuned = None  # no finetune in the link: the network frozen (links made before fine-tuned runs shipped)
            if as_text(view.get("finetune", "")).strip():
                try:
                    tuned = parse_int(view["finetune"])
                    if tuned < 1:
                        raise ValueError
                except ValueError:
                    messages.append(f"Link parameter finetune: {quoted(view['finetune'])} is not a number of picks; "
                                    "a run with the network frozen is looked for.")
                    tuned = None
            stem = self._find_replay(values["strategy"], values["seed"], batch, tuned)
            if stem is None:
                messages.append(f"Link parameters al/strategy/seed: there is no committed {values['strategy']} run "
                                f"with seed {values['seed']}{'' if batch is None else f' and batch {batch}'}"
                                f"{'' if tuned is None else f', MEGNet fine-tuned every {tuned} picks,'} "
                                f"(committed: {self._committed_summary()}); a live run is shown instead.")
                mode, values = "live", {k: DEFAULTS[k] for k in values}
            else:
                problem = ctrl.choose_run(REPLAY_PREFIX + stem)
                if problem:
                    messages.append(problem)
                    return
                rp = al.pre.replays[stem]
                cycle = 0
                if "cycle" in view and as_text(view["cycle"]).strip():
                    try:
                        cycle = parse_int(view["cycle"])
                        if not 0 <= cycle <= rp.n_cycles:
                            raise ValueError
                    except ValueError:
                        messages.append(f"Link parameter cycle: {quoted(view['cycle'])} is not a cycle of {stem} "
                                        f"(0 to {rp.n_cycles:,}); cycle 0 is shown.")
                        cycle = 0
                ctrl.replay_cycle = cycle
                return
        problem = ctrl.choose_run(LIVE)
        if problem:
            messages.append(problem)
            return
        messages.extend(ctrl.set_values(values))

    def _find_replay(self, strategy: str, seed: int, batch: int | None, finetune: int | None = None) -> str | None:
        """The committed run with this strategy and seed (and batch size, if given; else the smallest) whose
        network was fine-tuned every ``finetune`` picks (None: frozen)."""
        found = []
        for stem, rp in self.parts.active.pre.replays.items():
            s = rp.settings
            if s.get("strategy") == strategy and s.get("seed") == seed and \
                    (batch is None or s.get("batch_size") == batch) and s.get("finetune_every") == finetune:
                found.append((s.get("batch_size") or 1, stem))
        return min(found)[1] if found else None

    def _committed_summary(self) -> str:
        seeds: dict[tuple[str, int, int], set[int]] = {}
        for rp in self.parts.active.pre.replays.values():
            s = rp.settings
            key = (str(s.get("strategy")), int(s.get("batch_size") or 1), int(s.get("finetune_every") or 0))
            seeds.setdefault(key, set()).add(int(s.get("seed", 0)))
        if not seeds:
            return "none"
        return "; ".join(f"{st} batch {b}{f' fine-tuned every {ft}' if ft else ''}: seed{'s' if len(v) > 1 else ''} "
                         f"{', '.join(map(str, sorted(v)))}" for (st, b, ft), v in sorted(seeds.items()))

    def _apply_search(self, view, messages) -> None:
        """The search box gets the link's text as it is (the core reads it, bounded; the box shows its own error)."""
        if "q" in view and self.parts.finder is not None:
            self.parts.finder.query = as_text(view["q"])

    def open_material(self, row: int) -> None:
        """A search result clicked: select it in the session and show its details — on the Outliers tab when that
        is open, else on the Latent map, which every other tab switches to."""
        mid = str(self.parts.data.frame["material_id"].iloc[int(row)])
        on_outliers = self.tab_names()[int(self.parts.tabs.active or 0)] == "outliers"
        self.apply({"material": mid} if on_outliers else {"tab": "map", "material": mid})
        self.write()

    def _apply_material(self, view, messages) -> None:
        if "material" not in view:
            return
        p, d = self.parts, self.parts.data
        text = as_text(view["material"]).strip()
        row = None
        if text:
            if text in d.row_of_id:
                row = int(d.row_of_id[text])
            elif re.fullmatch(r"\d{1,12}", text):
                row = int(text)
                if row >= len(d.frame):
                    messages.append(f"Link parameter material: row {row:,} is out of range (this run has "
                                    f"{len(d.frame):,} materials, rows 0 to {len(d.frame) - 1:,}); no material "
                                    f"is selected.")
                    row = None
            else:
                messages.append(f"Link parameter material: {quoted(text)} is not a material of this run (use an id "
                                f"such as {d.frame['material_id'].iloc[0]}); no material is selected.")
        if row is None:
            p.state.select([])
            p.outliers.details.show(None)
            return
        p.state.focus = row
        p.state.select([row])
        if self.tab_names()[self._target_tab(view)] == "outliers":
            p.outliers.details.show(row)

    # ------------------------------------------------------------ messages
    def show_messages(self, messages: list[str], what: str = "link") -> None:
        """Problems of a link or a step: an alert under the header (stays until the next view) and a toast."""
        if not messages:
            self.message.object, self.message.visible = "", False
            return
        self.message.object = ("**This view could not be shown exactly as asked.** "
                               + " ".join(map(untrusted.text, messages)))
        self.message.visible = True

        names = sorted({n for m in messages for n in re.findall(r"^Link parameters? ([\w/]+):", m)})
        summary = (f"This {what} had {len(messages)} value{'s' if len(messages) > 1 else ''} that could not be "
                   f"used" + (f" ({', '.join(names)})" if names else "") + ": defaults are shown instead. Details "
                   "under the header.")

        def toast():  # one toast, the details are in the alert
            notes = getattr(pn.state, "notifications", None)
            if notes is None:
                return
            try:
                notes.warning(untrusted.text(summary), duration=10000)
            except Exception:  # the alert above already shows the messages
                pass
        try:
            pn.state.onload(toast)  # during session creation: once the page is there to show it
        except Exception:
            pass

    def header(self) -> pn.viewable.Viewable:
        """The copy-link button and the link as text (for the header)."""
        return pn.Row(self.copy_button, self.link, sizing_mode="stretch_width")


def _panel_parsed(key: str, value: str) -> Any:
    """``value`` as Panel's location sync parses it (numbers become numbers), to recognise it when it comes back."""
    from panel.util import parse_query

    try:
        return parse_query("?" + urllib.parse.urlencode({key: value})).get(key, value)
    except Exception:
        return value
