"""cfgp dashboard: `panel serve app.py`. Composes views from the cfgp core; holds no science.

Each browser session gets its own widgets and active-learning state; the embedded default's
results (read-only) are loaded once per server with ``pn.cache``. Set CFGP_RUN to show another run folder.
"""

import cfgp  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import os
import threading

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from cfgp.al import STRATEGIES, ALSettings, History
from cfgp.artefacts import DEFAULT_RUN
from cfgp.calibration import regression_metrics
from cfgp.data import DataError, parse_cif
from cfgp.embedding import TSNESettings, place, run_tsne, tsne
from cfgp.gp import device_label
from cfgp.pipeline import AL_DIR, Run, active_learner, load_al_histories, load_gp, predictions
from cfgp import plots

pn.extension("tabulator", "plotly", sizing_mode="stretch_width", notifications=True)
hv.extension("bokeh", logo=False)

MAX_UPLOAD_BYTES = 2_000_000
COLOURINGS = {"DFT E_f": "dft", "GP E_f": "gp", "σ": "sigma", "residual": "residual", "z-score": "z",
              "split": "split", "phosphates": "phosphate", "element": "element"}


@pn.cache
def default_results():
    """Shared, read-only results of the run (loaded once per server, never trained)."""
    run = Run(os.environ.get("CFGP_RUN", DEFAULT_RUN))
    gp = load_gp(run)
    pred = predictions(run, gp)
    frame = plots.predictions_frame(run.materials.frame, pred["mean"], pred["std"], run.split.labels(len(run.materials)))
    frame["row"] = np.arange(len(frame))
    X = run.latents()
    return {"run": run, "gp": gp, "frame": frame, "X": X, "Xs": gp.scaler_.transform(np.nan_to_num(X)),
            "xy": run_tsne(run, TSNESettings()), "al": load_al_histories(run), "lock": threading.Lock()}


@pn.cache
def featurizer():
    """The shipped MEGNet, loaded on the first prediction (building it takes ~20 s once per server)."""
    return default_results()["run"].featurizer()


class Shared(param.Parameterized):
    """Per-session reactive state shared between views."""

    selected = param.List(default=[], doc="rows of the results frame brushed on any plot")
    picked = param.List(default=[], doc="material ids labelled by this session's active-learning run")
    xy = param.Array(default=None, doc="current 2-D map coordinates")


def note(text: str) -> pn.pane.Markdown:
    return pn.pane.Markdown(text, styles={"font-size": "0.95em"}, margin=(0, 10))


def material_details(res, i: int):
    """Markdown and a 3-D structure figure for row i of the results frame."""
    r = res["frame"].iloc[i]
    text = (f"### {r.formula} ({r.material_id})\nspace group {r.spacegroup_symbol}, {r.nsites} atoms per cell, "
            f"{r.split or 'unused'} split{' · phosphate' if r.is_phosphate else ''}\n\n"
            f"DFT E_f **{r.dft:.3f}** eV/atom · GP **{r.gp:.3f} ± {r.sigma:.3f}** (2σ: {r.gp - 2 * r.sigma:.3f} to "
            f"{r.gp + 2 * r.sigma:.3f}) · z = {r.z:.2f} · |residual| − 2σ = {r.excess:.3f}")
    try:
        return text, plots.structure_figure(res["run"].materials.structure(i))
    except DataError as exc:
        return text + f"\n\nStructure unavailable: {exc}", None


def latent_map_view(res, shared):
    frame = res["frame"]
    colour = pn.widgets.Select(name="colour by", options=COLOURINGS, value="dft", width=160)
    element = pn.widgets.TextInput(name="element", value="P", width=80)
    perplexity = pn.widgets.IntSlider(name="perplexity", start=5, end=100, step=5, value=30, width=200)
    live = pn.widgets.Button(name="Recompute t-SNE live", button_type="primary", width=190)
    progress = pn.indicators.Progress(value=0, max=100, width=200, visible=False)
    status = pn.pane.Markdown("Map: precomputed t-SNE, perplexity 30.")
    xy = shared

    def build(colour_by, el, coords, sel):
        pts = plots.latent_map(frame, coords, color_by=colour_by, element=el or "P", picked=shared.picked).opts(
            min_height=480)
        return pts.opts(selected=list(sel)) if sel else pts

    dmap = hv.DynamicMap(pn.bind(build, colour, element, xy.param.xy, shared.param.selected))
    brush = hv.streams.Selection1D(source=dmap)
    brush.add_subscriber(lambda index=None: setattr(shared, "selected", list(index)) if index else None)
    plot = pn.pane.HoloViews(dmap, min_height=480)
    structure = pn.pane.Plotly(None, height=360, config={"displaylogo": False}, visible=False)

    def details(sel):
        if len(sel) != 1:
            structure.visible = False
            return pn.pane.Markdown(f"{len(sel)} materials brushed." if sel else
                                    "Click a point (tap tool) for its details and crystal structure.")
        text, fig = material_details(res, int(sel[0]))
        structure.object, structure.visible = fig, fig is not None
        return pn.pane.Markdown(text)

    def recompute(_):
        live.disabled, progress.visible = True, True
        settings = TSNESettings(perplexity=float(perplexity.value), seed=0)
        total = settings.n_iter + settings.early_exaggeration_iter
        doc = pn.state.curdoc

        def push(it, kl, emb):
            def update():
                progress.value = int(100 * it / total)
                status.object = f"t-SNE iteration {it} of {total}, KL divergence {kl:.3f}"
                xy.xy = emb
            doc.add_next_tick_callback(update)

        def work():
            try:
                out = tsne(res["Xs"], settings, callback=push, callback_every=50)
                doc.add_next_tick_callback(lambda: setattr(xy, "xy", out))
                msg = f"Map: live t-SNE, perplexity {perplexity.value} (converged)."
            except Exception as exc:  # keep the app alive whatever happens
                msg = f"t-SNE failed: {exc}"

            def done():
                status.object, live.disabled, progress.visible = msg, False, False
            doc.add_next_tick_callback(done)

        threading.Thread(target=work, daemon=True).start()

    live.on_click(recompute)
    return pn.Column(
        note("**Latent map.** Each dot is an oxide; MEGNet turned its crystal into 32 numbers and t-SNE placed "
             "similar vectors close together. Colour by energy to see that the network learned chemistry, by σ "
             "to see where the GP is unsure (far from training materials), by split to see what active learning "
             "picked. Hover for details, click a point for its structure; recompute to watch t-SNE converge."),
        pn.Row(colour, element, perplexity, live, progress),
        note("Brush materials with box or lasso select: the same materials are selected on the calibration "
             "plots and their metrics are recomputed there."),
        status, plot, pn.bind(details, shared.param.selected), structure, name="Latent map")


def calibration_view(res, shared):
    frame = res["frame"]
    split = pn.widgets.RadioButtonGroup(name="materials", options=["test", "pool", "train"], value="test")
    phosphates = pn.widgets.Checkbox(name="phosphates only", value=False)

    def rows(s, p):
        f = frame[frame.split == s]
        return f[f.is_phosphate] if p else f

    def linked(plot_fn, points_at, **overlay_opts):
        """A plot whose Points layer is brushable; its selection is shared with every view."""
        def points(s, p, sel):
            f = rows(s, p)
            pts = plot_fn(f).get(points_at).opts(tools=["hover", "box_select", "lasso_select"])
            local = np.flatnonzero(np.isin(f.row.to_numpy(), sel)).tolist()
            return pts.opts(selected=local) if sel else pts

        def rest(s, p):
            return hv.Overlay([e for i, e in enumerate(plot_fn(rows(s, p))) if i != points_at])

        pts = hv.DynamicMap(pn.bind(points, split, phosphates, shared.param.selected))
        brush = hv.streams.Selection1D(source=pts)

        def on_select(index=None):
            if index:
                f = rows(split.value, phosphates.value)
                new = f.row.to_numpy()[np.asarray(index, dtype=int)].tolist()
                if sorted(new) != sorted(shared.selected):
                    shared.selected = new
        brush.add_subscriber(on_select)
        return (hv.DynamicMap(pn.bind(rest, split, phosphates)) * pts).opts(
            hv.opts.Overlay(responsive=True, min_height=320, shared_axes=False, **overlay_opts))

    parity = linked(plots.parity, 1, title="GP vs DFT (±2σ bars on 100)", xlabel="DFT E_f (eV/atom)",
                    ylabel="GP E_f (eV/atom)")
    resid = linked(plots.residual_vs_sigma, 0, title="|residual| vs σ", xlabel="σ (eV/atom)",
                   ylabel="|residual| (eV/atom)")
    clear = pn.widgets.Button(name="Clear selection", width=140)
    clear.on_click(lambda _: setattr(shared, "selected", []))


    def metrics_view(s, p, sel):
        f = rows(s, p)
        label = f"{len(f)} {s} materials" + (" (phosphates)" if p else "")
        if sel:
            f = f[f.row.isin(sel)]
            label = f"{len(f)} selected of the {label}"
        if len(f) < 3:
            return pn.pane.Alert(f"{label}: too few to score.", alert_type="warning")
        table = plots.metrics_table(regression_metrics(f.gp, f.sigma, f.dft))
        return pn.Column(pn.pane.Markdown(f"**Metrics for {label}**"),
                         pn.widgets.Tabulator(table, show_index=False, disabled=True, height=400,
                                              formatters={"value": {"type": "money", "precision": 4}}))

    return pn.Column(
        note("**Is the uncertainty honest?** Left: GP vs DFT with ±2σ bars on 100 random materials. Middle: "
             "|residual| against σ, coloured by |residual| − 2σ; red points lie outside their 95 % interval (the "
             "paper's outliers, many of them phosphates). Right: share of DFT values inside intervals of each "
             "nominal size; calibrated means on the dashed line. Brush points (box or lasso) to score a subset."),
        pn.Row(split, phosphates, clear),
        pn.Row(pn.pane.HoloViews(parity, min_height=340), pn.pane.HoloViews(resid, min_height=340),
               pn.pane.HoloViews(pn.bind(lambda s, p: plots.calibration_plot(rows(s, p)), split, phosphates),
                                 min_height=340)),
        pn.bind(metrics_view, split, phosphates, shared.param.selected),
        name="Calibration")


def al_view(res, shared):
    frame, xy = res["frame"], res["xy"]
    committed = {"live run": None}
    for path in sorted((res["run"].dir / AL_DIR).glob("*.jsonl")):
        committed[f"replay {path.stem}"] = path
    strategy = pn.widgets.Select(name="strategy", options=sorted(STRATEGIES), value="entropy", width=150)
    seed = pn.widgets.IntInput(name="seed", value=0, start=0, width=80)
    batch = pn.widgets.IntInput(name="batch size", value=1, start=1, end=100, width=90)
    cycles = pn.widgets.IntInput(name="cycles", value=300, start=1, end=5000, width=90)
    source = pn.widgets.Select(name="run", options=list(committed), value="live run", width=260)
    play_btn = pn.widgets.Button(name="▶ Play", button_type="success", width=90)
    pause_btn = pn.widgets.Button(name="❚❚ Pause", button_type="warning", width=90)
    step_btn = pn.widgets.Button(name="Step", button_type="primary", width=80)
    reset = pn.widgets.Button(name="Reset", width=80)
    speed = pn.widgets.IntSlider(name="steps per second", start=1, end=20, value=4, width=180)
    status = pn.pane.Markdown("Press Step or Play.", name="al-status")
    cycle_label = pn.pane.Markdown("cycle 0", name="al-cycle")
    state = {"learner": None, "records": [], "replay": None, "pos": 0, "cb": None}

    baseline = {k: v for k, v in res["al"].items() if k.startswith("random")}

    def curve_plot(records):
        title = "Test MAE vs labels (grey band: committed random runs)"
        base = plots.al_curves(baseline, title=title) if baseline else \
            hv.Overlay([hv.Curve([], "labels added", "MAE (eV/atom)")]).opts(title=title)
        if records:
            n0 = records[0]["n_train"]
            live = hv.Curve(([r["n_train"] - n0 for r in records], [r["mae"] for r in records]),
                            "labels added", "MAE (eV/atom)", label="this run").opts(color="#d62728", line_width=3)
            base = base * live
        return base.opts(hv.opts.Overlay(responsive=True, min_height=320, legend_position="top_right"))

    def map_plot(sigma_pool, pool_rows, picked_rows):
        """Same four layers every step (a changing layer structure breaks in-place updates)."""
        f = frame.assign(x=xy[:, 0], y=xy[:, 1])
        if sigma_pool is None:  # before a run starts: the GP's σ over the whole pool split
            pool_rows = f.row[f.split == "pool"].to_numpy()
            sigma_pool = f.sigma.to_numpy()[pool_rows]
        pool = f.iloc[pool_rows].assign(sigma_now=sigma_pool)
        picked = f.iloc[list(picked_rows)]
        latest = picked.iloc[len(picked) - min(batch.value, len(picked)):]
        return hv.Overlay([
            hv.Points(f, ["x", "y"]).opts(color="#e0e0e0", size=2),
            hv.Points(pool, ["x", "y"], ["sigma_now", "formula", "material_id"]).opts(
                color="sigma_now", cmap="plasma", size=3, colorbar=True, clabel="pool σ now (eV/atom)",
                tools=["hover"]),
            hv.Points(picked, ["x", "y"], ["formula", "material_id"]).opts(color="black", size=7, marker="star"),
            hv.Points(latest, ["x", "y"]).opts(color="#00e5ff", size=14, marker="circle", fill_alpha=0,
                                               line_width=3),
        ]).opts(hv.opts.Overlay(responsive=True, min_height=320, xaxis=None, yaxis=None,
                                title="Pool coloured by σ; stars: labelled by AL"))

    # Pipes update the plots' data in place instead of rebuilding them every step
    curve_pipe = hv.streams.Pipe(data=[])
    map_pipe = hv.streams.Pipe(data=(None, [], []))
    curve_pane = pn.pane.HoloViews(hv.DynamicMap(lambda data: curve_plot(data), streams=[curve_pipe]),
                                   min_height=320)
    map_pane = pn.pane.HoloViews(hv.DynamicMap(lambda data: map_plot(*data), streams=[map_pipe]), min_height=320)

    def start():
        if source.value != "live run":
            header, records = History(committed[source.value]).read()
            state.update(replay=records, pos=1, records=records[:1], learner=None)
            s = header["settings"]
            status.object = (f"Replaying committed run: {s['strategy']}, batch {s['batch_size']}, seed {s['seed']}, "
                             f"{len(records) - 1} cycles (no GP work needed).")
            return
        settings = ALSettings(strategy=strategy.value, cycles=cycles.value, batch_size=batch.value, seed=seed.value)
        with res["lock"]:
            learner = active_learner(res["run"], settings, res["gp"])
        state.update(learner=learner, records=[learner.record()], replay=None, pos=0)
        status.object = (f"Live run: {settings.strategy}, batch {settings.batch_size}, seed {settings.seed}; "
                         f"pool {learner.n_pool}, start MAE {state['records'][0]['mae']:.4f} eV/atom. "
                         f"GP updates run on **{device_label()}** ({learner.posterior.backend} backend).")

    def refresh():
        recs = state["records"]
        last = recs[-1]
        cycle_label.object = (f"**cycle {last['cycle']}** · labelled {last['n_train']} · test MAE "
                              f"{last['mae']:.4f} eV/atom · 2σ coverage {last['coverage_2sigma']:.3f} · "
                              f"last step {1000 * last['seconds']:.1f} ms")
        curve_pipe.send(list(recs))
        learner = state["learner"]
        ids_to_row = dict(zip(frame.material_id, frame.row))
        picked_ids = [p for r in recs[1:] for p in r["picked"]]
        picked_rows = [ids_to_row[p] for p in picked_ids]
        shared.picked = picked_ids  # the latent map's "split" colouring shows them (no redraw here)
        if learner is not None:
            avail = learner.available
            pool_rows = learner.pool_index[avail]
            sigma = learner.posterior.std[: learner.n_pool][avail]
            map_pipe.send((sigma, pool_rows, picked_rows))
        else:
            map_pipe.send((None, [], picked_rows))

    def do_step(_=None):
        try:
            if state["learner"] is None and state["replay"] is None:
                start()
            if state["replay"] is not None:
                if state["pos"] >= len(state["replay"]):
                    stop()
                    return
                state["records"] = state["replay"][: state["pos"] + 1]
                state["pos"] += 1
            else:
                learner = state["learner"]
                if learner.cycle >= learner.settings.cycles or not learner.available.any():
                    stop()
                    status.object += " Finished."
                    return
                state["records"].append(learner.step())
            refresh()
        except Exception as exc:  # a failed step must not kill the session
            stop()
            pn.state.notifications.error(f"Active-learning step failed: {exc}")

    def do_reset(_=None):
        stop()
        state.update(learner=None, records=[], replay=None, pos=0)
        curve_pipe.send([])
        map_pipe.send((None, [], []))
        cycle_label.object = "cycle 0"
        status.object = "Reset. Press Step or Play."

    def playing() -> bool:
        return state["cb"] is not None

    def stop():
        if state["cb"] is not None:
            state["cb"].stop()
            state["cb"] = None

    def tick():
        if playing():
            do_step()

    def on_play(_=None):
        if not playing():
            state["cb"] = pn.state.add_periodic_callback(tick, period=int(1000 / speed.value))

    def on_speed(event):
        if state["cb"] is not None:
            state["cb"].period = int(1000 / event.new)

    step_btn.on_click(do_step)
    reset.on_click(do_reset)
    play_btn.on_click(on_play)
    pause_btn.on_click(lambda _: stop())
    speed.param.watch(on_speed, "value")
    for w in (strategy, seed, batch, cycles, source):
        w.param.watch(lambda e: do_reset(), "value")

    return pn.Column(
        note("**Which material should DFT compute next?** Each step labels pool oxides chosen by the strategy "
             "(entropy: largest σ; random; batch-diverse; UCB/EI: hunt for the lowest formation energy), reveals "
             "their DFT energy and updates the GP by a Cholesky update, without refitting. Watch the test MAE fall "
             "against the band of committed random runs, and σ shrink around the picks. Committed default runs "
             "replay instantly."),
        pn.Row(source, strategy, seed, batch, cycles),
        pn.Row(play_btn, pause_btn, step_btn, reset, speed),
        status, cycle_label,
        pn.Row(curve_pane, map_pane),
        name="Active learning")


def inspector_view(res):
    frame = res["frame"]
    split = pn.widgets.Select(name="split", options=["test", "pool", "train", "all"], value="test", width=120)
    phos = pn.widgets.Checkbox(name="phosphates only", value=False)
    element = pn.widgets.TextInput(name="contains element", value="", placeholder="e.g. Li", width=140)
    cols = ["material_id", "formula", "spacegroup_symbol", "dft", "gp", "sigma", "z", "excess", "split"]
    table = pn.widgets.Tabulator(pd.DataFrame(columns=cols), show_index=False, disabled=True, height=430,
                                 pagination="local", page_size=15, selectable=1, name="outliers")
    details = pn.pane.Markdown("Click a row to see the material and its crystal structure.", name="details")
    structure = pn.pane.Plotly(None, height=380, config={"displaylogo": False})

    def update(*_):
        f = frame if split.value == "all" else frame[frame.split == split.value]
        if phos.value:
            f = f[f.is_phosphate]
        el = element.value.strip()
        if el:
            f = f[f.formula.str.contains(rf"{el}(?![a-z])", regex=True)]
        table.value = f.sort_values("excess", ascending=False).head(300)[cols].round(4).reset_index(drop=True)

    def on_click(event):
        row = table.value.iloc[event.row]
        i = int(frame.index[frame.material_id == row.material_id][0])
        details.object, structure.object = material_details(res, i)

    for w in (split, phos, element):
        w.param.watch(update, "value")
    table.on_click(on_click)
    update()
    return pn.Column(
        note("**Outliers.** Materials whose DFT value lies furthest outside the GP's ±2σ interval (largest "
             "|residual| − 2σ first). The paper found phosphates among the worst; filter to compare. Click a row "
             "for its crystal structure (drag to rotate)."),
        pn.Row(split, phos, element),
        pn.Row(table, pn.Column(details, structure)),
        name="Outliers")


def predict_view(res):
    frame, xy = res["frame"], res["xy"]
    upload = pn.widgets.FileInput(accept=".cif", multiple=False, name="CIF file")
    result = pn.pane.Markdown("Upload a CIF file (up to 2 MB) to predict its formation energy.", name="prediction")
    map_pane = pn.pane.HoloViews(plots.latent_map(frame, xy, color_by="dft").opts(min_height=380), min_height=380)

    def on_upload(event):
        data, name = upload.value, upload.filename or "upload.cif"
        if data is None:
            return
        try:
            if len(data) > MAX_UPLOAD_BYTES:
                raise DataError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{name} is not a text CIF file") from None
            structure = parse_cif(text)
            result.object = f"Parsed {structure.composition.reduced_formula}; computing its MEGNet latent…"
            with res["lock"]:
                X = featurizer().transform([structure], names=[name])
            mean, std = res["gp"].predict(X, return_std=True)
            pos = place(res["Xs"], xy, res["gp"].scaler_.transform(X))
            result.object = (
                f"### {structure.composition.reduced_formula} ({name})\n"
                f"Predicted formation energy **{mean[0]:.3f} ± {std[0]:.3f} eV/atom** (95 % interval "
                f"{mean[0] - 2 * std[0]:.3f} to {mean[0] + 2 * std[0]:.3f}). A σ much larger than the typical "
                f"{np.median(frame.sigma):.3f} means the material is unlike the training oxides.")
            map_pane.object = (plots.latent_map(frame, xy, color_by="dft").opts(min_height=380)
                               * hv.Points(pos, label="your material").opts(color="black", size=16, marker="x",
                                                                          line_width=3))
        except DataError as exc:
            result.object = f"**Could not use this file.** {exc}"
            pn.state.notifications.error(str(exc)[:200])
        except Exception as exc:  # never crash the session on a bad upload
            result.object = f"**Could not use this file.** {type(exc).__name__}: {exc}"

    upload.param.watch(on_upload, "value")
    return pn.Column(
        note("**Predict a new material.** Upload a CIF: MEGNet turns it into a latent vector, the GP predicts its "
             "formation energy with σ, and the cross shows where it sits on the latent map. The first prediction "
             "loads the network (~20 s)."),
        upload, result, map_pane, name="Predict")


def create_app():
    res = default_results()
    h = res["gp"].hyperparameters_
    header = pn.pane.Markdown(
        f"## cfgp — uncertainty-aware ML of oxide formation energies\n"
        f"{len(res['frame']):,} Materials Project oxides · MEGNet latents → Laplacian GP "
        f"(a = {h['amplitude']:.3f}, l = {h['length_scale']:.3f}, noise σ² = {h['noise_variance']:.2e}) · "
        f"**GP device: {device_label()}**", name="header")
    shared = Shared(xy=res["xy"])  # one per browser session
    tabs = pn.Tabs(latent_map_view(res, shared), calibration_view(res, shared), al_view(res, shared), inspector_view(res),
                   predict_view(res), dynamic=False)
    return pn.Column(header, tabs, max_width=1500)


if __name__.startswith("bokeh"):
    create_app().servable(title="cfgp")
