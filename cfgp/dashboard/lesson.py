"""A guided tour through the paper, for a class: six steps, each a short text and the dashboard set to show it.

A teacher opens the dashboard, presses "Lesson" and walks the class through latent space → the GP and its σ →
calibration → outliers (phosphates) → entropy against random active learning → predicting their own CIF, with
Next and Back. Nothing has to be prepared: every number in the texts is computed from the run being served
(:func:`lesson_steps`, once per server), and each step sets the dashboard — tab, colouring, filters, the material
shown, the replayed active-learning run — through :meth:`cfgp.dashboard.view_state.ViewSync.apply`, the same
function that restores a shared link. The panel sits beside the tabs, in large type, and stays on screen while the
page scrolls to what the step talks about (:attr:`Step.in_view`), so that text and figure share one projector
screen.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import panel as pn
import param

from cfgp.al import ALSettings, labels_to_reach
from cfgp.al_replay import band_for, committed_groups
from cfgp.dashboard import untrusted
from cfgp.dashboard.active_learning import precomputed
from cfgp.dashboard.calibration import outlier_summary, split_view
from cfgp.dashboard.shared import ServerData
from cfgp.dashboard.view_state import DashboardParts, ViewSync, as_text, parse_int, soon
from cfgp.pipeline import al_label
from cfgp.results import phosphate_verdict


@dataclass(frozen=True)
class Step:
    """One step of the lesson: what the class reads and the view that shows it."""

    title: str
    text: str  # Markdown; numbers come from the run
    view: dict[str, str]  # query name → value, applied by ViewSync.apply
    #: what the step promises the dashboard shows (for the reader of the code and the tests): tab label,
    #: colouring title, material id
    shows: dict[str, str] = field(default_factory=dict)
    #: the CSS classes of what the text talks about: the page scrolls them into view beside the lesson panel
    in_view: tuple[str, ...] = ()


def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}".replace("-", "−")


def _material_line(r) -> str:
    t = untrusted.text  # names and ids come from the data file
    return (f"**{t(r.formula)} ({t(r.material_id)})**: DFT {_f(r.dft)} eV/atom, GP {_f(r.gp)} ± {_f(r.sigma)} eV/atom "
            f"(z = {_f(r.z, 1)})")


def _latent_step(data: ServerData) -> Step:
    from scipy.spatial import cKDTree

    f = data.frame
    dft = f["dft"].to_numpy(float)
    ok = np.flatnonzero(np.isfinite(dft) & np.isfinite(data.xy).all(axis=1))
    lo, hi = np.percentile(dft[ok], [1, 99])
    # how alike map neighbours are: each material against its nearest neighbour on the map, and against a random one
    _, nn = cKDTree(data.xy[ok]).query(data.xy[ok], k=2)
    near = float(np.mean(np.abs(dft[ok] - dft[ok][nn[:, 1]])))
    rng = np.random.default_rng(0)
    far = float(np.mean(np.abs(dft[ok] - dft[ok][rng.permutation(len(ok))])))
    text = (f"Each dot is one of the **{len(f):,} oxides** of this data set. A graph network (MEGNet) turned each "
            f"crystal into **{data.X.shape[1]} numbers**, its *latent vector*; t-SNE draws vectors that are alike "
            f"close together. The colour is the DFT formation energy, from {_f(lo, 2)} to {_f(hi, 2)} eV/atom "
            f"(1st to 99th percentile). Neighbours on the map have similar energies: a material differs from its "
            f"nearest neighbour by **{_f(near, 2)} eV/atom** on average, from a random material by "
            f"**{_f(far, 2)} eV/atom**. The network learned chemistry that matters for the energy.")
    return Step("The latent space", text, {"tab": "map", "colour": "dft", "material": ""},
                {"tab": "Latent map", "colour": "DFT E_f (eV/atom)"}, ("latent-map-figure",))


def _sigma_step(data: ServerData) -> Step:
    f = data.frame
    test = f[(f["split"] == "test") & np.isfinite(f["dft"].to_numpy(float))]
    n_train = int((f["split"] == "train").sum())
    sig = f["sigma"].to_numpy(float)
    sig = sig[np.isfinite(sig)]
    text = (f"A Gaussian process (GP) on the latent vectors predicts the formation energy **with an error bar σ**. "
            f"It learned from {n_train:,} training oxides; on the {len(test):,} test oxides it never saw, it is off "
            f"by **{_f(float(np.mean(np.abs(test['residual']))))} eV/atom** on average (MAE). σ ranges from "
            f"{_f(float(sig.min()))} to {_f(float(sig.max()))} eV/atom (median {_f(float(np.median(sig)))}); bright "
            f"regions of the map are where the GP is unsure, far from what it learned from.")
    view = {"tab": "map", "colour": "sigma", "material": ""}
    shows = {"tab": "Latent map", "colour": "GP σ (eV/atom)"}
    if len(test):
        r = test.loc[test["sigma"].idxmax()]
        text += f" Selected: the test oxide with the largest σ, {_material_line(r)}."
        view["material"] = shows["material"] = str(r.material_id)
    return Step("The GP and its σ", text, view, shows,
                ("latent-map-figure", "details-structure") if "material" in shows else ("latent-map-figure",))


def _calibration_step(data: ServerData) -> Step:
    v = split_view(data, "test", False)
    m = v.metrics
    if m is None:
        text = "This run has too few test materials to check σ."
    else:
        text = (f"Is σ honest? If it is, about **95 %** of the true (DFT) values lie within ±2σ of the prediction. "
                f"On the **{int(m['n']):,} test oxides, {100 * m['coverage_2sigma']:.1f} %** do "
                f"(within ±1σ: {100 * m['coverage_1sigma']:.1f} %, ideal 68.3 %). The calibration curve (right) "
                f"compares every interval size with the share of values inside it: a calibrated σ follows the "
                f"dashed diagonal; the area between them is **{_f(m['miscalibration_area'])}** (0 is perfect). "
                f"Points above the dashed line in the middle plot lie outside their ±2σ interval.")
    return Step("Calibration: is σ honest?", text,
                {"tab": "calibration", "cal_split": "test", "cal_phosphates": "false", "material": ""},
                {"tab": "Calibration", "metrics": f"Metrics for {len(v.rows):,} {v.label}"}, ("calibration-figures",))


#: the outlier step's words for each :func:`cfgp.results.phosphate_verdict`
VERDICTS = {"over": "more than their share", "under": "fewer than their share: here they are not over-represented",
            "about": "about their share"}


def _outlier_step(data: ServerData) -> Step:
    f = data.frame
    s = outlier_summary(data, "test")
    view = {"tab": "outliers", "out_split": "test", "out_phosphates": "true", "out_element": "", "material": ""}
    shows = {"tab": "Outliers"}
    if not s["n"]:
        return Step("Outliers: the phosphates", "This run has no test materials to look at.", view, shows,
                    ("outliers",))
    share_all = s["phosphates"] / s["n"]
    text = (f"**{s['outside']:,} of the {s['n']:,} test oxides** ({100 * s['outside'] / s['n']:.1f} %) lie outside "
            f"their ±2σ interval (a calibrated σ puts about 5 % there). The paper found **phosphates** — "
            f"PO4 tetrahedra, some with an apical O replaced by H or F — over-represented among such outliers "
            f"(here a phosphate is a material with such a unit by its bonds, not any oxide containing P). ")
    if s["outside"]:
        share_out = s["phosphates_outside"] / s["outside"]
        verdict = VERDICTS[phosphate_verdict(s)]
        text += (f"Here {s['phosphates_outside']:,} of them are phosphates ({100 * share_out:.0f} %), against "
                 f"{100 * share_all:.0f} % of all test oxides — {verdict}. ")
    ok = np.isfinite(f["excess"].to_numpy(float))
    phos = f[ok & (f["split"] == "test") & f["is_phosphate"].to_numpy(bool)]
    if len(phos):
        r = phos.loc[phos["excess"].idxmax()]
        text += f"The table shows the test phosphates, worst first. The worst, {_material_line(r)}, "
        text += (f"lies outside its ±2σ interval by {_f(float(r.excess))} eV/atom: look at its structure on the "
                 f"right — what is unusual about it?" if r.excess > 0 else
                 f"is still inside its ±2σ interval (by {_f(-float(r.excess))} eV/atom): in this run even the worst "
                 f"phosphate is covered by its error bar.")
        view["material"] = shows["material"] = str(r.material_id)
    else:
        text += "This run has no phosphates in its test split."
    return Step("Outliers: the phosphates", text, view, shows,
                ("outliers", "details-structure") if "material" in shows else ("outliers",))


def _other_runs(replays, shown: set[str]) -> str:
    """The committed run groups of the tab's menu beyond ``shown``, in words: label and seed count (what a
    fine-tuned label's "-ft" means said once)."""
    groups = {k: v for k, v in committed_groups(rp.settings for rp in replays.values()).items() if k not in shown}
    words = ", ".join(f"{label} ({n} seed{'s' if n != 1 else ''})" for label, (n, _) in groups.items())
    tuned = any(t for _, t in groups.values())
    return words + ("; “-ftN”: MEGNet fine-tuned every N picks during the run" if tuned else "")


def _al_step(data: ServerData) -> Step:
    pre = precomputed(data)
    # the paper's setting: entropy with the network frozen (a fine-tuned run is one of the tab's other replays)
    entropy = sorted(((rp.settings.get("batch_size") or 1, rp.settings.get("seed", 0), stem)
                      for stem, rp in pre.replays.items()
                      if rp.settings.get("strategy") == "entropy" and rp.settings.get("finetune_every") is None))
    shows = {"tab": "Active learning"}
    if not entropy:
        text = ("Which material should the next DFT calculation be spent on? **Entropy** sampling picks the one "
                "with the largest σ; **random** picks any. This run has no committed entropy run to replay: press "
                "Play for a live one.")
        return Step("Active learning: entropy against random", text,
                    {"tab": "al", "al": "live", "strategy": "entropy", "seed": "0", "batch": "1", "material": ""},
                    shows, ("al-controls", "al-figures"))
    batch, seed, stem = entropy[0]
    rp = pre.replays[stem]
    # the random runs it is drawn against in the tab: the same settings where committed, else the frozen baseline
    label = band_for(rp.settings, pre.bands)
    band = next((b for b in pre.bands if b["label"] == label), None)
    cycle = rp.n_cycles
    text = (f"Which material should the next (expensive) DFT calculation be spent on? **Entropy** sampling asks for "
            f"the pool oxide with the largest σ, adds its DFT value and updates the GP; **random** picks any. Both "
            f"start from a test MAE of **{_f(float(rp.mae[0]))} eV/atom** with {int(rp.n_train[0]):,} labelled "
            f"oxides. ")
    if band is not None:
        last = int(min(rp.labels[-1], band["labels"][-1]))
        cycle = int(np.flatnonzero(rp.labels <= last)[-1])
        r_at = int(np.flatnonzero(band["labels"] <= last)[-1])
        rand = float(band["mean"][r_at])
        rand_final = float(band["mean"][-1])
        need = labels_to_reach(rp.mae, rp.labels, rand_final)
        text += (f"After **{int(rp.labels[cycle]):,} more labels**, entropy (seed {seed}) reaches "
                 f"**{_f(float(rp.mae[cycle]))} eV/atom**; random picks reach **{_f(rand)} eV/atom** (mean of "
                 f"{band['seeds']} seed{'s' if band['seeds'] > 1 else ''}, the grey band). ")
        if rand_final >= float(rp.mae[0]):
            text += "Random picks did not lower the MAE over these labels."
        elif need is not None:
            text += (f"Entropy needed **{need:,} labels** to match random's final MAE ({_f(rand_final)} eV/atom "
                     f"after {int(band['labels'][-1]):,}).")
        else:
            text += f"Within this run, entropy did not reach random's final MAE ({_f(rand_final)} eV/atom)."
        pool_e, pool_r = float(rp.pool_mae[cycle]), float(band["pool_mean"][r_at])
        if np.isfinite(pool_e) and np.isfinite(pool_r):
            gap_test = 100 * (float(rp.mae[cycle]) / rand - 1)
            gap_pool = 100 * (pool_e / pool_r - 1)
            text += (f" **Scored the paper's way** — on the pool materials still unlabelled (dotted lines) — entropy "
                     f"reaches **{_f(pool_e)}** against random's **{_f(pool_r)} eV/atom** ({gap_pool:+.0f} %), "
                     f"against {gap_test:+.0f} % on the fixed test set: entropy removes the pool's worst-predicted "
                     f"materials, so what is left looks better whether or not the model improved.")
    else:
        text += (f"After {int(rp.labels[-1]):,} more labels, entropy reaches {_f(float(rp.mae[-1]))} eV/atom "
                 f"(no committed random run to compare with).")
    others = _other_runs(pre.replays, {al_label(ALSettings(**rp.settings)), label})
    text += " Press Play to replay it, or pick another run" + (f": the menu also holds {others}." if others else ".")
    view = {"tab": "al", "al": "replay", "strategy": "entropy", "seed": str(seed), "batch": str(batch),
            "cycle": str(cycle), "material": ""}
    shows["cycle"] = str(cycle)
    return Step("Active learning: entropy against random", text, view, shows, ("al-controls", "al-figures"))


def _predict_step(data: ServerData) -> Step:
    f = data.frame
    train = f["split"] == "train"
    elements = sorted({e for els in data.run.materials.frame["elements"][train.to_numpy()] for e in els})
    text = (f"Your turn: upload a crystal structure (a CIF file, e.g. from the Materials Project, up to 2 MB). "
            f"MEGNet turns it into a latent vector and the GP predicts its formation energy ± σ in well under a "
            f"second once the network is loaded. The model learned from {int(train.sum()):,} oxides containing "
            f"{len(elements)} elements; a material unlike them — not an oxide, an element it never saw, or a latent "
            f"far from every training material — gets a **red warning**. Try an oxide, then a non-oxide.")
    return Step("Your own crystal", text, {"tab": "predict", "material": ""}, {"tab": "Predict"},
                ("predict-upload", "prediction"))


_STEPS: "weakref.WeakKeyDictionary[ServerData, list[Step]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def lesson_steps(data: ServerData) -> list[Step]:
    """The lesson's steps for this run (built once per server: every session of a class reads the same)."""
    with _LOCK:
        steps = _STEPS.get(data)
    if steps is None:
        steps = [build(data) for build in (_latent_step, _sigma_step, _calibration_step, _outlier_step, _al_step,
                                           _predict_step)]
        with _LOCK:
            steps = _STEPS.setdefault(data, steps)
    return steps


#: the side panel's width: ~40-45 characters of the lesson's type per line, narrower on a narrow window (at 1366 px
#: the Outliers table and the crystal beside it need all but ~340 px)
PANEL_WIDTH = "clamp(320px, 25vw, 440px)"

#: Scroll the page so that the views a step talks about (elements with the CSS classes in the value, before "|")
#: are inside the window beside the lesson panel, once they are drawn and their boxes stop moving, with the least
#: scroll. Class names come from the lesson's own steps, never from a user.
#: Only the newest step scrolls: waiting for its views to settle takes up to a few seconds, and an older step's
#: wait that ended after the class had moved on scrolled the page under the pointer (the sticky panel's buttons
#: moved by ~90 px as a click landed, and the click was lost); and a step whose views are still settling when the
#: reader presses a button or key, or turns the wheel, does not scroll after that: the reader has taken over, and a
#: scroll then (measured 180–900 ms after a step appears) would move the page under the reader's click. The page's
#: root element carries ``data-lesson-scroll="busy|done <value>"``: "done" once this step's scroll is over, so that
#: a script (and the browser tests) can wait for the page to come to rest before it clicks.
SCROLL_JS = """
const mine = cb_obj.value, page = document.documentElement;
const classes = mine.split('|')[0].split(' ').filter(Boolean);
page.dataset.lessonScroll = 'busy ' + mine;
// the reader acting (a press, a key, the wheel) ends this step's scroll: the page never moves under a click
const acts = ['pointerdown', 'keydown', 'wheel', 'touchstart'];
const done = () => { acts.forEach(a => removeEventListener(a, done, true));
  if (page.dataset.lessonScroll === 'busy ' + mine) page.dataset.lessonScroll = 'done ' + mine; };
if (!classes.length) { done(); return; }
acts.forEach(a => addEventListener(a, done, {capture: true, passive: true}));
const findEl = (root, css) => { for (const el of root.querySelectorAll('*')) {
    if (el.classList && el.classList.contains(css)) { const r = el.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) return el; }
    if (el.shadowRoot) { const e = findEl(el.shadowRoot, css); if (e) return e; } }
  return null; };
const find = (root, css) => { const e = findEl(root, css); return e ? e.getBoundingClientRect() : null; };
let tries = 0, last = null;
const go = () => {
  if (page.dataset.lessonScroll !== 'busy ' + mine) { done(); return; }  // a newer step, or the reader, took over
  const boxes = classes.map(c => find(document, c)).filter(Boolean);
  const key = boxes.map(r => [r.top, r.height].join(',')).join(';');
  if ((boxes.length < classes.length || key !== last) && ++tries < 60) { last = key; setTimeout(go, 150); return; }
  if (!boxes.length) { done(); return; }
  const top = Math.min(...boxes.map(r => r.top)), bottom = Math.max(...boxes.map(r => r.bottom));
  const h = window.innerHeight;
  if (top >= 0 && bottom <= h) { done(); return; }
  // the least scroll that shows them all (their top, if they are taller than the window)
  const by = (top < 0 || bottom - top > h - 12) ? top - 6 : bottom - h + 6;
  // near the page's end the page cannot scroll that far: lengthen the row of lesson and tabs (the box the lesson
  // panel sticks inside) by what is missing
  const el = document.scrollingElement, room = el.scrollHeight - el.clientHeight - el.scrollTop;
  const panel = findEl(document, 'lesson-panel'), row = panel ? panel.getRootNode().host : null;
  if (row && by > room) row.style.paddingBottom = Math.ceil(by - room + 2) + 'px';
  window.scrollBy({top: by, left: 0, behavior: 'instant'});
  done();
};
setTimeout(go, 150);
"""


class Lesson(pn.viewable.Viewer):
    """The tour's panel (above the tabs) and its header toggle; Next/Back apply each step's view."""

    step = param.Integer(default=0, bounds=(0, None), doc="the step shown (0-based)")
    active = param.Boolean(default=False, doc="the lesson panel is open")

    def __init__(self, parts: DashboardParts, views: ViewSync, **params):
        super().__init__(**params)
        self.parts, self.views = parts, views
        self._steps: list[Step] | None = None
        self.toggle = pn.widgets.Toggle(label="Lesson", color="primary", width=110, css_classes=["lesson-toggle"])
        self.counter = pn.pane.Markdown("", name="lesson-counter", css_classes=["lesson-counter"],
                                        styles={"font-size": "1.05em", "color": "var(--panel-on-surface-color, #555)", "opacity": "0.85"}, margin=(0, 10))
        self.title = pn.pane.Markdown("", name="lesson-title", css_classes=["lesson-title"],
                                      styles={"font-size": "1.5em", "font-weight": "bold"}, margin=(0, 10))
        self.text = pn.pane.Markdown("", name="lesson-text", css_classes=["lesson-text"],
                                     styles={"font-size": "1.3em", "line-height": "1.45"}, margin=(0, 10),
                                     sizing_mode="stretch_width")
        self.back = pn.widgets.Button(label="◀ Back", width=110, css_classes=["lesson-back"])
        self.next = pn.widgets.Button(label="Next ▶", color="primary", width=110, css_classes=["lesson-next"])
        self.close = pn.widgets.Button(label="Close lesson", width=130, css_classes=["lesson-close"])
        self.back.on_click(lambda _: soon(lambda: self.go(self.step - 1)))
        self.next.on_click(lambda _: soon(lambda: self.go(self.step + 1)))
        self.close.on_click(lambda _: setattr(self.toggle, "value", False))
        self.toggle.param.watch(self._on_toggle, "value")
        # hidden: carries the step's in_view classes to the browser, which scrolls them into view (SCROLL_JS)
        self.scroller = pn.widgets.TextInput(value="", visible=False, css_classes=["lesson-scroll"])
        self.scroller.jscallback(value=SCROLL_JS)
        self._scrolls = 0
        # a side panel that stays on screen while the page scrolls: the text beside the view it talks about, so
        # that both fit one projector screen (at the top, above the tabs, the view fell below the fold)
        self.panel = pn.Column(
            self.counter, pn.Row(self.back, self.next, self.close),
            self.title, self.text, self.scroller, visible=False, css_classes=["lesson-panel"],
            styles={"width": PANEL_WIDTH, "flex": "0 0 auto",
                    "background": "var(--panel-surface-color, #eef4fb)", "border": "2px solid #2a6fb0",
                    "border-radius": "6px", "position": "sticky", "top": "4px", "align-self": "flex-start",
                    "max-height": "calc(100vh - 8px)", "overflow-y": "auto"},
            margin=(5, 10))
        views.lesson_handler = self.open_at

    @property
    def steps(self) -> list[Step]:
        if self._steps is None:
            self._steps = lesson_steps(self.parts.data)
        return self._steps

    def _on_toggle(self, event) -> None:
        if event.new:
            if self.views.restoring:  # a link opened the lesson: the session is being built, apply now
                self.go(self.step)
            else:
                soon(lambda: self.go(self.step))
        else:
            self.active = self.panel.visible = False
            self.views.set_lesson(None)

    def open_at(self, value: Any) -> str | None:
        """Open the lesson at a step given as link text ('3'; empty closes it); a problem message or None."""
        text = as_text(value).strip()
        if not text:
            if self.toggle.value:
                self.toggle.value = False
            return None
        n = len(self.steps)
        try:
            i = parse_int(text)
            if not 1 <= i <= n:
                raise ValueError
        except ValueError:
            return (f"Link parameter lesson: {untrusted.quoted(text)} is not a step of the lesson (1 to {n}); the "
                    "lesson stays closed.")
        self.step = i - 1
        if self.toggle.value:
            soon(lambda: self.go(self.step))
        else:
            self.toggle.value = True  # opens at self.step
        return None

    def go(self, i: int) -> None:
        """Show step ``i`` (clamped) and set the dashboard to its view."""
        steps = self.steps
        i = int(min(max(i, 0), len(steps) - 1))
        s = steps[i]
        self.step, self.active, self.panel.visible = i, True, True
        # one message for the panel: sent one by one, the browser showed the new counter and title above the old
        # text for a moment (a reader, and a test, read a step half-changed)
        with pn.io.hold():
            self.counter.object = f"**Step {i + 1} of {len(steps)}**"
            self.title.object = s.title
            self.text.object = s.text
            self.back.disabled = i == 0
            self.next.disabled = i == len(steps) - 1
        messages = self.views.apply(s.view)
        self.views.set_lesson(i + 1)
        self.views.show_messages(messages, "lesson step")
        self._scrolls += 1  # a new value each time, so that going back to a step scrolls again
        value = " ".join(s.in_view) + f"|{self._scrolls}"
        if self.views.restoring and pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            # a link opened the lesson: the page is not drawn yet, and a value it starts with runs no callback
            pn.state.onload(lambda: setattr(self.scroller, "value", value))
        else:
            self.scroller.value = value

    def __panel__(self):
        return self.panel
