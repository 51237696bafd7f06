"""What a full garbage collection costs the dashboard's server, with and without the heap frozen: one JSON line.

    python benchmarks/session_gc.py [--run data/default] [--sessions 2]

Every browser session ends with a full collection (cfgp.dashboard.shared._run_cleanups, so a closed classroom
hands its memory back) and Python runs its own now and then; while one runs, the event loop and so every other
session waits. This loads the server's data as `panel serve app.py` does, times ``gc.collect()`` before and after
the first page's :func:`cfgp.dashboard.shared.freeze_server_heap` (one fresh process each way), after the
predictor's warm-up, with N dashboards built and after they are dropped. Pause background jobs first: the
figures are wall-clock seconds (best of 3) on this machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time


def _collect_s(repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - t0)
    return round(best, 4)


def measure(run: str | None, sessions: int, freeze: bool) -> dict:
    """One server's sequence: load its data, (freeze), warm the predictor up, build and drop N dashboards."""
    from cfgp.dashboard import create_app
    from cfgp.dashboard.predict import ready_featurizer
    from cfgp.dashboard.shared import freeze_server_heap, server_data

    data = server_data(run)
    out: dict = {"tracked_objects_at_start": len(gc.get_objects()), "collect_s_at_start": _collect_s()}
    if freeze:
        freeze_server_heap(force=True)
        out["frozen_objects"] = gc.get_freeze_count()
    ready_featurizer(data)
    data.formula_rows
    out["collect_s_after_warm_up"] = _collect_s()
    apps = [create_app(run) for _ in range(sessions)]
    for app in apps:
        app.get_root()
    out["collect_s_sessions_alive"] = _collect_s()
    del apps, app
    out["collect_s_after_sessions"] = _collect_s()
    out["tracked_objects_after"] = len(gc.get_objects())
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="run folder (default: the embedded default)")
    ap.add_argument("--sessions", type=int, default=2, help="dashboards built while measuring")
    ap.add_argument("--variant", choices=["frozen", "unfrozen"], help=argparse.SUPPRESS)  # one server process
    args = ap.parse_args(argv)
    if args.variant:
        print(json.dumps(measure(args.run, args.sessions, args.variant == "frozen")))
        return {}
    out: dict = {"sessions": args.sessions, "load_average_before": round(os.getloadavg()[0], 2)}
    for variant in ("unfrozen", "frozen"):  # each in a fresh process: a freeze cannot be undone for the other
        cmd = [sys.executable, __file__, "--variant", variant, "--sessions", str(args.sessions)]
        if args.run:
            cmd += ["--run", args.run]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    out["load_average_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
