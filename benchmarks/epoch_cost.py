"""What a MEGNet training epoch costs on this machine, by graph and training setting.

The shipped MEGNet uses a 4 Å cut-off (as matgl's MEGNet formation-energy training example, MP-2018.6.1, builds its
graphs), 100 Gaussians of width 0.5 Å and batches of 32; megnet's ``CrystalGraph`` default is 5 Å. A bond count
roughly halves from 5 to 4 Å and a MEGNet epoch is dominated by per-bond updates, so the cut-off sets the epoch
cost. This trains the real network on real
oxides — the first ``--n`` materials of the shipped run's train split, its early-stopping materials as validation
— for ``--epochs`` epochs per setting, each setting in a fresh process (TensorFlow's thread pools are fixed at
its first op), and reports the steady-state seconds per epoch (epochs after the first, which traces the graph)
and the mean bonds per structure. Prints one JSON line.

    python benchmarks/epoch_cost.py [--n 1620] [--epochs 3] [--configs 5A-b32 4A-b32 ...]

Wall-clock seconds: run it on a quiet machine (pause background training with kill -STOP) and say so.
``--concurrent K`` runs K copies of each setting at once, as K background trainings share the machine, and adds
each copy's CPU seconds per epoch: with more trainings than cores, TensorFlow's default pools (a thread per core
per process) oversubscribe the cores, and one thread each may do the same epochs with less CPU.
Accuracy is not measured here: a setting that is cheaper still has to reach the same validation MAE.
``4A-b32-1thread`` against ``4A-b32-1thread-kept`` measures what keeping freed memory while training
(:func:`cfgp.featurize.freed_memory_kept`) saves: CPU seconds and page faults per epoch, peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: name → (cut-off Å, batch size, TensorFlow threads: None = its default, all cores, freed memory kept while
#: training: True as ``fit_graphs`` does, False for glibc's defaults)
CONFIGS = {
    "5A-b32": (5.0, 32, None, True),
    "4A-b32": (4.0, 32, None, True),   # the shipped setting; matgl's MEGNet formation-energy example
    "5A-b64": (5.0, 64, None, True),
    "5A-b128": (5.0, 128, None, True),
    "5A-b32-1thread": (5.0, 32, 1, True),
    "4A-b32-1thread": (4.0, 32, 1, False),  # as the background queues train, with glibc's malloc defaults ...
    "4A-b32-1thread-kept": (4.0, 32, 1, True),  # ... and with freed memory kept (cfgp.featurize.freed_memory_kept)
}


def measure(name: str, n: int, epochs: int) -> dict:
    """One setting, in this process: graphs (timed), then ``epochs`` epochs of training (each timed)."""
    cutoff, batch, threads, keep_memory = CONFIGS[name]
    import contextlib
    import resource

    import cfgp  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
    import cfgp.featurize
    import tensorflow as tf

    if not keep_memory:  # the baseline: training under glibc's malloc defaults
        cfgp.featurize.freed_memory_kept = contextlib.nullcontext

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from cfgp.featurize import MEGNetFeaturizer, MEGNetSettings
    from cfgp.pipeline import Run, held_out_positions

    run = Run()
    held = set(held_out_positions(run).tolist())
    train = [i for i in run.split.train if i not in held][:n]
    val = sorted(held)
    m = run.materials
    feat = MEGNetFeaturizer(MEGNetSettings(cutoff=cutoff, batch_size=batch, seed=0))
    t0 = time.perf_counter()
    graphs, kept, _ = feat.to_graphs(m.structures(train))
    val_graphs, val_kept, _ = feat.to_graphs(m.structures(val))
    graph_s = time.perf_counter() - t0
    bonds = [len(g["index1"]) for g in graphs]
    stamps, cpu, faults = [], [], []

    def on_epoch(*_, **__):
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)

    feat.fit_graphs(graphs, m.y[train][kept], val_graphs, m.y[val][val_kept], epochs=epochs, patience=epochs,
                    progress=False, on_epoch=on_epoch)
    per_epoch = [b - a for a, b in zip([t0 + graph_s] + stamps[:-1], stamps)]
    steady = per_epoch[1:]
    steady_cpu = (cpu[-1] - cpu[0]) / (len(cpu) - 1)
    return {"config": name, "cutoff": cutoff, "batch_size": batch, "tf_threads": threads or "default",
            "n_train": len(graphs), "n_val": len(val_graphs), "graphs_s": round(graph_s, 1),
            "bonds_per_structure": round(sum(bonds) / len(bonds), 1),
            "first_epoch_s": round(per_epoch[0], 1), "s_per_epoch": round(sum(steady) / len(steady), 1),
            "cpu_s_per_epoch": round(steady_cpu, 2), "freed_memory_kept": keep_memory,
            "page_faults_per_epoch": round((faults[-1] - faults[0]) / (len(faults) - 1)),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "val_mae_last": round(float(feat.train_state_.history[-1]["val_mae"]), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1620, help="training materials (the shipped run's 1,620)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--concurrent", type=int, default=1, metavar="K", help="copies of each setting run at once")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one setting in this process
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be at least 2: the first epoch traces the graph and is reported apart")
    if args.one:
        print(json.dumps(measure(args.one, args.n, args.epochs)), flush=True)
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    rows = []
    for name in args.configs:
        load = os.getloadavg()[0]
        procs = [subprocess.Popen([sys.executable, __file__, "--one", name, "--n", str(args.n), "--epochs",
                                   str(args.epochs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env, cwd=ROOT) for _ in range(args.concurrent)]
        copies = []
        for proc in procs:
            stdout, stderr = proc.communicate()
            if proc.returncode:
                raise RuntimeError(f"{name}: {stderr[-3000:]}")
            copies.append(json.loads(stdout.strip().splitlines()[-1]))
        row = dict(copies[0])
        if args.concurrent > 1:
            for key in ("s_per_epoch", "cpu_s_per_epoch"):
                row[key] = round(sum(c[key] for c in copies) / len(copies), 2)
            row.update(concurrent=args.concurrent, cpu_s_per_epoch_each=[c["cpu_s_per_epoch"] for c in copies])
        row.update(load_before=round(load, 2), load_after=round(os.getloadavg()[0], 2))
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    out = {"machine": f"{os.cpu_count()} cores", "epochs": args.epochs, "concurrent": args.concurrent, "rows": rows}
    cpu = {r["config"]: r["cpu_s_per_epoch"] for r in rows}
    if args.concurrent > 1 and "5A-b32" in cpu and "5A-b32-1thread" in cpu:
        out["one_thread_cpu_ratio"] = round(cpu["5A-b32-1thread"] / cpu["5A-b32"], 3)
    if "4A-b32-1thread" in cpu and "4A-b32-1thread-kept" in cpu:
        out["kept_memory_cpu_ratio"] = round(cpu["4A-b32-1thread-kept"] / cpu["4A-b32-1thread"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
