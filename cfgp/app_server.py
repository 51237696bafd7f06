"""``panel serve app.py`` in a child process, for what drives the dashboard from outside: the browser tests, the
benchmarks and the docs' screenshots.

One place for the command (bound to 127.0.0.1 on a free port, websocket origin allowed for that address only),
for waiting until the first page answers — failing at once, with the log, if the server exits — and for stopping
it: a server left behind holds a port and a gigabyte of memory on the next CI run, so a stop that does not end
within its grace period is a kill.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

#: seconds a terminated server gets to close its sessions before it is killed
STOP_GRACE = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/app"


def start_server(cwd: str | Path, port: int, env: Mapping[str, str],
                 log: IO | int = subprocess.DEVNULL) -> subprocess.Popen:
    """Start ``panel serve app.py`` in ``cwd`` on ``port`` with ``env``; its output (both streams) goes to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", "app.py", "--address", "127.0.0.1", "--port", str(port),
         "--allow-websocket-origin", f"127.0.0.1:{port}"],
        cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT)


def wait_for_page(proc: subprocess.Popen, url: str, timeout: float = 180.0, poll: float = 0.3,
                  log: Callable[[], str] = lambda: "") -> float:
    """Seconds until ``url`` answers 200; RuntimeError (with the end of ``log()``) if the server exits first or
    ``timeout`` passes."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited ({proc.returncode}): {log()[-3000:]}")
        try:
            if urllib.request.urlopen(url, timeout=max(1.0, timeout - (time.perf_counter() - t0))).status == 200:
                return time.perf_counter() - t0
        except OSError:
            time.sleep(poll)
    raise RuntimeError(f"panel serve did not answer {url} within {timeout:.0f} s: {log()[-3000:]}")


def stop_server(proc: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """Terminate the server; kill it if it has not ended within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
