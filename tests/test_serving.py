"""app/serving.py, the launcher of `python -m app serve --workers N`: connections dealt
evenly to the workers, a worker that dies replaced, a clean stop, and a worker that cannot
start stopping the server instead of being restarted forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import ROOT, app_env, connections_per_process, free_port, worker_pids


def _serve(database_url: str, log: Path, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([*args, "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            env=app_env(database_url), stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port


def _wait(port: int, proc: subprocess.Popen, workers: int, log: Path,
          started: int) -> list[int]:
    """The worker pids, once `started` workers have logged that their app is ready (the
    parent deals connections only to those)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        pids = worker_pids(proc.pid)
        try:
            if len(pids) == workers and log.read_text().count('"ready"') >= started and \
                    httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return pids
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready:\n{log.read_text()}")


def _open(port: int, n: int) -> list[httpx.Client]:
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for _ in range(n)]
    for c in clients:  # one request each, the connection kept open
        assert c.get("/health").status_code == 200
    return clients


def test_connections_are_dealt_evenly_and_a_dead_worker_is_replaced(
        database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    proc, port = _serve(database_url, log, sys.executable, "-m", "app", "serve",
                        "--workers", "2")
    try:
        pids = _wait(port, proc, 2, log, started=2)
        clients = _open(port, 16)
        assert connections_per_process(port, pids) == [8, 8]
        for c in clients:
            c.close()

        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while set(worker_pids(proc.pid)) in (set(pids), {pids[1]}):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        pids = _wait(port, proc, 2, log, started=3)
        clients = _open(port, 6)  # all answered, by both workers
        assert connections_per_process(port, pids) == [3, 3]
        for c in clients:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(40)
    assert code == 0, log.read_text()
    assert not worker_pids(proc.pid)


def test_a_worker_that_cannot_start_stops_the_server(database_url: str,
                                                     tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    proc, _ = _serve(database_url, log, sys.executable, "-m", "app.serving",
                     "app.main:no_such_factory", "--workers", "2")
    assert proc.wait(60) == 1, log.read_text()
    assert "before the app started" in log.read_text()


def test_ctrl_c_stops_every_process_quietly(database_url: str, tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it: the workers
    finish and exit, the server exits 0, and nothing is logged as a failure."""
    log = tmp_path / "serve.log"
    proc, port = _serve(database_url, log, sys.executable, "-m", "app", "serve",
                        "--workers", "2")
    try:
        _wait(port, proc, 2, log, started=2)
        clients = _open(port, 4)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(40)
    for c in clients:
        c.close()
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
