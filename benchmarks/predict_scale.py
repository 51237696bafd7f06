"""Benchmark screening at scale: `cfgp predict` in one process against its baseline and a local Dask cluster.

Input: every structure the project has — the shipped oxides (data/mp_oxides.json.gz, 16,394) and the 19,143
non-oxides of the shared data (``--nonoxides``, /work/shared/data/mp_nonoxides.json.gz; not shipped in data/,
the check set of `cfgp evaluate --check-set`). Throughput is measured on a seeded sample of them (``--sample``,
default 2,000), each configuration as the user runs it (`cfgp predict --out FILE`, a subprocess) back to back,
alternating (``--repeats`` rounds): the baseline — the screening path of commit ``--baseline-commit`` (pymatgen's
CIF parser and its checks, megnet's batch generator, each chunk read then predicted), its ``cfgp`` package taken
from git into a temporary folder and run by the same interpreter on the same run folder —, one process as shipped
(the fast reader for plain P1 CIFs, the network inputs built in place, the next chunk prepared during a forward
pass) and 2 Dask workers × 1 thread; then the shipped code with parts switched off (``pymatgen_serial``:
``--cif-reader pymatgen --serial``; ``pymatgen_ahead``; ``auto_serial``) and 1 worker × 1 and × 2 threads.
``same_lines_as_baseline`` compares the output files byte for byte. Every run of the shipped code has
``stage_ms`` (per structure: read, parse, checks, graph — crystal graphs, network inputs, compositions —,
forward, gp, write; a prepared-ahead run's stages overlap, so they add up to more than its time) from its
summary. ``structures_per_s`` is the job's own
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
CFGP = [sys.executable, "-m", "cfgp.cli", "predict", "--quiet", "--json", "--run", str(ROOT / "data" / "default")]
#: the screening path before the fast CIF reader, in-place network inputs and chunks prepared ahead
BASELINE_COMMIT = "efca244"


def baseline_tree(commit: str, out: Path) -> Path:
    """The ``cfgp`` package of ``commit`` (``git archive``), under ``out``: put first on PYTHONPATH, it is the
    package the interpreter imports (ahead of the editable install)."""
    out.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit, "cfgp"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    (out / "data").symlink_to(ROOT / "data")  # the run folder's data set, where that package looks for it
    return out


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


def run_predict(args: list[str], out: Path, env: dict, cwd: Path = ROOT) -> dict:
    """One `cfgp predict --out` as a child process: its summary, wall time and the largest resident set of it
    and the processes it started and reaped (``os.wait4``: a Dask run's worker processes are its children)."""
    out.unlink(missing_ok=True)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.Popen([*CFGP, "--out", str(out), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=cwd)
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
            "structures_per_s": round(n / summary["seconds"], 2), "stage_ms": summary.get("stage_ms"),
            "wall_s": round(wall, 1),
            "peak_mb": round(usage.ru_maxrss / 1024), "load_before": round(load0, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def _retrain_state() -> str:
    """Whether a background `cfgp retrain` shares the machine: "none", "paused" (stopped by kill -STOP) or
    "running"."""
    found = subprocess.run(["pgrep", "-f", "cfgp retrain"], capture_output=True, text=True).stdout.split()
    if not found:
        return "none"
    states = [Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] for pid in found
              if Path(f"/proc/{pid}/stat").exists()]
    return "paused" if states and all(s == "T" for s in states) else "running"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=2000, help="structures for the throughput runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--nonoxides", type=Path, default=NONOXIDES)
    ap.add_argument("--full", action="store_true", help="also screen every structure in one process (peak memory)")
    ap.add_argument("--skip-sparse", action="store_true", help="do not run benchmarks/sparse_gp.sparse_vs_exact()")
    ap.add_argument("--skip-table", action="store_true", help="only single vs 2 workers × 1 thread")
    ap.add_argument("--repeats", type=int, default=2, help="alternating baseline / single / 2-worker rounds")
    ap.add_argument("--baseline-commit", default=BASELINE_COMMIT, help="the commit whose path is the baseline")
    args = ap.parse_args()

    inputs = [OXIDES] + ([args.nonoxides] if args.nonoxides.exists() else [])
    tmp = Path(tempfile.mkdtemp(prefix="predict-scale-"))
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    env.setdefault("CFGP_HOME", str(tmp / "home"))
    sample = tmp / "sample.jsonl.gz"
    n_sample = write_sample(inputs, args.sample, args.seed, sample)
    chunk = ["--chunk-size", str(args.chunk_size)]
    runs: dict[str, list[dict]] = {}
    old = baseline_tree(args.baseline_commit, tmp / "baseline")
    old_env = dict(env, PYTHONPATH=str(old))

    def measure(name: str, extra: list[str], path: Path = sample) -> dict:
        if name == "baseline":
            result = run_predict([*chunk, *extra, str(path)], tmp / f"{name}.jsonl", old_env, cwd=old)
        else:
            result = run_predict([*chunk, *extra, str(path)], tmp / f"{name}.jsonl", env)
        runs.setdefault(name, []).append(result)
        print(f"{name}: {result}", file=sys.stderr, flush=True)
        return result

    # back to back, alternating: baseline, single, 2×1, baseline, ... (the CPU is shared: see the drift)
    for _ in range(args.repeats):
        measure("baseline", [])
        measure("single", [])
        measure("dask_2x1", ["--workers", "2", "--threads-per-worker", "1"])
    if not args.skip_table:
        measure("pymatgen_serial", ["--cif-reader", "pymatgen", "--serial"])
        measure("pymatgen_ahead", ["--cif-reader", "pymatgen"])
        measure("auto_serial", ["--serial"])
        measure("dask_1x1", ["--workers", "1", "--threads-per-worker", "1"])
        measure("dask_1x2", ["--workers", "1", "--threads-per-worker", "2"])
    peak = max(r["peak_mb"] for rs in runs.values() for r in rs)

    def rate(name: str) -> float:
        rs = runs[name]
        return round(sum(r["n"] for r in rs) / sum(r["seconds"] for r in rs), 2)

    def stage_ms(name: str) -> dict:
        rs = [r for r in runs[name] if r.get("stage_ms")]
        stages = {k for r in rs for k in r["stage_ms"]}
        return {k: round(sum(r["stage_ms"].get(k, 0.0) * r["n"] for r in rs) / sum(r["n"] for r in rs), 3)
                for k in sorted(stages)}

    out = {
        "n_structures": n_sample,
        "inputs": [str(p) for p in inputs],
        "chunk_size": args.chunk_size,
        "single_structures_per_s": rate("single"),
        "baseline_structures_per_s": rate("baseline"),
        "single_vs_baseline": round(rate("single") / rate("baseline"), 3),
        "baseline_commit": args.baseline_commit,
        "same_lines_as_baseline": (tmp / "baseline.jsonl").read_bytes() == (tmp / "single.jsonl").read_bytes(),
        "stage_ms": {name: stage_ms(name) for name in runs if not name.startswith("dask_") and name != "baseline"},
        "dask_structures_per_s": rate("dask_2x1"),
        "dask_vs_single": round(rate("dask_2x1") / rate("single"), 3),
        "peak_mb_per_process": peak,
        "by_workers": [{"workers": int(k.split("_")[1][0]), "threads_per_worker": int(k.split("x")[1]),
                        "structures_per_s": rate(k), "runs": len(runs[k])}
                       for k in runs if k.startswith("dask_")],
        "by_path": {k: rate(k) for k in runs if not k.startswith("dask_")},
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "retrain": _retrain_state()},
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
