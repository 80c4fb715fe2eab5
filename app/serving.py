"""Serve an ASGI app factory with uvicorn workers that share the connections evenly.

With `uvicorn --workers N` every worker accepts from one shared listening socket, and an
event loop takes every connection that is waiting when it wakes up: keep-alive clients
(a proxy, the payment provider, a load generator) can all end up on one worker while the
others idle (docs/PERFORMANCE.md, "Connections pile up on one worker"). Here the parent
process accepts, and deals each new connection to the next worker in turn, passing the
socket itself over a Unix socket (SCM_RIGHTS): N connections are spread N/workers each,
whatever the clients do. Requests never pass through the parent; a worker serves its
connections with uvicorn's own protocol, exactly as `uvicorn` would.

    python -m app.serving app.main:create_app --workers 2 [--host H] [--port P]

`python -m app serve` runs this (after migrating). One worker needs no dealer: uvicorn
serves directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from typing import Any

import uvicorn

log = logging.getLogger("app.serving")

# Sockets a worker takes from one message; the parent sends one at a time.
_MAX_FDS = 16
# What a worker sends the parent once its app has started. If no worker ever says so and
# one exits, the app cannot start (no database, a bad setting): the whole server stops.
# A worker that dies later is replaced, after a pause that doubles while they keep dying.
_READY = b"r"
_FIRST_RESTART_DELAY = 0.5
_LAST_RESTART_DELAY = 30.0
# How long the parent waits for a busy worker's channel when every channel is full.
_HANDOFF_SECONDS = 5.0
# How long the workers get to finish their requests when the server stops.
_STOP_SECONDS = 30.0


class DealtServer(uvicorn.Server):
    """uvicorn's server without a listening socket of its own: it serves the connections
    the parent passes it over `channel`."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan, and no listener
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        try:
            self.channel.sendall(_READY)
        except OSError:  # the parent is gone, or stopping: nothing will come
            self.should_exit = True
            return
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._take, loop)

    def _take(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self.channel, 1, _MAX_FDS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message, fds = b"", []
            for fd in fds:
                loop.create_task(self._serve_connection(loop, socket.socket(fileno=fd)))
            if not message:  # the parent closed the channel: finish what is open, exit
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True
                return

    async def _serve_connection(self, loop: asyncio.AbstractEventLoop,
                                sock: socket.socket) -> None:
        config = self.config
        try:
            await loop.connect_accepted_socket(
                lambda: config.http_protocol_class(  # type: ignore[call-arg]
                    config=config, server_state=self.server_state,
                    app_state=self.lifespan.state, _loop=loop),
                sock=sock)
        except OSError:  # the client went away before it was served
            sock.close()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        await super().shutdown(sockets=[])


def _worker(config_kwargs: dict[str, Any], channel: socket.socket) -> None:
    # Ctrl-C reaches every process of the group: uvicorn's own handler still shuts the
    # worker down gracefully, and re-raising the signal afterwards (as uvicorn does) then
    # ends it quietly instead of with a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = uvicorn.Config(**config_kwargs)
    DealtServer(config, channel).run()


@dataclass
class Worker:
    process: SpawnProcess
    channel: socket.socket
    ready: bool = False  # it said its app has started


class Dealer:
    """The parent: accepts, deals connections round-robin to the workers that have started,
    replaces a worker that died."""

    def __init__(self, config_kwargs: dict[str, Any], workers: int,
                 listener: socket.socket) -> None:
        self.config_kwargs = config_kwargs
        self.listener = listener
        self.context = multiprocessing.get_context("spawn")
        self.workers = [self._start() for _ in range(workers)]
        self.next = 0
        self.stopping = False
        self.failed = False
        self.restart_delay = _FIRST_RESTART_DELAY
        self.restart_at = 0.0

    def _start(self) -> Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = self.context.Process(target=_worker, args=(self.config_kwargs, theirs),
                                       name="payment-app-worker")
        process.start()
        theirs.close()
        ours.setblocking(False)
        return Worker(process, ours)

    def _heard(self) -> None:
        """Note which workers said they have started."""
        for worker in self.workers:
            if worker.ready:
                continue
            try:
                worker.ready = worker.channel.recv(16).startswith(_READY)
            except (BlockingIOError, InterruptedError, OSError):
                pass

    def _deal(self, connection: socket.socket) -> None:
        """To the next started worker whose channel has room; if every one is full, wait
        for the next one's (the backlog keeps the connections not yet accepted)."""
        self._heard()
        ready = [w for w in self.workers if w.ready and w.process.is_alive()] or self.workers
        for attempt in range(len(ready) + 1):
            worker = ready[self.next % len(ready)]
            self.next += 1
            try:
                if attempt == len(ready):  # all full: block on one, a while
                    worker.channel.settimeout(_HANDOFF_SECONDS)
                socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
                return
            except OSError:  # full, timed out, or the worker is gone (_check restarts it)
                continue
            finally:
                worker.channel.setblocking(False)
        log.warning("no worker took a connection within %s s; it is closed",
                    _HANDOFF_SECONDS)

    def _check(self) -> None:
        self._heard()
        for i, worker in enumerate(self.workers):
            if worker.process.is_alive() or self.stopping:
                continue
            if time.monotonic() < self.restart_at:
                continue  # backing off: a worker that keeps dying is not respawned hot
            worker.channel.close()
            if not worker.ready and not any(w.ready for w in self.workers):
                log.error("worker %s exited with %s before the app started; stopping",
                          worker.process.pid, worker.process.exitcode)
                self.stopping = self.failed = True
                return
            log.warning("worker %s exited with %s; starting another", worker.process.pid,
                        worker.process.exitcode)
            self.workers[i] = self._start()
            self.restart_at = time.monotonic() + self.restart_delay
            self.restart_delay = min(self.restart_delay * 2, _LAST_RESTART_DELAY)
        if all(w.ready for w in self.workers):
            self.restart_delay = _FIRST_RESTART_DELAY

    def run(self) -> bool:
        """Until SIGINT or SIGTERM; False if the app failed to start."""
        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)
        self.listener.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        while not self.stopping:
            for _ in selector.select(timeout=0.5):
                while not self.stopping:
                    try:
                        connection, _ = self.listener.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:  # e.g. out of file descriptors: wait a little
                        log.warning("accept failed: %s", exc)
                        time.sleep(0.05)
                        break
                    with connection:
                        self._deal(connection)
            self._check()
        selector.close()
        self.listener.close()
        for worker in self.workers:
            worker.channel.close()  # each worker finishes its requests, then exits
        deadline = time.monotonic() + _STOP_SECONDS
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive() and worker.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGKILL)
                worker.process.join()
        return not self.failed


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def run(factory: str, *, host: str, port: int, workers: int, **uvicorn_kwargs: Any) -> None:
    """Serve `factory` ("module:function", called once per worker) on host:port."""
    config_kwargs = {"app": factory, "factory": True, "host": host, "port": port,
                     "server_header": False, "access_log": False, **uvicorn_kwargs}
    if workers <= 1:
        uvicorn.run(**config_kwargs)
        return
    if not Dealer(config_kwargs, workers, listen(host, port)).run():
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.serving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("factory", help="module:function that returns the ASGI app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run(args.factory, host=args.host, port=args.port, workers=args.workers,
        log_config=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
