"""The served app's child process: a server that ignores the polite stop is killed, one that dies early fails the
wait at once with its log. (Serving the real app is every browser test's fixture, ``tests/dashboard``.)"""

import subprocess
import sys
import time

import pytest

from cfgp.app_server import free_port, stop_server, wait_for_page


def test_a_server_that_ignores_terminate_is_killed_after_its_grace():
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); print('up', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"up\n"  # the handler is set before the stop
    t0 = time.perf_counter()
    stop_server(child, grace=1.0)
    assert child.returncode == -9 and time.perf_counter() - t0 < 10


def test_waiting_for_a_server_that_exits_fails_at_once_with_its_log():
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"exited \(3\): no such app"):
        wait_for_page(child, f"http://127.0.0.1:{free_port()}/app", timeout=60, poll=0.05,
                      log=lambda: "no such app")
    assert time.perf_counter() - t0 < 30
