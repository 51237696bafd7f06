"""The ``cfgp`` console command: each pipeline step headless, with progress bars and JSON output."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cfgp.artefacts import DEFAULT_RUN
from cfgp.data import DEFAULT_DATASET, DataError


def _print_json(obj) -> None:
    print(json.dumps(obj, default=float), flush=True)


def cmd_train(args) -> int:
    from cfgp.featurize import MEGNetSettings
    from cfgp.pipeline import init_run, train_megnet
    from cfgp.splits import PAPER_SUBSAMPLE, SplitSettings

    split = SplitSettings(seed=args.seed, n_train=args.n_train, n_test=args.n_test,
                          subsample=PAPER_SUBSAMPLE if args.paper_subsample else None)
    window = None if args.no_energy_window else tuple(args.energy_window)
    run = init_run(args.run, data=args.data, split=split, energy_window=window)
    print(run.materials.report.summary(), file=sys.stderr)
    settings = MEGNetSettings(seed=args.seed, batch_size=args.batch_size, lr=args.lr)
    t0 = time.time()
    feat, state = train_megnet(run, settings, epochs=args.epochs, patience=args.patience,
                               min_rel_improvement=args.min_improvement / 100,
                               max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    out = {"run": str(run.dir), "epochs_run": state.epoch, "best_epoch": state.best_epoch,
           "best_val_mae": state.best_val_mae, "finished": state.finished, "reason": state.reason,
           "seconds": round(time.time() - t0, 1)}
    _print_json(out)
    return 0


def _run(args):
    from cfgp.pipeline import Run

    return Run(args.run)


def cmd_featurize(args) -> int:
    from cfgp.pipeline import featurize

    run = _run(args)
    t0 = time.time()
    X = featurize(run, progress=not args.quiet)
    import numpy as np

    _print_json({"run": str(run.dir), "n": int(len(X)), "failed": int((~np.isfinite(X).all(axis=1)).sum()),
                 "dim": int(X.shape[1]), "seconds": round(time.time() - t0, 1)})
    return 0


def cmd_fit(args) -> int:
    from cfgp.gp import CFGP
    from cfgp.pipeline import fit_gp

    run = _run(args)
    seed = run.settings["split"]["seed"] if args.seed is None else args.seed
    gp = CFGP.paper(seed=seed) if args.paper else CFGP(seed=seed, feature_scaling=None if args.feature_scaling == "none" else args.feature_scaling)
    t0 = time.time()
    gp = fit_gp(run, gp, refit=args.refit)
    _print_json({"run": str(run.dir), **gp.hyperparameters_, "fit_info": gp.to_dict()["fit_info"],
                 "device": gp.device_, "seconds": round(time.time() - t0, 1)})
    return 0


def cmd_evaluate(args) -> int:
    from cfgp.calibration import METRIC_LABELS
    from cfgp.pipeline import evaluate

    out = evaluate(_run(args))
    if args.json:
        _print_json(out)
    else:
        for key, label in METRIC_LABELS.items():
            value = out[key]
            print(f"{label:40s} {value:.4f}" if isinstance(value, float) else f"{label:40s} {value}")
        print(f"{'device':40s} {out['device']}")
    return 0


def cmd_predict(args) -> int:
    import numpy as np

    from cfgp.data import load_materials
    from cfgp.pipeline import load_gp, predict_rows

    run = _run(args)
    gp = load_gp(run)
    feat = run.featurizer()
    n_bad = 0

    def emit(obj):
        if args.json:
            _print_json(obj)
        elif "error" in obj:
            print(f"{obj['source']}: {obj.get('id', '')}: error: {obj['error']}", file=sys.stderr)
        else:
            dft = f"  (DFT {obj['dft']:.3f})" if obj.get("dft") is not None else ""
            print(f"{obj['id']:20s} {obj['formula']:14s} {obj['e_form']:8.3f} ± {obj['sigma']:.3f} eV/atom{dft}")

    for path in args.files:
        try:
            mats = load_materials(path, require_energy=False, energy_window=None)
        except DataError as exc:
            n_bad += 1
            emit({"source": str(path), "error": str(exc)})
            continue
        for issue in mats.report.skipped:
            n_bad += 1
            emit({"source": str(path), "id": issue.record, "error": issue.reason})
        X = feat.transform(mats.structures(), names=mats.ids, on_error="skip")
        issues = {i.record: i.reason for i in feat.last_issues_}
        mean, std = predict_rows(gp, X)
        ok = np.isfinite(mean)
        for i, row in mats.frame.iterrows():
            if not ok[i]:
                n_bad += 1
                emit({"source": str(path), "id": row.material_id, "error": issues.get(row.material_id, "featurisation failed")})
                continue
            dft = row.formation_energy_per_atom
            emit({"source": str(path), "id": row.material_id, "formula": row.formula, "e_form": float(mean[i]),
                  "sigma": float(std[i]), "dft": None if np.isnan(dft) else float(dft)})
    return 1 if n_bad and args.strict else 0


def cmd_al(args) -> int:
    import numpy as np

    from cfgp.al import ALSettings
    from cfgp.pipeline import run_active_learning

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


def cmd_al_compare(args) -> int:
    from cfgp.al import compare
    from cfgp.pipeline import load_al_histories

    run = _run(args)
    groups = load_al_histories(run)
    if not groups:
        raise FileNotFoundError(f"{run.dir / 'al'}: no active-learning histories; run `cfgp al` first")
    baseline = next((k for k in groups if k.startswith("random")), None)
    result = compare(groups, baseline=baseline or next(iter(groups)))
    if args.plot:
        from cfgp.figures import al_curves_png

        al_curves_png(groups, args.plot)
    if args.json:
        _print_json({"baseline": baseline, "strategies": result})
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
    from cfgp.artefacts import write_manifest

    run = _run(args)
    manifest = write_manifest(run.dir, run.settings)
    _print_json({"run": str(run.dir), "files": len(manifest["files"]), "packages": manifest["packages"]})
    return 0


def cmd_tsne(args) -> int:
    from cfgp.embedding import TSNESettings, run_tsne

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cfgp", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def run_arg(sp):
        sp.add_argument("--run", type=Path, default=DEFAULT_RUN, help="run folder (default: the shipped data/default)")

    t = sub.add_parser("train", help="train MEGNet on the train split (checkpoints; resumes if interrupted)")
    run_arg(t)
    t.add_argument("--data", type=Path, default=DEFAULT_DATASET, help="dataset: .json(.gz), .csv or CIF folder")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--n-train", type=int, default=1800)
    t.add_argument("--n-test", type=int, default=1460)
    t.add_argument("--paper-subsample", action="store_true", help="use 10,455 materials as in the paper")
    t.add_argument("--energy-window", type=float, nargs=2, default=(-5.0, 1.0), metavar=("LO", "HI"))
    t.add_argument("--no-energy-window", action="store_true")
    t.add_argument("--epochs", type=int, default=1000)
    t.add_argument("--patience", type=int, default=80,
                   help="stop after this many epochs without enough validation progress")
    t.add_argument("--min-improvement", type=float, default=0.0, metavar="PERCENT",
                   help="progress that counts for --patience: a relative drop of the best validation MAE (default 0)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
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
    g.set_defaults(func=cmd_fit)

    e = sub.add_parser("evaluate", help="test-split accuracy and calibration metrics")
    run_arg(e)
    e.add_argument("--json", action="store_true", help="one JSON object as the last line of stdout")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="E_f ± σ for CIF files or dataset files (.json, .csv, CIF folder)")
    run_arg(pr)
    pr.add_argument("files", nargs="+", type=Path)
    pr.add_argument("--json", action="store_true", help="JSON lines: id, formula, e_form, sigma (or error)")
    pr.add_argument("--strict", action="store_true", help="exit 1 if any input was bad")
    pr.set_defaults(func=cmd_predict)

    from cfgp.al import STRATEGIES

    a = sub.add_parser("al", help="active learning: label the pool material chosen by a strategy, cycle by cycle")
    run_arg(a)
    a.add_argument("--strategy", choices=sorted(STRATEGIES), default="entropy")
    a.add_argument("--cycles", type=int, default=1500)
    a.add_argument("--batch-size", type=int, default=1, help="picks per cycle")
    a.add_argument("--seeds", type=int, default=1, help="number of seeds (seed, seed+1, ...)")
    a.add_argument("--seed", type=int, default=0, help="first seed")
    a.add_argument("--pool-size", type=int, default=7195, help="pool drawn per seed (paper: 7,195; 0 = all)")
    a.add_argument("--refit-every", type=int, default=None, help="refit hyper-parameters every N cycles")
    a.add_argument("--json", action="store_true")
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=cmd_al)

    c = sub.add_parser("al-compare", help="compare saved active-learning histories (MAE vs labels)")
    run_arg(c)
    c.add_argument("--json", action="store_true")
    c.add_argument("--plot", type=Path, default=None, help="write the MAE-vs-labels figure (PNG)")
    c.set_defaults(func=cmd_al_compare)

    ts = sub.add_parser("tsne", help="2-D t-SNE map of every material's latent (cached per settings)")
    run_arg(ts)
    ts.add_argument("--perplexity", type=float, default=30.0)
    ts.add_argument("--seed", type=int, default=0)
    ts.add_argument("--n-iter", type=int, default=500)
    ts.add_argument("--recompute", action="store_true")
    ts.add_argument("--quiet", action="store_true")
    ts.set_defaults(func=cmd_tsne)

    mf = sub.add_parser("manifest", help="record settings, package versions and file hashes of a run folder")
    run_arg(mf)
    mf.set_defaults(func=cmd_manifest)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"cfgp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
