"""The ``cfgp`` console command: each pipeline step headless, with progress bars and JSON output."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cfgp.al import PAPER_POOL_SIZE, STRATEGIES, ALSettings, compare
from cfgp.al_finetune import FinetuneSettings, finetune_active_learning
from cfgp.al_metrics import fair_report
from cfgp.artefacts import (DEFAULT_RUN, ReadOnlyRunError, check_manifest, is_shipped_default, read_json,
                            write_manifest)
from cfgp.data import CIF_READERS, DEFAULT_DATASET, DEFAULT_ENERGY_WINDOW, MAX_DATASET_BYTES
from cfgp.embedding import TSNESettings, run_tsne
from cfgp.family_retrain import family_networks_report, retrain_without_family
from cfgp.featurize import BATCH_BONDS, DEFAULT_CUTOFF, SETTINGS_FILE, MEGNetSettings
from cfgp.gp import CFGP, LOCAL_ABOVE, N_INDUCING
from cfgp.learning_curve import learning_curve
from cfgp.local_gp import N_NEIGHBOURS
from cfgp.mpl_figures import al_curves_png, learning_curve_png
from cfgp.pipeline import (TRAIN_MAX_EPOCHS, TRAIN_MIN_REL_IMPROVEMENT, TRAIN_PATIENCE, Run, al_baselines, evaluate,
                           featurize, fit_gp, init_run, load_al_histories, load_gp, predictions,
                           read_al_histories, run_active_learning, shared_labels, train_megnet)
from cfgp.retrain import MAX_EPOCHS, MIN_REL_IMPROVEMENT, PATIENCE, retrain
from cfgp.retrain_report import BOOTSTRAP, retrain_report
from cfgp.screening import (DEFAULT_CHUNK_SIZE, DaskPredictor, JsonLinesSink, LocalPredictor, ParquetSink,
                            ScreeningModel, parquet_journal, resume_state, screen)
from cfgp.splits import PAPER_N_TEST, PAPER_N_TRAIN, PAPER_SUBSAMPLE, SplitSettings
from cfgp.uncertainty.applicability import evaluate_domain, fit_applicability, load_applicability, save_applicability
from cfgp.uncertainty.check_sets import check_set
from cfgp.uncertainty.family_holdout import HELD_OUT_FAMILIES, families_summary, family_report
from cfgp.uncertainty.metrics import METRIC_LABELS

#: the library's defaults, which the options' defaults and help texts are built from (never copied as numbers)
AL_DEFAULTS, FINETUNE_DEFAULTS, MEGNET_DEFAULTS, TSNE_DEFAULTS = (ALSettings(), FinetuneSettings(), MEGNetSettings(),
                                                                  TSNESettings())
MIB = 2**20
#: exit code of a usage error or a bad input (argparse's own for bad arguments)
USAGE_ERROR = 2


def _print_json(obj) -> None:
    print(json.dumps(obj, default=float), flush=True)


def cmd_train(args) -> int:
    if is_shipped_default(args.run):
        raise ReadOnlyRunError(f"{args.run} is the shipped default and is not retrained (a new model would "
                               "replace every shipped result); give --run FOLDER for a run of your own")
    split = SplitSettings(seed=args.seed, n_train=args.n_train, n_test=args.n_test,
                          subsample=PAPER_SUBSAMPLE if args.paper_subsample else None)
    window = None if args.no_energy_window else tuple(args.energy_window)
    run = init_run(args.run, data=args.data, split=split, energy_window=window)
    print(run.materials.report.summary(), file=sys.stderr)
    cutoff = args.cutoff if args.cutoff is not None else train_cutoff(run.dir)
    settings = MEGNetSettings(seed=args.seed, batch_size=args.batch_size, lr=args.lr, cutoff=cutoff)
    t0 = time.time()
    feat, state = train_megnet(run, settings, epochs=args.epochs, patience=args.patience,
                               min_rel_improvement=args.min_improvement / 100,
                               max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    out = {"run": str(run.dir), "epochs_run": state.epoch, "best_epoch": state.best_epoch,
           "best_val_mae": state.best_val_mae, "finished": state.finished, "reason": state.reason,
           "seconds": round(time.time() - t0, 1)}
    _print_json(out)
    return 0


def train_cutoff(run_dir: str | Path) -> float:
    """The cut-off a `cfgp train` without --cutoff uses: the run's own when it resumes a checkpoint (so a 5 Å run
    resumes as 5 Å), else the one default, cfgp.featurize.DEFAULT_CUTOFF."""
    saved = Path(run_dir) / "training" / SETTINGS_FILE
    try:
        return float(read_json(saved)["cutoff"])
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable: training itself says which
        return DEFAULT_CUTOFF


def _run(args):
    return Run(args.run)


def refuse_folder(path: Path | None, option: str) -> None:
    """A ValueError if the output file ``path`` of ``option`` is a folder: checked before any work, so that a long
    computation does not end in an IsADirectoryError when its result is written."""
    if path is not None and path.is_dir():
        raise ValueError(f"{path}: is a folder; {option} takes a file name")


def cmd_featurize(args) -> int:
    run = _run(args)
    t0 = time.time()
    X = featurize(run, progress=not args.quiet)
    import numpy as np

    _print_json({"run": str(run.dir), "n": int(len(X)), "failed": int((~np.isfinite(X).all(axis=1)).sum()),
                 "dim": int(X.shape[1]), "seconds": round(time.time() - t0, 1)})
    return 0


def cmd_fit(args) -> int:
    run = _run(args)
    seed = run.settings["split"]["seed"] if args.seed is None else args.seed
    scaling = dict(method=args.method, n_inducing=args.n_inducing, inducing=args.inducing,
                   n_neighbours=args.n_neighbours)
    gp = CFGP.paper(seed=seed, **scaling) if args.paper else CFGP(seed=seed, feature_scaling=None if args.feature_scaling == "none" else args.feature_scaling, **scaling)
    t0 = time.time()
    gp = fit_gp(run, gp, refit=args.refit, held_out=args.held_out)
    seconds = round(time.time() - t0, 1)
    predictions(run, reader=False)  # every material's mean and σ from gp.json as readers load it, kept for them
    _print_json({"run": str(run.dir), **gp.hyperparameters_, "fit_info": gp.to_dict()["fit_info"],
                 "device": gp.device_, "method": gp.method_, "seconds": seconds})
    return 0


def cmd_evaluate(args) -> int:
    t0 = time.time()
    run = _run(args)
    gp = load_gp(run)
    out = evaluate(run, gp)
    check = None
    if args.check_set:
        check = check_set(run, args.check_set, n=args.check_set_n or None, progress=True)
    out.update(evaluate_domain(run, gp, check))
    if args.families:
        out["families"] = families_summary(run)
    out["seconds_total"] = round(time.time() - t0, 2)
    if args.json:
        _print_json(out)
    else:
        for key, label in METRIC_LABELS.items():
            value = out[key]
            print(f"{label:40s} {value:.4f}" if isinstance(value, float) else f"{label:40s} {value}")
        print(f"{'device':40s} {out['device']}")
        print("\nper group (shipped σ: Student-t, calibrated on the pool; raw: the GP's Gaussian σ)")
        print(f"{'group':46s} {'n':>6s} {'MAE':>7s} {'cov 2σ':>7s} {'area':>6s} {'raw cov 2σ':>11s} {'raw area':>9s}"
              f" {'flagged':>8s}")
        for g in out["groups"].values():
            print(f"{g['label'][:46]:46s} {g['n']:6d} {g['mae']:7.3f} {g['coverage_2sigma']:7.3f} "
                  f"{g['miscalibration_area']:6.3f} {g['coverage_2sigma_raw']:11.3f} {g['miscalibration_area_raw']:9.3f}"
                  f" {g.get('flagged_share', float('nan')):8.3f}")
    return 0


def cmd_domain(args) -> int:
    run = _run(args)
    t0 = time.time()
    tau_new = None
    if args.families:
        tau_new = family_report(run)["tau_new"]
    app = fit_applicability(run, tau_new=tau_new)
    path = save_applicability(run, app)
    _print_json({"run": str(run.dir), "file": str(path), **app.report, "sigma": app.sigma.to_dict(),
                 "seconds": round(time.time() - t0, 1)})
    return 0


def cmd_predict(args) -> int:
    """Streams the inputs through :func:`cfgp.screening.screen` in chunks (bounded memory, resumable, on this
    process or a Dask cluster); this function only wires arguments, output and exit code."""
    if args.resume and args.out is None:
        raise ValueError("--resume continues an output file: give it with --out FILE")
    if args.scheduler and args.workers:
        raise ValueError("give --scheduler ADDRESS (a running cluster) or --workers N (a local one), not both")
    if args.serial and (args.scheduler or args.workers):
        raise ValueError("--serial is for one process; a Dask worker always predicts its chunks one at a time")
    if args.chunk_size < 1 or (args.workers is not None and args.workers < 1) or args.threads_per_worker < 1:
        raise ValueError("--chunk-size, --workers and --threads-per-worker must be at least 1")
    refuse_folder(args.out, "--out")
    run = _run(args)  # not a run folder: exit 2 before anything is read
    state, sink = None, None
    if args.out is not None:
        parquet = args.out.suffix == ".parquet"
        journal = parquet_journal(args.out) if parquet else args.out
        if not args.resume and (args.out.exists() or journal.exists()):
            raise ValueError(f"{args.out} exists: --resume continues it, or remove it to start again")
        if args.resume and parquet and args.out.exists() and not journal.exists():
            raise ValueError(f"{args.out} is a finished job (its journal {journal.name} is gone): nothing to resume")
        if args.resume:
            state = resume_state(journal)
            if state.dropped:
                print(f"cfgp predict: {journal}: removed a torn last line ({len(state.dropped)} characters, cut by "
                      "a kill); its record is predicted again", file=sys.stderr)
        sink = ParquetSink(args.out) if parquet else JsonLinesSink(args.out)

    def emit_text(lines):
        for obj in lines:
            if args.json:
                _print_json(obj)
            elif "error" in obj:
                print(f"{obj['source']}: {obj.get('id', '')}: error: {obj['error']}", file=sys.stderr)
            else:
                dft = f"  (DFT {obj['dft']:.3f})" if obj.get("dft") is not None else ""
                warn = "" if obj["in_domain"] else f"  OUT OF DOMAIN: {obj['domain']}"
                print(f"{obj['id']:20s} {obj['formula']:14s} {obj['e_form']:8.3f} ± {obj['sigma']:.3f} eV/atom"
                      f"{dft}{warn}", flush=True)

    if args.scheduler or args.workers:
        load_applicability(run, load_gp(run))  # fitted and cached once here, not by every worker at once
        predictor = DaskPredictor.start(run.dir, scheduler=args.scheduler, workers=args.workers,
                                        threads_per_worker=args.threads_per_worker, cif_reader=args.cif_reader)
    else:
        predictor = LocalPredictor(ScreeningModel.load(run.dir, args.cif_reader), prepare_ahead=not args.serial)
    try:
        summary = screen(args.files, predictor, sink.write if sink else emit_text, chunk_size=args.chunk_size,
                         resume=state, max_bytes=int(args.max_input_mb * MIB),
                         progress=False if args.quiet else None)
    finally:
        if isinstance(predictor, DaskPredictor):
            predictor.close()
        if sink is not None:
            sink.close()
    if sink is not None:
        sink.finish()
        n_done = summary.n_ok + summary.n_bad - summary.n_resumed
        result = {"out": str(args.out), "predicted": summary.n_ok, "errors": summary.n_bad,
                  "resumed": summary.n_resumed, "seconds": round(summary.seconds, 1),
                  "exit_code": summary.exit_code, "cif_reader": args.cif_reader,
                  # milliseconds per structure of this call, by stage (Dask: summed over the workers' cores)
                  "stage_ms": {k: round(1000 * v / n_done, 3) for k, v in summary.stages.items()} if n_done else {}}
        if args.json:
            _print_json(result)
        else:
            print(f"{args.out}: {summary.n_ok} predicted, {summary.n_bad} errors ({summary.n_resumed} already "
                  f"there), {summary.seconds:.0f} s")
    # a batch job tells "all predicted" from "some skipped" by the exit code alone (PREDICT_EXIT_CODES)
    return summary.exit_code


PREDICT_EXIT_CODES = f"""exit codes:
  0  every record was predicted
  3  some records or files were skipped (each has an error line naming it and why), the others predicted
  4  nothing was predicted: every record or file was bad
  {USAGE_ERROR}  usage error (bad arguments, or --run is not a usable run folder)
--strict is kept for old scripts and changes nothing: any bad input gives 3 or 4 without it."""


def cmd_al(args) -> int:
    import numpy as np


    run = _run(args)
    t0 = time.time()
    finals, labels = [], 0
    for seed in range(args.seed, args.seed + args.seeds):
        settings = ALSettings(strategy=args.strategy, cycles=args.cycles, batch_size=args.batch_size, seed=seed,
                              pool_size=None if args.pool_size == 0 else args.pool_size,
                              refit_every=args.refit_every)
        records = run_active_learning(run, settings, progress=not args.quiet)
        finals.append(records[-1])
        labels = records[-1]["n_train"] - records[0]["n_train"]
    mae = np.array([r["mae"] for r in finals])
    out = {"strategy": args.strategy, "cycles": args.cycles, "batch_size": args.batch_size, "seeds": args.seeds,
           "labels": labels,
           "final_mae_mean": float(mae.mean()), "final_mae_std": float(mae.std(ddof=1)) if len(mae) > 1 else 0.0,
           "final_coverage_2sigma_mean": float(np.mean([r["coverage_2sigma"] for r in finals])),
           "seconds": round(time.time() - t0, 1)}
    if args.json:
        _print_json(out)
    else:
        print(f"{args.strategy}: final MAE {out['final_mae_mean']:.4f} ± {out['final_mae_std']:.4f} eV/atom "
              f"over {args.seeds} seeds ({out['seconds']} s)")
    return 0


def _print_fair(fair: dict) -> None:
    """The paired scores as a table: strategy − baseline, mean ± std over seeds."""
    print(f"paired against {fair['baseline']}, or random under the same settings where saved (same seed); negative "
          "= lower MAE than the baseline")
    for name, e in fair["strategies"].items():
        ph = e["phosphates"]
        print(f"{name}: seeds {e['seeds']}; phosphates {100 * ph['picks_phosphate_share']:.1f} % of "
              f"{ph['picks']} picks vs {100 * ph['pool_phosphate_share']:.1f} % of the pool")
        r = e.get("reach_baseline")
        if r:
            need = ", ".join(f"seed {s}: {v['labels'] if v['labels'] is not None else 'never'}"
                             for s, v in r["per_seed"].items())
            print(f"  labels to reach {e['baseline']}'s final test MAE (same seed): {need}"
                  + (f" (saving ≥ {r['saving_min']:.2f}×)" if r["saving_min"] else ""))
        if e.get("baseline") not in (None, fair["baseline"]):
            print(f"  paired against {e['baseline']}")
        for key, title in (("paired", "test MAE"), ("paired_pool_scored", "pool-scored MAE (paper)")):
            if key not in e:
                continue
            p = e[key]
            for n, v in p["at"].items():
                d = v["difference"]
                ci = f", 95 % CI [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]" if d["ci95"] else ""
                print(f"  {title:24s} at {n:5d} labels: {v['strategy']:.4f} vs {v['baseline']:.4f}  "
                      f"diff {d['mean']:+.4f} ± {d['std']:.4f}{ci} ({100 * v['relative']['mean']:+.1f} %)")
            a = p["area"]
            print(f"  {title:24s} area (mean over labels): {a['strategy']:.4f} vs {a['baseline']:.4f}  "
                  f"diff {a['difference']['mean']:+.4f} ± {a['difference']['std']:.4f}")


def cmd_al_finetune(args) -> int:
    settings = ALSettings(strategy=args.strategy, cycles=args.picks, batch_size=1, seed=args.seed,
                          pool_size=args.pool_size or None)
    state = finetune_active_learning(_run(args), settings, args.out, FinetuneSettings(args.every, args.epochs, args.lr, args.keep),
                                     progress=not args.json, log=lambda msg: print(msg, file=sys.stderr),
                                     max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    if args.json:
        _print_json(state)
    else:
        last = state["rounds"][-1]
        done = "finished" if state["finished"] else "stopped (run the same command to resume)"
        print(f"{args.strategy} seed {args.seed}: {last['picks']} picks, {len(state['rounds']) - 1} network updates, "
              f"test MAE {last['mae']:.4f} eV/atom, 2σ coverage {last['coverage_2sigma']:.3f}; {done} ({args.out})")
    return 0


def cmd_retrain(args) -> int:
    out = retrain(_run(args), args.history, args.out, picks=args.picks, epochs=args.epochs, patience=args.patience,
                  warm_start=not args.from_scratch, seed=args.seed, min_rel_improvement=args.min_improvement / 100,
                  max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    if args.json:
        _print_json(out)
    elif out["finished"]:
        print(f"{out['strategy']} seed {out['seed']}: {out['picks']} picks, {out['epochs']} epochs → test MAE "
              f"{out['mae']:.4f} eV/atom, 2σ coverage {out['coverage_2sigma']:.3f} ({args.out}/retrain.json)")
    else:
        print(f"stopped at epoch {out['epochs']} (best validation MAE {out['best_val_mae']:.4f}); "
              f"run the same command to resume")
    return 0


def cmd_family_network(args) -> int:
    out = retrain_without_family(_run(args), args.family, args.out, seed=args.seed, epochs=args.epochs,
                                 max_seconds=args.max_minutes * 60 if args.max_minutes else None,
                                 progress=not args.json)
    if args.json:
        _print_json(out)
    elif out["finished"]:
        test = out.get("test_drawn") or {}
        print(f"{out['label']} held out of the network ({out['n_train']:,} training materials, {out['epochs']} epochs, "
              f"converged: {out['converged']}): test members n = {test.get('n')}, MAE {test.get('mae')}, 2σ coverage "
              f"of the shipped σ {test.get('coverage_2sigma')} ({args.out}/family.json)")
    else:
        print(f"stopped at epoch {out['epochs']} (best validation MAE {out['best_val_mae']:.4f}); "
              f"run the same command to resume")
    return 0


def cmd_learning_curve(args) -> int:
    refuse_folder(args.out, "--out")
    refuse_folder(args.plot, "--plot")
    run = _run(args)
    out = learning_curve(run, args.out, sizes=args.sizes, seeds=args.seeds, retrain_folders=args.retrain,
                         progress=not args.quiet)
    if args.plot:
        learning_curve_png(out, args.plot)
    if args.json:
        _print_json(out)
    else:
        for r in out["frozen"]:
            print(f"frozen-latent CFGP  seed {r['seed']}  {r['n_labels']:>6,} labels  test MAE {r['mae']:.4f}  "
                  f"2σ coverage {r['coverage_2sigma']:.3f}")
        b = out["base_readout"]
        print(f"MEGNet readout      {b['n_labels']:>6,} labels  test MAE {b['mae']:.4f}")
        for r in out["retrained"]:
            print(f"{r['model']:<26s} {r['strategy']} s{r['seed']}  {r['n_labels']:>6,} labels  test MAE {r['mae']:.4f}")
    return 0


def cmd_retrain_report(args) -> int:
    report = retrain_report(args.dir, baseline=args.baseline, bootstrap=args.bootstrap, seed=args.seed)
    if args.json:
        _print_json(report)
        return 0
    for picks, entry in report["picks"].items():
        print(f"{picks:,} picks (converged retrains; fixed test set)")
        for name, s in entry["strategies"].items():
            pool = f"  pool-scored {s['pool_scored_mae']:.4f} (paper's protocol)" if "pool_scored_mae" in s else ""
            print(f"  {name:10s} seeds {s['seeds']}  test MAE {s['mae']:.4f}  2σ coverage {s['coverage_2sigma']:.3f}  "
                  f"miscal. area {s['miscalibration_area']:.3f}{pool}")
            p = s.get("paired")
            if p:
                d = p["mae"]
                ci = f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]" if d["ci95"] else "(one pair: no interval)"
                print(f"    − {report['baseline']}: test MAE {d['mean']:+.4f} eV/atom over seeds {p['seeds']}, 95 % t {ci}")
                for sd, b in p.get("test_bootstrap", {}).items():
                    print(f"      seed {sd}: {b['difference']:+.4f}, test-set bootstrap 95 % "
                          f"[{b['ci95'][0]:+.4f}, {b['ci95'][1]:+.4f}] on {b['n_test']:,} materials")
    for r in report["not_converged"]:
        print(f"not converged (not scored): {r['dir']} ({r['epochs']} epochs)")
    for r in report["in_progress"]:
        best = "" if r["best_val_mae"] is None else f", best validation MAE {r['best_val_mae']:.4f} at {r['best_epoch']}"
        print(f"still training (not scored): {r['dir']} (epoch {r['epochs']}{best}; the rule can stop it at epoch "
              f"{r['earliest_stop']} at the earliest)")
    return 0


def cmd_family_report(args) -> int:
    out = family_networks_report(args.dirs, converged_only=not args.include_unconverged)
    if args.json:
        _print_json(out)
        return 0
    for r in out["left_out"]:
        print(f"left out: {r['dir']}: {r['reason']}")
    if "reason" in out:
        print(f"no report: {out['reason']}")
        return 0
    print(f"each family on a network trained without it; τ_new and the floor s_new cross-fitted over the others "
          f"({out['tau_new']:.2f} and {out['s_new']:.3f} eV/atom on all):")
    for key, f in out["families"].items():
        for part in ("pool", "test"):
            if part in f:
                a, b, c, d = f[part], f[part + "_floor"], f[part + "_fitted_floor"], f[part + "_drawn"]
                print(f"  {f['label']:32s} {part:4s} n {a['n']:5,}  MAE {a['mae']:.3f}  flagged {a['flagged']:.2f}  "
                      f"shipped (draws): MAE {d['mae']:.3f}, 2σ coverage {d['coverage_2sigma']:.3f} "
                      f"(NLL {d['nll']:+.2f}); 2σ coverage (NLL): τ_new "
                      f"{a['coverage_2sigma']:.3f} ({a['nll']:+.2f}), floor s₀ {b['coverage_2sigma']:.3f} "
                      f"({b['nll']:+.2f}), floor s_new {f['s_new_crossfit']:.3f} {c['coverage_2sigma']:.3f} "
                      f"({c['nll']:+.2f})")
    _print_scales_for_goal(out["scales_for_goal"])
    return 0


def _print_scales_for_goal(goal: dict) -> None:
    """The floors of the shipped rule, and the τ of τ·σ_GP, that give each held-out family a ±2σ coverage within
    the goal, and the one value for all where there is one."""
    def span(v):
        return "none" if v is None else f"{v[0]:.3f}–{'∞' if v[1] is None else format(v[1], '.3f')}"

    lo, hi = goal["goal"]
    for shape, words in (("floor", "floor s (eV/atom) of max(τ_out·σ_GP, s)"), ("tau", "τ of τ·σ_GP")):
        for part in ("pool", "test"):
            per = goal[shape][part]
            each = "; ".join(f"{k} {span(v)}" for k, v in per["families"].items())
            print(f"{words} giving {part} 2σ coverage {lo:.2f}–{hi:.2f}: {each}; one for all: {span(per['common'])}")


def cmd_al_compare(args) -> int:
    refuse_folder(args.plot, "--plot")
    run = _run(args)
    read = read_al_histories(run)  # every file once, for the labels, the groups and the fair report
    labels = args.labels if args.labels is not None else shared_labels(run, read=read)
    groups = load_al_histories(run, labels=labels, read=read)
    if not groups:
        raise FileNotFoundError(f"{run.dir / 'al'}: no active-learning histories" +
                                (f" reaching {labels:,} labels" if args.labels is not None else "") +
                                "; run `cfgp al` first")
    baseline, against = al_baselines({k: g.settings for k, g in groups.items()})
    result = compare(groups, baseline=baseline, against=against)
    if args.plot:
        al_curves_png(groups, args.plot)
    fair = None
    if args.fair or args.pool_scored:
        fair = fair_report(run, baseline, pool_scored=args.pool_scored, labels=labels, read=read,
                           progress=lambda msg: print(msg, file=sys.stderr))
    if args.json:
        _print_json({"baseline": baseline, "labels": labels, "strategies": result, **({"fair": fair} if fair else {})})
        return 0
    print(f"compared over the first {labels:,} labels" + (" (every saved history holds them; --labels N for more)"
                                                         if args.labels is None else ""))
    if fair:
        _print_fair(fair)
    else:
        print(f"baseline: {baseline}")
        for name, r in result.items():
            reach = r.get("labels_to_reach_baseline")
            speed = r.get("speedup_vs_baseline")
            print(f"{name:32s} seeds {r['seeds']}  labels {r['labels']}  MAE {r['initial_mae']:.4f} → "
                  f"{r['final_mae_mean']:.4f} ± {r['final_mae_std']:.4f}  (MAE change {-100 * r['mae_reduction']:+.1f} %)  "
                  f"reaches baseline after {reach} ({speed:.2f}×)" if reach else
                  f"{name:32s} seeds {r['seeds']}  labels {r['labels']}  MAE {r['initial_mae']:.4f} → "
                  f"{r['final_mae_mean']:.4f} ± {r['final_mae_std']:.4f}  (MAE change {-100 * r['mae_reduction']:+.1f} %)  "
                  f"never reaches the baseline")
    return 0


def cmd_manifest(args) -> int:
    run = _run(args)
    if args.check:
        diff = check_manifest(run.dir)
        _print_json({"run": str(run.dir), "ok": not any(diff.values()), **diff})
        return 0 if not any(diff.values()) else 1
    if run.shipped:
        raise ReadOnlyRunError(f"{run.dir} is the shipped default: its manifest describes the release and is not "
                               "rewritten; `cfgp manifest --check` verifies it, --run FOLDER writes another run's")
    manifest = write_manifest(run.dir, run.settings)
    _print_json({"run": str(run.dir), "files": len(manifest["files"]), "packages": manifest["packages"]})
    return 0


def cmd_tsne(args) -> int:
    run = _run(args)
    settings = TSNESettings(perplexity=args.perplexity, seed=args.seed, n_iter=args.n_iter)
    t0 = time.time()
    bar = None
    if not args.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.n_iter + settings.early_exaggeration_iter, desc="t-SNE", unit="iter")

    def progress(iteration, kl, xy):
        if bar is not None:
            bar.update(25)
            bar.set_postfix(kl=f"{kl:.3f}")

    xy = run_tsne(run, settings, recompute=args.recompute, callback=progress)
    if bar is not None:
        bar.close()
    _print_json({"run": str(run.dir), "file": settings.filename(), "n": int(len(xy)),
                 "seconds": round(time.time() - t0, 1)})
    return 0


def _positive_angstrom(text: str) -> float:
    """A neighbour cut-off: a distance in Å above 0 (0 or less gives graphs without a single bond)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of Å") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} Å: a cut-off must be above 0 Å (megnet's default is 5, matgl's 4)")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cfgp", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def run_arg(sp):
        sp.add_argument("--run", type=Path, default=DEFAULT_RUN,
                        help="run folder (default: the shipped data/default, read-only: what commands make from it "
                             "goes to $CFGP_HOME/runs/default, else ~/.cache/cfgp/runs/default)")

    def resumable_args(sp, out_help: str = "folder of the new run (created; resumed if it exists)",
                       minutes_help: str = "stop after this long (resume later)", epochs: bool = True):
        """The options every resumable training job shares: its folder, a time limit, JSON out, and the base
        network's epoch cap."""
        sp.add_argument("--out", type=Path, required=True, help=out_help)
        if epochs:
            sp.add_argument("--epochs", type=int, default=MAX_EPOCHS,
                            help=f"most epochs (default {MAX_EPOCHS:,}: the base network's rule)")
        sp.add_argument("--max-minutes", type=float, default=None, help=minutes_help)
        sp.add_argument("--json", action="store_true")

    t = sub.add_parser("train", help="train MEGNet on the train split (checkpoints; resumes if interrupted)")
    run_arg(t)
    t.add_argument("--data", type=Path, default=DEFAULT_DATASET, help="dataset: .json(.gz), .csv or CIF folder")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--n-train", type=int, default=PAPER_N_TRAIN, help=f"default {PAPER_N_TRAIN:,}, the paper's")
    t.add_argument("--n-test", type=int, default=PAPER_N_TEST, help=f"default {PAPER_N_TEST:,}, the paper's")
    t.add_argument("--paper-subsample", action="store_true",
                   help=f"use {PAPER_SUBSAMPLE:,} materials as in the paper")
    t.add_argument("--energy-window", type=float, nargs=2, default=DEFAULT_ENERGY_WINDOW, metavar=("LO", "HI"),
                   help="keep formation energies within [LO, HI] eV/atom (default "
                        f"{DEFAULT_ENERGY_WINDOW[0]:g} {DEFAULT_ENERGY_WINDOW[1]:g})")
    t.add_argument("--no-energy-window", action="store_true")
    t.add_argument("--epochs", type=int, default=TRAIN_MAX_EPOCHS, help=f"most epochs (default {TRAIN_MAX_EPOCHS:,})")
    t.add_argument("--patience", type=int, default=TRAIN_PATIENCE,
                   help="stop after this many epochs without enough validation progress "
                        f"(default {TRAIN_PATIENCE})")
    t.add_argument("--min-improvement", type=float, default=100 * TRAIN_MIN_REL_IMPROVEMENT, metavar="PERCENT",
                   help="progress that counts for --patience: a relative drop of the best validation MAE "
                        f"(default {100 * TRAIN_MIN_REL_IMPROVEMENT:g})")
    t.add_argument("--batch-size", type=int, default=MEGNET_DEFAULTS.batch_size)
    t.add_argument("--lr", type=float, default=MEGNET_DEFAULTS.lr)
    t.add_argument("--cutoff", type=_positive_angstrom, default=None, metavar="ANGSTROM",
                   help=f"neighbour cut-off of the crystal graph (default: {DEFAULT_CUTOFF:g}, the shipped "
                        "default's and matgl's formation-energy example's, or a resumed run's own; megnet's default "
                        "is 5, with about twice the bonds and time per epoch)")
    t.add_argument("--max-minutes", type=float, default=None, help="stop after this long (resume later)")
    t.set_defaults(func=cmd_train)

    f = sub.add_parser("featurize", help="MEGNet latents for every material (cached by model hash)")
    run_arg(f)
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=cmd_featurize)

    g = sub.add_parser("fit", help="fit the GP hyper-parameters on the train latents")
    run_arg(g)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--paper", action="store_true", help="the paper's GP: zero mean, no noise, min-max features")
    g.add_argument("--feature-scaling", choices=["standard", "minmax", "none"], default="standard")
    g.add_argument("--refit", action="store_true", help="refit even if saved hyper-parameters match")
    g.add_argument("--held-out", action="store_true",
                   help="fit them to predict MEGNet's early-stopping materials (latents it never trained on) from "
                        "the rest of train, so σ is tuned out of sample; default: marginal likelihood of train")
    g.add_argument("--method", choices=("auto", "exact", "sparse", "local"), default="auto",
                   help="condition exactly (n×n Cholesky), by a sparse variational GP (SGPR) or on each query's "
                        f"nearest training points (local); auto: exact up to {LOCAL_ABOVE:,} training points, "
                        "local above")
    g.add_argument("--n-inducing", type=int, default=N_INDUCING,
                   help=f"inducing inputs of the sparse GP (default {N_INDUCING:,})")
    g.add_argument("--inducing", choices=("kmeans", "greedy", "random"), default="kmeans",
                   help="how the sparse GP's inducing inputs are chosen (default kmeans)")
    g.add_argument("--n-neighbours", type=int, default=N_NEIGHBOURS,
                   help=f"training points each prediction of the local GP conditions on (default {N_NEIGHBOURS:,})")
    g.set_defaults(func=cmd_fit)

    e = sub.add_parser("evaluate", help="test-split accuracy and calibration metrics")
    run_arg(e)
    e.add_argument("--json", action="store_true", help="one JSON object as the last line of stdout")
    e.add_argument("--check-set", type=Path, default=None, metavar="FILE",
                   help="also score materials the model was not made for (e.g. the shared mp_nonoxides.json.gz): "
                        "featurised once, cached in the user folder")
    e.add_argument("--check-set-n", type=int, default=0, metavar="N",
                   help="a seeded sample of N check-set materials (default 0: all)")
    e.add_argument("--families", action="store_true",
                   help="also hold each chemical family (lanthanides, actinides, 4d metals, P-, S-, halogen-containing "
                        "oxides) out of training and calibration and score it (~3 min on the default)")
    e.set_defaults(func=cmd_evaluate)

    dm = sub.add_parser("domain", help="fit and save the domain of applicability and σ calibration (domain.json)")
    run_arg(dm)
    dm.add_argument("--families", action="store_true",
                    help="fit the new-chemistry σ scale on chemical families held out of training and calibration "
                         "(~3 min on the default; without it, new chemistry gets the training-energy spread)")
    dm.set_defaults(func=cmd_domain)

    pr = sub.add_parser("predict", help="E_f ± σ for CIF files or data sets (.json, .jsonl, .csv, each maybe .gz; "
                        "CIF folder), streamed in chunks",
                        epilog=PREDICT_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_arg(pr)
    pr.add_argument("files", nargs="+", type=Path)
    pr.add_argument("--json", action="store_true", help="JSON lines: id, formula, e_form, sigma (or error)")
    pr.add_argument("--strict", action="store_true",
                    help="no effect, kept for old scripts: a bad input always gives exit code 3 or 4 (see below)")
    pr.add_argument("--out", type=Path, default=None, metavar="FILE",
                    help="write the lines to FILE (JSON lines; Parquet if it ends in .parquet) instead of stdout; "
                         "stdout then gets a summary")
    pr.add_argument("--resume", action="store_true",
                    help="continue --out FILE of an interrupted run of the same command: records already in it "
                         "are skipped, a torn last line is redone")
    pr.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="N",
                    help=f"records read, predicted and written together (default {DEFAULT_CHUNK_SIZE:,}); MEGNet's "
                         f"passes within a chunk hold at most {BATCH_BONDS:,} bonds each, so memory hardly grows "
                         "with it")
    pr.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="run the chunks on a Dask cluster (e.g. tcp://host:8786; needs the [dask] extra, and "
                         "the workers must see --run at the same path)")
    pr.add_argument("--workers", type=int, default=None, metavar="N",
                    help="run the chunks on a local Dask cluster of N worker processes")
    pr.add_argument("--threads-per-worker", type=int, default=1, metavar="T",
                    help="threads of each local Dask worker (default 1; TensorFlow gets as many)")
    pr.add_argument("--max-input-mb", type=float, default=MAX_DATASET_BYTES / MIB, metavar="MB",
                    help=f"largest input file (stored and decompressed) or CIF folder, in MiB (default "
                         f"{MAX_DATASET_BYTES / MIB:g}); memory does not grow with it: raise it for a large screen")
    pr.add_argument("--cif-reader", choices=CIF_READERS, default="auto",
                    help="auto (default): plain P1 CIFs, as the Materials Project writes them, are read by a fast "
                         "reader into the very structure pymatgen builds, the rest by pymatgen; pymatgen: "
                         "pymatgen's parser for every CIF")
    pr.add_argument("--serial", action="store_true",
                    help="in one process, read and predict each chunk in turn (by default the next chunk is read "
                         "in a second thread during a chunk's forward pass, holding one more chunk in memory)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar (it shows only on a terminal anyway)")
    pr.set_defaults(func=cmd_predict)


    a = sub.add_parser("al", help="active learning: label the pool material chosen by a strategy, cycle by cycle")
    run_arg(a)
    a.add_argument("--strategy", choices=sorted(STRATEGIES), default="entropy")
    a.add_argument("--cycles", type=int, default=AL_DEFAULTS.cycles)
    a.add_argument("--batch-size", type=int, default=AL_DEFAULTS.batch_size, help="picks per cycle")
    a.add_argument("--seeds", type=int, default=1, help="number of seeds (seed, seed+1, ...)")
    a.add_argument("--seed", type=int, default=0, help="first seed")
    a.add_argument("--pool-size", type=int, default=PAPER_POOL_SIZE,
                   help=f"pool drawn per seed (default {PAPER_POOL_SIZE:,}, the paper's; 0 = all)")
    a.add_argument("--refit-every", type=int, default=None, help="refit hyper-parameters every N cycles")
    a.add_argument("--json", action="store_true")
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=cmd_al)

    rt = sub.add_parser("retrain", help="the paper's last step: re-train MEGNet and the GP on train + an AL run's "
                                         "picks, evaluate on the same test split (resumable)")
    run_arg(rt)
    rt.add_argument("--history", type=Path, required=True, help="an AL history (.jsonl) made on --run")
    resumable_args(rt)
    rt.add_argument("--picks", type=int, default=None, help="use the first N picks (default: all)")
    rt.add_argument("--patience", type=int, default=PATIENCE,
                    help=f"stop after this many epochs without improvement (default {PATIENCE:,})")
    rt.add_argument("--min-improvement", type=float, default=100 * MIN_REL_IMPROVEMENT, metavar="PERCENT",
                    help=f"percent the validation MAE must improve by within --patience epochs (default "
                         f"{100 * MIN_REL_IMPROVEMENT:g})")
    start = rt.add_mutually_exclusive_group()
    start.add_argument("--warm-start", action="store_true",
                       help="start from the base run's weights (fine-tuning: the default, chosen at convergence on "
                            "validation MAE and cost)")
    start.add_argument("--from-scratch", action="store_true", help="fresh weights, seeded by --seed")
    rt.add_argument("--seed", type=int, default=0)
    rt.set_defaults(func=cmd_retrain)

    fn = sub.add_parser("family-network", help="a chemical family held out of MEGNet's training too: the network "
                        "trained from fresh weights without it, then the family scored as new chemistry (resumable)")
    run_arg(fn)
    fn.add_argument("--family", required=True, choices=sorted(HELD_OUT_FAMILIES))
    resumable_args(fn)
    fn.add_argument("--seed", type=int, default=None, help="seed of the fresh weights (default: the run's split seed)")
    fn.set_defaults(func=cmd_family_network)

    fr = sub.add_parser("family-report", help="the families held out of their own networks (`cfgp family-network` "
                        "folders) scored as new chemistry, τ_new cross-fitted over the families")
    fr.add_argument("dirs", type=Path, nargs="+", help="`cfgp family-network` output folders")
    fr.add_argument("--include-unconverged", action="store_true",
                    help="score finished jobs that stopped at the epoch cap too (not a result)")
    fr.add_argument("--json", action="store_true")
    fr.set_defaults(func=cmd_family_report)

    ft = sub.add_parser("al-finetune", help="active learning with MEGNet fine-tuned every N picks and every material "
                                             "re-featurised, so that σ depends on the labels (resumable)")
    run_arg(ft)
    ft.add_argument("--strategy", default="entropy", help="an AL strategy (as `cfgp al`)")
    ft.add_argument("--seed", type=int, default=0, help="seed: the candidate pool and the random picks")
    ft.add_argument("--picks", type=int, default=AL_DEFAULTS.cycles, help="materials to label")
    ft.add_argument("--pool-size", type=int, default=PAPER_POOL_SIZE,
                    help=f"pool drawn per seed (default {PAPER_POOL_SIZE:,}, the paper's; 0 = all)")
    ft.add_argument("--every", type=int, default=FINETUNE_DEFAULTS.every, help="picks between network updates")
    ft.add_argument("--epochs", type=int, default=FINETUNE_DEFAULTS.epochs, help="fine-tuning epochs per update")
    ft.add_argument("--lr", type=float, default=FINETUNE_DEFAULTS.lr,
                    help=f"fine-tuning learning rate (default {FINETUNE_DEFAULTS.lr:g}; base training: "
                         f"{MEGNET_DEFAULTS.lr:g})")
    ft.add_argument("--keep", choices=("always", "if-better"), default=FINETUNE_DEFAULTS.keep,
                    help="keep every update, or only one that lowers the validation MAE")
    resumable_args(ft, "the run's folder (created; resumed if it exists)",
                   "stop after the update that crosses this time", epochs=False)
    ft.set_defaults(func=cmd_al_finetune)

    lc = sub.add_parser("learning-curve", help="test MAE vs labels: frozen-latent CFGP (train → whole pool), MEGNet "
                                             "readout, re-trained runs; resumable JSON")
    run_arg(lc)
    lc.add_argument("--out", type=Path, required=True, help="JSON of every point (resumed when settings match)")
    lc.add_argument("--sizes", type=int, nargs="*", default=None,
                    help="label counts (default: train, +700, +1,500, +3,200, +5,200, +8,200 and the whole pool)")
    lc.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="seeds of the pool orders")
    lc.add_argument("--retrain", type=Path, nargs="*", default=[], help="finished `cfgp retrain` folders to add")
    lc.add_argument("--plot", type=Path, default=None, help="write the figure (PNG)")
    lc.add_argument("--json", action="store_true")
    lc.add_argument("--quiet", action="store_true")
    lc.set_defaults(func=cmd_learning_curve)

    c = sub.add_parser("al-compare", help="compare saved active-learning histories (MAE vs labels)")
    run_arg(c)
    c.add_argument("--json", action="store_true")
    c.add_argument("--plot", type=Path, default=None, help="write the MAE-vs-labels figure (PNG)")
    c.add_argument("--fair", action="store_true",
                   help="paired differences per seed at equal label counts, area under the curve, phosphate share")
    c.add_argument("--pool-scored", action="store_true",
                   help="also the paper's score, MAE on the still-unlabelled pool (replays each history, ~20 s each)")
    c.add_argument("--labels", type=int, default=None, metavar="N",
                   help="compare after N new labels, leaving out histories that stop before (default: the most "
                        "every saved history holds, e.g. 1,500 in the default; 6000 for the paper's scale)")
    c.set_defaults(func=cmd_al_compare)

    rr = sub.add_parser("retrain-report", help="strategies compared after converged retrains: paired differences "
                        "by seed with intervals, beside the paper's pool-scored MAE")
    rr.add_argument("dir", type=Path, help="folder holding finished `cfgp retrain` folders (searched recursively)")
    rr.add_argument("--baseline", default="random", help="the strategy every other is paired with")
    rr.add_argument("--bootstrap", type=int, default=BOOTSTRAP,
                    help=f"test-set bootstrap resamples per seed pair (default {BOOTSTRAP:,}; 0: none, no "
                         "re-prediction)")
    rr.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    rr.add_argument("--json", action="store_true")
    rr.set_defaults(func=cmd_retrain_report)

    ts = sub.add_parser("tsne", help="2-D t-SNE map of every material's latent (cached per settings)")
    run_arg(ts)
    ts.add_argument("--perplexity", type=float, default=TSNE_DEFAULTS.perplexity)
    ts.add_argument("--seed", type=int, default=TSNE_DEFAULTS.seed)
    ts.add_argument("--n-iter", type=int, default=TSNE_DEFAULTS.n_iter)
    ts.add_argument("--recompute", action="store_true")
    ts.add_argument("--quiet", action="store_true")
    ts.set_defaults(func=cmd_tsne)

    mf = sub.add_parser("manifest", help="record settings, package versions and file hashes of a run folder")
    run_arg(mf)
    mf.add_argument("--check", action="store_true",
                    help="verify the files against the manifest instead (exit 1 if any changed, is missing or unlisted)")
    mf.set_defaults(func=cmd_manifest)
    return p


def os_error_text(exc: OSError) -> str:
    """``<path>: <reason>`` for an OSError the system raised (``[Errno 13] Permission denied: '/sys/x'`` repeats
    itself and quotes the path), else the message cfgp wrote (which names its path already)."""
    if exc.filename is None or exc.strerror is None:
        return str(exc)
    other = f" → {exc.filename2}" if exc.filename2 is not None else ""
    return f"{exc.filename}{other}: {exc.strerror}"


def main(argv: list[str] | None = None) -> int:
    """Run one ``cfgp`` command; returns its exit code. Bad input (a data set, a run folder, a file that cannot be
    read or written) ends the command with one line on stderr naming the file or record and why, and exit code
    :data:`USAGE_ERROR`, not a traceback: the user can act on the line, and a batch job tells it from success and
    from a crash. Other exceptions are bugs and keep their traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # DataError, HistoryError, ReadOnlyRunError and the settings' checks among them
        print(f"cfgp {args.command}: error: {exc}", file=sys.stderr)
    except OSError as exc:  # a file not found, not readable or not writable (FileNotFoundError among them)
        print(f"cfgp {args.command}: error: {os_error_text(exc)}", file=sys.stderr)
    return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
