"""Classroom display: a dark theme, a projector mode, keyboard-reachable tabs, and unit-bearing tooltips.

Why it exists: a class watches the dashboard on a projector (text must be large and the page use the whole
width) and often in a darkened room (a dark theme, in which *everything* — tab labels, tables, the structure
viewer, the plots — stays readable); some students drive it from the keyboard only. What Panel offers is used
first: its design system (``pn.config.theme`` / ``?theme=dark``, the Native design and its dark Bokeh theme);
:class:`Classroom` is a Native design that adds one stylesheet (``classroom.css``, served by the Panel server)
to every component's shadow root, written against Panel's own colour variables so that it is right in both
themes. Bokeh draws on a canvas that CSS cannot reach, so :func:`style_figure` scales a figure's fonts and
glyphs for the projector and lightens explicitly black marks on a dark background.

The view options come from the page's URL when a session opens (``?theme=dark``, ``?projector=1``) and can be
switched with the two toggles of the header (:func:`header_controls`), which rewrite only those two query
parameters of the current URL and reload the page: any other query parameter (the shared view of
``cfgp.dashboard.view_state``) is kept, so the reloaded page shows the same view in the new style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import panel as pn
from bokeh.models import CustomJS
from panel.theme import Inherit
from panel.theme.native import Native, NativeDarkTheme, NativeDefaultTheme
from panel.viewable import Viewable

from cfgp.palette import LIGHT_PAGE

THEMES = ("default", "dark")
TRUE = ("1", "true", "yes", "on")
#: projector mode: base text size of every component (Bokeh's widgets default to ~12 px) and the factor plot
#: fonts, glyphs and line widths grow by
PROJECTOR_FONT_PX = 18
PROJECTOR_SCALE = 1.5
#: explicit marks that are black on a white plot become light on a dark one
DARK_SWAP = {"black": "#e6e6e6", "#000": "#e6e6e6", "#000000": "#e6e6e6", "#333": "#d0d0d0", "#444": "#c8c8c8"}
#: the dark background of Plotly's structure view (Panel's dark surface colour) and its text colour
PLOTLY_DARK = {"paper_bgcolor": "#212529", "font_color": "#f0f0f0"}
#: short help of widgets, by their label (a help icon shows it on hover and keyboard focus)
DESCRIPTIONS = {
    "colour by": "What the colour of each dot shows: energies and σ in eV/atom, or a grouping",
    "element": "An element symbol (Li, P, …) for the “element” colouring",
    "perplexity": "t-SNE's effective number of neighbours of each point (5–100)",
    "materials": "Which split the plots and metrics show",
    "phosphates only": "Keep only the materials that contain phosphate groups",
    "strategy": "How active learning picks the next material (entropy: largest σ)",
    "seed": "Random seed of the run (random picks, tie breaks)",
    "batch size": "Materials labelled per cycle",
    "cycles": "How many cycles the live run may take",
    "steps per second": "Speed of Play (each step is a real GP update)",
    "split": "Which split the table lists",
    "contains element": "Keep the materials that contain this element (a symbol: Li, P, …)",
    "run": "A live run on this server, or a replay of a committed run",
}


@dataclass(frozen=True)
class ViewOptions:
    """How one session is displayed: ``theme`` ('default' or 'dark') and ``projector`` (large text, full width)."""

    theme: str = "default"
    projector: bool = False

    @property
    def dark(self) -> bool:
        return self.theme == "dark"

    @classmethod
    def from_request(cls, theme: str | None = None, projector: bool | None = None) -> "ViewOptions":
        """The options of this session: explicit arguments first, else the page's query (``?theme=dark``,
        ``?projector=1``), else the defaults. An unknown value falls back to the default (a link is untrusted)."""
        args = pn.state.session_args if isinstance(pn.state.session_args, dict) else {}

        def arg(name: str) -> str:
            values = args.get(name) or [b""]
            v = values[0]
            return (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).strip().lower()

        if theme is None:
            theme = arg("theme") or str(pn.config.theme)
        if theme not in THEMES:
            theme = "default"
        if projector is None:
            projector = arg("projector") in TRUE
        return cls(theme=theme, projector=bool(projector))


# ------------------------------------------------------------------ Panel design: one stylesheet everywhere
class ClassroomDefaultTheme(NativeDefaultTheme):
    """Panel's light Native theme (the stylesheet does the rest)."""


class ClassroomDarkTheme(NativeDarkTheme):
    """Panel's dark Native theme, with its dark Bokeh theme for the plots."""


class Classroom(Native):
    """Panel's Native design plus ``classroom.css`` in every component: readable tab labels, tables and
    alerts in both themes, a visible keyboard focus, and text that follows ``--cfgp-font-size``."""

    modifiers = {Viewable: {"stylesheets": [Inherit, "classroom.css"]}}

    _themes = {"dark": ClassroomDarkTheme, "default": ClassroomDefaultTheme}


def use_design(options: ViewOptions) -> None:
    """Make the components built next in this session use the classroom design in ``options.theme``
    (Panel keeps both settings per session when called inside one)."""
    pn.config.design = Classroom
    pn.config.theme = options.theme


def root_styles(options: ViewOptions) -> dict[str, str]:
    """CSS of the dashboard's root: custom properties inherit into every shadow root below it, so the
    projector's text size is one variable (Bokeh's widgets read ``--bokeh-font-size``)."""
    styles = {"width": "100%", "max-width": "none"}
    if options.projector:
        styles.update({"--bokeh-font-size": f"{PROJECTOR_FONT_PX}px", "--cfgp-font-size": f"{PROJECTOR_FONT_PX}px",
                       "font-size": f"{PROJECTOR_FONT_PX}px"})
    if options.dark:
        styles.update({"background-color": "var(--panel-background-color)",
                       "color": "var(--panel-on-background-color)"})
    return styles


# ------------------------------------------------------------------ Bokeh figures (canvas: CSS cannot reach them)
_SIZE = re.compile(r"^\s*([0-9.]+)\s*(px|pt|em)\s*$")


def _scaled_font(value, factor: float):
    m = _SIZE.match(value) if isinstance(value, str) else None
    if not m:
        return None
    return f"{float(m.group(1)) * factor:.4g}{m.group(2)}"


def style_figure(fig, options: ViewOptions) -> None:
    """Restyle one Bokeh figure (and every model under it) for ``options``: projector mode scales every text
    font, marker size and line width by :data:`PROJECTOR_SCALE`; the dark theme turns explicitly black marks
    light. Themed values (axis and title colours) come from Panel's dark Bokeh theme; this only touches what
    the code set explicitly or Bokeh's fixed defaults. Call it once per figure, before it is shown."""
    if not options.projector and not options.dark:
        return
    for model in fig.references():
        props = model.properties()
        updates = {}
        if options.projector:
            for name in props:
                if name.endswith("text_font_size"):
                    new = _scaled_font(getattr(model, name), PROJECTOR_SCALE)
                    if new:
                        updates[name] = new
            if "size" in props and type(model).__name__ == "Scatter" and isinstance(model.size, (int, float)):
                updates["size"] = model.size * PROJECTOR_SCALE
            if "line_width" in props and isinstance(model.line_width, (int, float)):
                updates["line_width"] = model.line_width * PROJECTOR_SCALE
            if type(model).__name__ == "ColorBar" and isinstance(model.width, (int, float)):
                updates["width"] = int(model.width * PROJECTOR_SCALE)
        if options.dark:
            for name in ("line_color", "fill_color", "text_color"):
                v = getattr(model, name, None) if name in props else None
                if isinstance(v, str) and v.lower() in DARK_SWAP:
                    updates[name] = DARK_SWAP[v.lower()]
        if updates:
            model.update(**updates)


def figures_of(root) -> list:
    """Every Bokeh figure shown by the Bokeh panes under ``root`` (a Panel layout)."""
    from bokeh.models import Plot

    out = []
    for pane in root.select(pn.pane.Bokeh):
        obj = pane.object
        if obj is None:
            continue
        out += [m for m in obj.select({"type": Plot})] if not isinstance(obj, Plot) else [obj]
    seen, unique = set(), []
    for f in out:
        if id(f) not in seen:
            seen.add(id(f))
            unique.append(f)
    return unique


def describe_widgets(root) -> int:
    """Give the widgets under ``root`` their short help (:data:`DESCRIPTIONS`, by label) unless they have one;
    returns how many were described."""
    n = 0
    for w in root.select(pn.widgets.Widget):
        label = getattr(w, "name", "") or ""
        if label in DESCRIPTIONS and "description" in w.param and not w.description:
            w.description = DESCRIPTIONS[label]
            n += 1
    return n


# ------------------------------------------------------------------ Plotly (the structure viewer's iframe)
def current_options() -> ViewOptions:
    """The options of the session being served (for code that renders later, e.g. the structure viewer)."""
    return ViewOptions.from_request(theme=str(pn.config.theme) if pn.config.theme in THEMES else None)


def plotly_layout(options: ViewOptions | None = None) -> dict:
    """Layout overrides of a Plotly figure for ``options`` (the dark template and background when dark, larger
    text on the projector); empty for the default look."""
    options = options or current_options()
    layout: dict = {}
    if options.dark:
        layout.update(template="plotly_dark", paper_bgcolor=PLOTLY_DARK["paper_bgcolor"],
                      plot_bgcolor=PLOTLY_DARK["paper_bgcolor"], font_color=PLOTLY_DARK["font_color"])
    if options.projector:
        layout.update(font_size=int(12 * PROJECTOR_SCALE))
    return layout


def iframe_background(options: ViewOptions | None = None) -> str:
    """The background of the structure viewer's page (dark in the dark theme, so no white flash or border)."""
    options = options or current_options()
    return PLOTLY_DARK["paper_bgcolor"] if options.dark else LIGHT_PAGE


# ------------------------------------------------------------------ keyboard and the header toggles
#: The tab headers as a WAI-ARIA tab list (the "tabs with automatic activation" pattern): one Tab stop, the active
#: tab (roving tabindex: it has tabindex 0, the others -1); ←/→ (and ↑/↓) move to the previous / next tab and show
#: it, Home / End the first / last, Enter / Space show the focused one; Tab then leaves the list for the page.
#: Bokeh draws the headers in shadow roots (after the content, so first in the Tab order only once moved), answers
#: clicks only and re-renders them when the active tab changes, so the roles are (re)applied by a MutationObserver on
#: each header list. The same script names the controls Bokeh draws without an accessible name (below); installed
#: once per page, checked by axe-core in tests/dashboard/test_accessibility.py.
ACCESSIBILITY_JS = """
if (!window.__cfgp_tab_keys) {
  window.__cfgp_tab_keys = true;
  const seen = new WeakSet();
  let keepFocusUntil = 0;
  const headersOf = (wrap) => Array.from(wrap.children).filter(el => el.classList.contains('bk-tab'));
  const markList = (wrap) => {
    // Bokeh puts the header after the tab's content in its shadow root (a CSS grid draws it on top), so the
    // Tab key met the headers only after every control of the shown tab: move it first, the drawing is the same
    const header = wrap.parentElement, root = header && header.parentNode;
    const first = root ? Array.from(root.children).find(e => e.tagName === 'DIV') : null;
    if (first && first !== header && header.classList.contains('bk-header')) root.insertBefore(header, first);
    wrap.setAttribute('role', 'tablist');
    wrap.setAttribute('aria-label', 'Dashboard views');
    wrap.setAttribute('aria-orientation', 'horizontal');
    for (const t of headersOf(wrap)) {
      const on = t.classList.contains('bk-active');
      t.setAttribute('role', 'tab');
      t.setAttribute('aria-selected', on ? 'true' : 'false');
      t.setAttribute('tabindex', on ? '0' : '-1');
    }
    // the server's answer to a switch re-renders the headers and drops the focus to the page's body: for a few
    // seconds after a key switched tabs, put it back on the shown tab (never taking it from anything else)
    if (Date.now() < keepFocusUntil) {
      let a = document.activeElement;
      while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
      const shown = headersOf(wrap).find(t => t.classList.contains('bk-active'));
      if (shown && (!a || a === document.body || (a.classList.contains('bk-tab') && a !== shown))) shown.focus();
    }
  };
  const mark = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) mark(el.shadowRoot);
    }
    for (const wrap of root.querySelectorAll('.bk-headers-wrapper')) {
      markList(wrap);
      if (!seen.has(wrap)) {
        seen.add(wrap);
        new MutationObserver(() => markList(wrap)).observe(
          wrap, {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
      }
    }
  };
  const tabAt = (e) => e.composedPath().find(el => el instanceof Element && el.classList.contains('bk-tab'));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Tab') keepFocusUntil = 0;  // the user leaves the list: a late re-render must not pull focus back
    const t = tabAt(e);
    if (!t || !t.parentElement) return;
    const tabs = headersOf(t.parentElement);
    const i = tabs.indexOf(t), n = tabs.length;
    const to = {Enter: i, ' ': i, ArrowRight: (i + 1) % n, ArrowDown: (i + 1) % n, ArrowLeft: (i - 1 + n) % n,
                ArrowUp: (i - 1 + n) % n, Home: 0, End: n - 1}[e.key];
    if (to === undefined) return;
    e.preventDefault();
    keepFocusUntil = Date.now() + 4000;
    tabs[to].click();
    markList(t.parentElement);
    tabs[to].focus();
  }, true);
  document.addEventListener('focusin', (e) => { const t = tabAt(e); if (t) mark(t.getRootNode()); }, true);
  // names for the controls Bokeh and Tabulator draw without one (axe-core: "serious" or "critical" otherwise):
  // slider handles and spinner arrows take their widget's title, check boxes their text beside them; a Tabulator
  // grid's scrolling body and pagination footer get the row-group / row / cell roles a grid may contain
  const name = (el, text) => { text = (text || '').trim().replace(/\\s+/g, ' ');
    if (text && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
      el.setAttribute('aria-label', text.slice(0, 80)); };
  const titleOf = (root) => { const t = root.querySelector('.bk-slider-title, label');
    return t ? t.textContent.replace(/:[^:]*$/, '') : ''; };
  const repair = (root) => {
    for (const el of root.querySelectorAll('*')) { if (el.shadowRoot) repair(el.shadowRoot); }
    for (const h of root.querySelectorAll('.noUi-handle[role=slider]')) name(h, titleOf(root) || 'slider');
    for (const b of root.querySelectorAll('button.bk-spin-btn')) {
      name(b, (b.classList.contains('bk-spin-btn-up') ? 'increase ' : 'decrease ') + (titleOf(root) || 'value'));
      b.setAttribute('tabindex', '-1');  // the arrow keys of the number box do the same
    }
    for (const c of root.querySelectorAll('input[type=checkbox], input[type=radio]')) {
      const l = c.closest('label');
      name(c, l ? l.textContent : (c.nextElementSibling ? c.nextElementSibling.textContent : ''));
    }
    for (const g of root.querySelectorAll('.tabulator[role=grid]')) {
      g.removeAttribute('aria-owns');  // it names a descendant, which the grid contains anyway
      for (const h of g.querySelectorAll(':scope > .tabulator-tableholder')) h.setAttribute('role', 'rowgroup');
      for (const b of g.querySelectorAll(':scope > .tabulator-tableholder > .tabulator-table'))
        b.setAttribute('role', 'none');
      for (const f of g.querySelectorAll(':scope > .tabulator-footer')) {
        f.setAttribute('role', 'rowgroup');
        for (const c of f.querySelectorAll(':scope > .tabulator-footer-contents')) {
          c.setAttribute('role', 'row');
          for (const cell of c.children) cell.setAttribute('role', 'gridcell');
        }
      }
    }
  };
  // the page builds its components after document_ready, tabs draw theirs when first shown and the server
  // answers a click with new ones: look again every second (a walk over the page's elements, a few ms) while the
  // page is new or someone used it in the last 15 s; a projected page nobody touches does no work
  const scan = () => { mark(document); repair(document); };
  let active = Date.now();
  for (const kind of ['pointerdown', 'keydown', 'focusin', 'input'])
    document.addEventListener(kind, () => { active = Date.now(); }, true);
  scan();
  setInterval(() => { if (Date.now() - active < 15000) scan(); }, 1000);
}
"""

_SET_QUERY_JS = """
const url = new URL(window.location.href);
if (cb_obj.active) { url.searchParams.set(key, on); } else { url.searchParams.delete(key); }
window.location.assign(url.toString());
"""


def header_controls(options: ViewOptions) -> pn.Row:
    """Two toggles for the header: dark theme and projector mode. Each rewrites its own query parameter of the
    current URL and reloads (the design is chosen when a session's components are built), keeping the rest."""
    dark = pn.widgets.Toggle(label="Dark theme", value=options.dark, width=130, css_classes=["cfgp-dark-toggle"])
    projector = pn.widgets.Toggle(label="Projector", value=options.projector, width=130,
                                  css_classes=["cfgp-projector-toggle"])
    dark.jscallback(value=_SET_QUERY_JS, args={"key": "theme", "on": "dark"})
    projector.jscallback(value=_SET_QUERY_JS, args={"key": "projector", "on": "1"})
    return pn.Row(dark, projector, width=290, align="end", name="view-controls")  # no "fixed": W-1005 without a height


#: toast colours with white text at a WCAG contrast ≥ 4.5 (Panel's defaults put white on #ffc107 yellow: 1.6)
NOTIFICATION_BACKGROUNDS = {"warning": "#8a5a00", "info": "#0a58ca", "success": "#1e7b34", "error": "#b02a37"}


def readable_notifications() -> None:
    """Darken this session's notification colours so their white text stays readable. The toasts live in the
    page's body, outside every component's stylesheet, so their colours are set where Panel defines them."""
    notes = pn.state.notifications
    if notes is None or "types" not in notes.param:
        return
    types = {t["type"]: dict(t) for t in notes.types}
    for kind, background in NOTIFICATION_BACKGROUNDS.items():
        entry = types.setdefault(kind, {"type": kind})
        entry["background"] = background
    notes.types = list(types.values())


def use_bokeh_theme(options: ViewOptions) -> None:
    """Give this session's document the design's Bokeh theme (Panel's dark one when dark). A served document
    re-themes every model added to it with its own theme, so per-model theming alone does not last."""
    doc = pn.state.curdoc
    if doc is None:
        return
    theme = Classroom._themes[options.theme]().bokeh_theme
    if theme is not None:
        doc.theme = theme


def install_accessibility() -> None:
    """The tab list's keyboard pattern and names for unnamed controls (:data:`ACCESSIBILITY_JS`), once per page (a
    no-op outside a served session)."""
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return
    doc.js_on_event("document_ready", CustomJS(code=ACCESSIBILITY_JS))


def apply(root, options: ViewOptions):
    """Everything a built dashboard needs for ``options`` (root styles, figure restyling, widget help, keyboard
    handling); returns ``root``."""
    root.styles = {**root.styles, **root_styles(options)}
    root.css_classes = [*root.css_classes, "cfgp-root", f"cfgp-theme-{options.theme}"] + (
        ["cfgp-projector"] if options.projector else [])
    for fig in figures_of(root):
        style_figure(fig, options)
    describe_widgets(root)
    readable_notifications()
    use_bokeh_theme(options)
    install_accessibility()
    return root


__all__ = ["ViewOptions", "Classroom", "use_design", "root_styles", "style_figure", "figures_of",
           "describe_widgets", "plotly_layout", "iframe_background", "header_controls", "install_accessibility",
           "use_bokeh_theme", "readable_notifications", "apply", "current_options"]
