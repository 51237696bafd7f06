"""Benchmark one active-learning cycle: incremental Cholesky update vs a full refit.

Runs in one process on a run folder (default: the shipped data/default) with the paper's sizes:
1,800 labelled to start, a pool of 7,195, the 1,460 test materials. Prints figures, then one JSON line.

    python benchmarks/al_cycle.py [--run data/default] [--cycles 1500] [--strategy-cycles 200]

``strategies_ms_per_cycle`` times every strategy (selection + update + scoring) over the first
``--strategy-cycles`` cycles of a fresh run each, in the same process, and gives each as a ratio to entropy's,
so that the figures compare on a shared machine.

``--finetune`` adds active learning with the representation updated (:mod:`cfgp.al_finetune`): one round of
``--finetune-every`` entropy picks, one network update (fine-tuning, re-featurising every material, refitting the
GP) and the next round's start, timed per stage and amortised per cycle (minutes of CPU; off by default).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time

import numpy as np

from cfgp.al import ALSettings
from cfgp.gp import CFGP, device_label
from cfgp.pipeline import Run, active_learner, load_gp


def refit_ms(learner, sizes, repeats: int = 2) -> list[float]:
    """Time of a from-scratch update at n labelled: Cholesky of K(X, X) and mean/σ over pool ∪ test."""
    gp0 = learner.gp
    X_lab = np.vstack([learner._X_train, learner.X_query[: max(sizes) - len(learner._y_train)]])
    y_lab = np.concatenate([learner._y_train, learner.y_query[: max(sizes) - len(learner._y_train)]])
    out = []
    for n in sizes:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            gp = CFGP.from_dict(gp0.to_dict()).condition(X_lab[:n], y_lab[:n])
            gp.predict(learner.X_query, return_std=True)
            times.append(1000 * (time.perf_counter() - t0))
        out.append(min(times))
    return out


def strategy_ms(run, gp, cycles: int) -> dict[str, float]:
    """Median ms per cycle of every strategy over ``cycles`` cycles of a fresh run (batch 1, seed 0)."""
    from cfgp.al import STRATEGIES

    out = {}
    for name in ["entropy"] + sorted(k for k in STRATEGIES if k != "entropy"):
        learner = active_learner(run, ALSettings(strategy=name, cycles=cycles, seed=0, pool_size=7195), gp)
        out[name] = statistics.median(1000 * rec["seconds"] for rec in learner.steps())
    return out


def finetune_ms(run, every: int, epochs: int) -> dict:
    """Seconds of one fine-tuned AL round and update, amortised per cycle (entropy, seed 0, batch 1)."""
    import tempfile

    from cfgp.al_finetune import FinetuneSettings, finetune_active_learning

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        state = finetune_active_learning(run, ALSettings(strategy="entropy", cycles=every, seed=0, pool_size=7195),
                                         tmp, FinetuneSettings(every=every, epochs=epochs))
        total = time.perf_counter() - t0
    first, second = state["rounds"]
    return {"every": every, "epochs": epochs, "total_s": round(total, 1),
            "round_with_update_s": first["seconds"], "next_round_start_s": second["seconds"],
            "ms_per_cycle": round(1000 * (first["seconds"] + second["seconds"]) / every, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None)
    ap.add_argument("--cycles", type=int, default=1500)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--strategy-cycles", type=int, default=200, help="cycles per strategy for the per-strategy cost")
    ap.add_argument("--finetune", action="store_true", help="also time active learning with network updates")
    ap.add_argument("--finetune-every", type=int, default=150)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    args = ap.parse_args()
    run = Run(args.run) if args.run else Run()
    gp = load_gp(run, conditioned=False)
    settings = ALSettings(strategy="entropy", cycles=args.cycles, seed=0, pool_size=7195)

    t0 = time.perf_counter()
    learner = active_learner(run, settings, gp)
    setup_s = time.perf_counter() - t0
    n0, q = learner.n_train, len(learner.y_query)
    print(f"start: n={n0} labelled, query set {q} (pool {learner.n_pool} + test {q - learner.n_pool}), "
          f"backend {learner.posterior.backend}, device {device_label()}; set-up {setup_s:.2f} s")

    t0 = time.perf_counter()
    step_ms = []
    for rec in learner.steps():
        step_ms.append(1000 * rec["seconds"])
    run_s = time.perf_counter() - t0
    n_end = learner.n_train
    ms = statistics.median(step_ms)
    first, last = statistics.median(step_ms[:100]), statistics.median(step_ms[-100:])
    print(f"incremental: median {ms:.2f} ms/cycle (first 100: {first:.2f}, last 100: {last:.2f}); "
          f"{len(step_ms)} cycles in {run_s:.1f} s (n {n0} → {n_end})")

    sizes = [n0, (n0 + n_end) // 2, n_end]
    refits = refit_ms(learner, sizes)
    refit = statistics.mean(refits)
    print("refit (Cholesky + predict pool ∪ test): " + ", ".join(f"n={n}: {t:.0f} ms" for n, t in zip(sizes, refits)))
    per_strategy = strategy_ms(run, gp, args.strategy_cycles)
    base = per_strategy["entropy"]
    for name, v in per_strategy.items():
        print(f"  {name:20s} {v:8.2f} ms/cycle ({v / base:.2f}× entropy)")
    finetune = finetune_ms(run, args.finetune_every, args.finetune_epochs) if args.finetune else None
    if finetune:
        print(f"  entropy + network update every {finetune['every']}: {finetune['ms_per_cycle']:.0f} ms/cycle "
              f"({finetune['ms_per_cycle'] / base:.0f}× entropy)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "finetune": finetune and {**finetune, "vs_entropy": round(finetune["ms_per_cycle"] / base, 1)},
        "strategies_ms_per_cycle": {k: round(v, 3) for k, v in per_strategy.items()},
        "strategies_vs_entropy": {k: round(v / base, 2) for k, v in per_strategy.items()},
        "ms_per_cycle": round(ms, 3),
        "refit_ms_per_cycle": round(refit, 1),
        "speedup": round(refit / ms, 1),
        "run_1500_s": round(run_s * 1500 / max(len(step_ms), 1), 2),
        "cycles_run": len(step_ms),
        "peak_mb": round(peak_mb, 1),
        "n_start": n0,
        "query_size": q,
        "backend": learner.posterior.backend,
        "device": device_label(),
        "cpu": platform.processor() or platform.machine(),
    }
    print(f"speed-up {result['speedup']}×; 1,500 cycles take {result['run_1500_s']} s; peak memory {peak_mb:.0f} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
