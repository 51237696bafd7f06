"""Benchmark screening at scale: `cfgp predict` in one process against a local Dask cluster on the same cores.

Input: every structure the project has — the shipped oxides (data/mp_oxides.json.gz, 16,394) and the 19,143
non-oxides of the shared data (``--nonoxides``, /work/shared/data/mp_nonoxides.json.gz; not shipped in data/,
the check set of `cfgp evaluate --check-set`). Throughput is measured on a seeded sample of them (``--sample``,
default 2,000), each configuration as the user runs it (`cfgp predict --out FILE`, a subprocess) back to back:
one process and 2 workers × 1 thread alternating (``--repeats`` pairs), then 1 worker × 1 and × 2 threads. ``structures_per_s`` is the job's own
screening time (the summary's ``seconds``: reading, parsing, featurising, GP, writing), without the model load
(~20-60 s, once per process). Peak memory is each run's largest process (``ru_maxrss`` of the reaped
children: the CLI process, and for Dask its nannies and workers). ``--full`` also screens all ~35,000 structures
in one process for the peak memory of a whole-data-set job. Prints one JSON line.

    python benchmarks/predict_scale.py [--sample 2000] [--full] [--skip-sparse]

The machine is shared (other jobs, a niced training run): the load average before and after each run is
reported with it, and the single-process and 2-worker runs are done twice, alternating, to see the drift.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OXIDES = ROOT / "data" / "mp_oxides.json.gz"
NONOXIDES = Path("/work/shared/data/mp_nonoxides.json.gz")
CFGP = [sys.executable, "-m", "cfgp.cli", "predict", "--quiet", "--json"]


def write_sample(paths: list[Path], n: int | None, seed: int, out: Path) -> int:
    """A seeded sample of n records of ``paths`` (all if n is None), as JSON lines (gzip): id, energy, CIF."""
    from cfgp.record_streams import iter_records

    records = [{k: r.get(k) for k in ("material_id", "formation_energy_per_atom", "cif")}
               for p in paths for r in iter_records(p)]
    if n is not None and n < len(records):
        records = random.Random(seed).sample(records, n)
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return len(records)


def run_predict(args: list[str], out: Path, env: dict) -> dict:
    """One `cfgp predict --out` as a child process: its summary, wall time and the largest resident set of it
    and the processes it started and reaped (``os.wait4``: a Dask run's worker processes are its children)."""
    out.unlink(missing_ok=True)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.Popen([*CFGP, "--out", str(out), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=ROOT)
    texts: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: texts.__setitem__(k, f.read()), daemon=True)
               for k, f in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for r in readers:
        r.join()
    wall = time.time() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        raise RuntimeError(f"cfgp predict {args} exited {code}: {texts['stderr'].decode()[-3000:]}")
    summary = json.loads(texts["stdout"].decode().strip().splitlines()[-1])
    n = summary["predicted"] + summary["errors"]
    return {"n": n, "errors": summary["errors"], "seconds": summary["seconds"],
            "structures_per_s": round(n / summary["seconds"], 2), "wall_s": round(wall, 1),
            "peak_mb": round(usage.ru_maxrss / 1024), "load_before": round(load0, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=2000, help="structures for the throughput runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--nonoxides", type=Path, default=NONOXIDES)
    ap.add_argument("--full", action="store_true", help="also screen every structure in one process (peak memory)")
    ap.add_argument("--skip-sparse", action="store_true", help="do not run benchmarks/sparse_gp.sparse_vs_exact()")
    ap.add_argument("--skip-table", action="store_true", help="only single vs 2 workers × 1 thread")
    ap.add_argument("--repeats", type=int, default=2, help="alternating single / 2-worker pairs (default 2)")
    args = ap.parse_args()

    inputs = [OXIDES] + ([args.nonoxides] if args.nonoxides.exists() else [])
    tmp = Path(tempfile.mkdtemp(prefix="predict-scale-"))
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    env.setdefault("CFGP_HOME", str(tmp / "home"))
    sample = tmp / "sample.jsonl.gz"
    n_sample = write_sample(inputs, args.sample, args.seed, sample)
    chunk = ["--chunk-size", str(args.chunk_size)]
    runs: dict[str, list[dict]] = {}

    def measure(name: str, extra: list[str], path: Path = sample) -> dict:
        result = run_predict([*chunk, *extra, str(path)], tmp / f"{name}.jsonl", env)
        runs.setdefault(name, []).append(result)
        print(f"{name}: {result}", file=sys.stderr, flush=True)
        return result

    # back to back, alternating: single, 2×1, single, 2×1, ... (the CPU is shared: see the drift)
    for _ in range(args.repeats):
        measure("single", [])
        measure("dask_2x1", ["--workers", "2", "--threads-per-worker", "1"])
    if not args.skip_table:
        measure("dask_1x1", ["--workers", "1", "--threads-per-worker", "1"])
        measure("dask_1x2", ["--workers", "1", "--threads-per-worker", "2"])
    peak = max(r["peak_mb"] for rs in runs.values() for r in rs)

    def rate(name: str) -> float:
        rs = runs[name]
        return round(sum(r["n"] for r in rs) / sum(r["seconds"] for r in rs), 2)

    out = {
        "n_structures": n_sample,
        "inputs": [str(p) for p in inputs],
        "chunk_size": args.chunk_size,
        "single_structures_per_s": rate("single"),
        "dask_structures_per_s": rate("dask_2x1"),
        "dask_vs_single": round(rate("dask_2x1") / rate("single"), 3),
        "peak_mb_per_process": peak,
        "by_workers": [{"workers": int(k.split("_")[1][0]), "threads_per_worker": int(k.split("x")[1]),
                        "structures_per_s": rate(k), "runs": len(runs[k])}
                       for k in runs if k.startswith("dask_")],
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "retrain_running": subprocess.run(["pgrep", "-f", "cfgp retrain"], capture_output=True).returncode == 0},
    }
    if args.full:
        everything = tmp / "all.jsonl.gz"
        out["n_structures_total"] = write_sample(inputs, None, args.seed, everything)
        full = measure("single_all", [], everything)
        out["full_single_process"] = full
        out["peak_mb_per_process"] = max(peak, full["peak_mb"])
    if args.skip_sparse:
        out["sparse_vs_exact"] = "skipped (--skip-sparse)"
    else:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from sparse_gp import sparse_vs_exact

        out["sparse_vs_exact"] = sparse_vs_exact()
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
