"""How long `panel serve app.py` takes to answer its first page, for one or more checkouts, interleaved.

    python benchmarks/app_start.py [--checkout DIR ...] [--repeat 3] [--run data/default]

Each checkout (default: this one) is served in turn with its own code (``PYTHONPATH``) and a fresh, empty user
folder (``CFGP_HOME``), so no cache of an earlier start is reused, and the seconds from the launch to the first HTTP
200 of ``/app`` are taken; the checkouts alternate run by run, so a machine that gets busier slows both alike.
Prints one JSON object: per checkout its commit, every run's seconds and the median, and the ratio of each
checkout's median to the first's. Pause background jobs first (``kill -STOP``).
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

from cfgp.app_server import app_url, free_port, start_server, stop_server, wait_for_page

ROOT = Path(__file__).resolve().parent.parent


def first_page_seconds(checkout: Path, run: str, timeout: float = 300) -> float:
    """Seconds from launching ``panel serve app.py`` in ``checkout`` to its first answered page."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cfgp-start-") as home:
        env = dict(os.environ, PYTHONPATH=str(checkout), CFGP_HOME=home, CFGP_RUN=str(checkout / run),
                   TF_CPP_MIN_LOG_LEVEL="3", BOKEH_RESOURCES="server")
        t0 = time.perf_counter()
        proc = start_server(checkout, port, env)
        try:
            wait_for_page(proc, app_url(port), timeout, poll=0.2)
            return time.perf_counter() - t0
        finally:
            stop_server(proc)


def commit(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkout", type=Path, action="append", help="a checkout to serve (repeatable; default: this one)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--run", default="data/default", help="run folder, relative to each checkout")
    args = ap.parse_args()
    checkouts = [c.resolve() for c in (args.checkout or [ROOT])]
    seconds: dict[Path, list[float]] = {c: [] for c in checkouts}
    for _ in range(args.repeat):
        for c in checkouts:
            seconds[c].append(round(first_page_seconds(c, args.run), 2))
    first = statistics.median(seconds[checkouts[0]])
    print(json.dumps({
        "command": "python benchmarks/app_start.py " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()} cores",
        "checkouts": [{"checkout": str(c), "commit": commit(c), "first_page_s": seconds[c],
                       "median_s": statistics.median(seconds[c]),
                       "ratio_to_first": round(statistics.median(seconds[c]) / first, 3)} for c in checkouts]}))


if __name__ == "__main__":
    main()
