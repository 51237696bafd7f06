"""How long `cfgp predict ONE.cif` takes from the command to its line, against the same command on another commit.

    python benchmarks/predict_one.py [--baseline-commit 6d92b54] [--repeats 3] [--material mp-…]

A user predicting one crystal waits for the whole process: imports, the network and GP loaded, the forward pass
traced, the crystal predicted. Each round runs the baseline (the ``cfgp`` package of ``--baseline-commit``, from
``git archive``, first on PYTHONPATH) and the shipped code, one after the other, on the same CIF — a test-split
oxide of the shipped default, written to a temporary file — with a fresh, empty user folder (``CFGP_HOME``).
Prints one JSON object: every run's wall seconds, the medians, their ratio and whether both print the same line.
The machine is shared: pause background jobs first (``kill -STOP``); the load average is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.predict_scale import baseline_tree  # noqa: E402
from cfgp.pipeline import Run  # noqa: E402

#: the commit before the forward pass was traced once for every graph size (three warm-up passes at load)
BASELINE_COMMIT = "6d92b54"


def predict_once(cif: Path, tree: Path) -> tuple[float, dict]:
    """Wall seconds of `cfgp predict --json CIF` with the ``cfgp`` package of ``tree`` (run from there: ``-m``
    puts the working folder first on the path), and its line."""
    with tempfile.TemporaryDirectory(prefix="cfgp-one-") as home:
        env = dict(os.environ, CFGP_HOME=home, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(tree))
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "cfgp.cli", "predict", "--json", "--run",
                              str(ROOT / "data" / "default"), str(cif)], capture_output=True, text=True, env=env,
                             cwd=tree)
        wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"cfgp predict exited {out.returncode}: {out.stderr[-3000:]}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-commit", default=BASELINE_COMMIT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--material", default=None, help="an mp-id of the default (default: its first test oxide)")
    a = ap.parse_args()
    run = Run(ROOT / "data" / "default")
    ids = list(run.materials.ids)
    row = ids.index(a.material) if a.material else int(run.split.test[0])
    with tempfile.TemporaryDirectory(prefix="cfgp-bench-") as tmp:
        tmp = Path(tmp)
        base = baseline_tree(a.baseline_commit, tmp / "baseline")
        cif = tmp / f"{ids[row]}.cif"
        cif.write_text(run.materials.frame["cif"].iloc[row])
        seconds: dict[str, list[float]] = {"baseline": [], "shipped": []}
        lines: dict[str, dict] = {}
        load = [round(os.getloadavg()[0], 2)]
        for _ in range(a.repeats):
            for name, tree in (("baseline", base), ("shipped", ROOT)):
                wall, line = predict_once(cif, tree)
                seconds[name].append(round(wall, 2))
                lines[name] = line
        load.append(round(os.getloadavg()[0], 2))
    med = {k: statistics.median(v) for k, v in seconds.items()}
    print(json.dumps({"material": ids[row], "baseline_commit": a.baseline_commit, "seconds": seconds,
                      "median_s": med, "shipped_vs_baseline": round(med["shipped"] / med["baseline"], 3),
                      "same_line": lines["baseline"] == lines["shipped"], "line": lines["shipped"],
                      "load_before_after": load}))


if __name__ == "__main__":
    main()
