"""What the tests share: a real uvicorn server, direct SQL, an HTTP helper, signed webhooks,
bursts of simultaneous requests, pgbouncer, and the ledger checks.

Fixtures live in conftest.py; everything here is plain code that tests import.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import hmac
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import psycopg2.extras

from app.db.location import connect_kwargs

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-secret-key-" + "x" * 40
WEBHOOK_SECRETS = ["whsec_current_" + "a" * 32, "whsec_previous_" + "b" * 32]
PASSWORD = "correct-horse-42"
TABLES = ("delivery_attempts", "deliveries", "webhook_endpoints", "events", "replays",
          "invoice_transactions", "invoices", "login_throttles", "revoked_tokens", "users")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "APP_"))}
    env.update({
        "DATABASE_URL": database_url,
        "APP_ENV": "test",
        "SECRET_KEY": SECRET_KEY,
        "WEBHOOK_SECRET": ",".join(WEBHOOK_SECRETS),
        "LOG_LEVEL": "INFO",
        "DB_POOL_SIZE": "10",
        # Outgoing events: retries in fractions of a second, a worker that looks often.
        "DELIVERY_RETRY_DELAYS": "0.3,0.6,1.2",
        "DELIVERY_POLL_SECONDS": "0.05",
        "DELIVERY_TIMEOUT_SECONDS": "3",
    })
    env.update(extra)
    return env


def connections_per_process(port: int, pids: list[int]) -> list[int]:
    """Established TCP connections to `port` held open by each of `pids` (from /proc): how
    a server's clients are spread over its worker processes."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(fields[9])
    held = []
    for pid in pids:
        try:
            fds = [os.readlink(f) for f in glob.glob(f"/proc/{pid}/fd/*")]
        except OSError:
            fds = []
        held.append(sum(1 for fd in fds if fd.startswith("socket:") and fd[8:-1] in inodes))
    return held


def worker_pids(parent: int) -> list[int]:
    """A server's worker processes: the multiprocessing (spawn) children of `parent`, or,
    if it has none, its forked children (granian's workers)."""
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return []
    spawned, forked = [], []
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" in cmdline:
            continue
        (spawned if b"spawn_main" in cmdline else forked).append(pid)
    return sorted(spawned or forked)


# -- the server under test -----------------------------------------------------------------

# Lines of a server log that mean something went wrong on the server's side: a traceback,
# an ERROR record, or a request answered 5xx. Checked after every test (conftest.py).
_TRACEBACK = "Traceback (most recent call last)"
_STATUS = re.compile(r'"status": (\d{3})')
_LEVEL = re.compile(r'"level": "(ERROR|CRITICAL)"')

LIVE_SERVERS: list[Server] = []


class Server:
    """A uvicorn process serving the app on a free port, its log in a file."""

    def __init__(self, database_url: str, log_path: Path, workers: int = 1,
                 ready_path: str = "/ready", **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.workers = workers
        self._log = open(log_path, "wb")
        where = ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        # Several workers as `python -m app serve` runs them: each burst of connections is
        # dealt evenly, so a race fired at once really runs on both (app/serving.py).
        cmd = [sys.executable, "-m", "app.serving", "app.main:create_app", *where] \
            if workers > 1 else [sys.executable, "-m", "uvicorn", "app.main:create_app",
                                 "--factory", "--no-server-header", "--no-access-log", *where]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=app_env(database_url, **env),
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(workers, ready_path)
        LIVE_SERVERS.append(self)

    def _wait_ready(self, workers: int, ready_path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    if workers == 1 or self.log_text().count('"ready"') >= workers:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def problems_since(self, offset: int) -> list[str]:
        """Server-side failures logged after byte `offset`: tracebacks, ERROR records, 5xx."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        found = []
        for line in text.splitlines():
            status = _STATUS.search(line)
            if _TRACEBACK in line or _LEVEL.search(line) or \
                    (status and int(status.group(1)) >= 500):
                found.append(line[:600])
        return found

    def stop(self) -> None:
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


# -- pgbouncer -------------------------------------------------------------------------------

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def pgbouncer_installed() -> bool:
    return Path(PGBOUNCER).exists()


@contextmanager
def pgbouncer(database_url: str) -> Iterator[str]:
    """pgbouncer in transaction-pooling mode in front of `database_url`; yields its URL."""
    target = connect_kwargs(database_url)
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o755)
    host = target.get("host", "127.0.0.1")
    if os.geteuid() != 0:
        user = pwd.getpwuid(os.geteuid()).pw_name
    elif host.startswith("/"):  # the embedded server's socket folder belongs to its owner
        user = pwd.getpwuid(os.stat(host).st_uid).pw_name
    else:
        user = "postgres"
    (folder / "users.txt").write_text(f'"{target.get("user", "postgres")}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""
[databases]
{target['database']} = host={host} port={target.get('port', 5432)} dbname={target['database']}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 500
ignore_startup_parameters = extra_float_digits,statement_timeout,jit
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
""")
    for item in folder.iterdir():
        item.chmod(0o644)
    cmd = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        cmd[1:1] = ["-u", user]
        shutil.chown(folder, user)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = (f"postgresql://{target.get('user', 'postgres')}@127.0.0.1:{port}/"
           f"{target['database']}")
    deadline = time.monotonic() + 20
    while True:
        try:
            psycopg2.connect(**connect_kwargs(url)).close()
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline or proc.poll() is not None:
                log = folder / "pgbouncer.log"
                raise RuntimeError("pgbouncer did not start: " +
                                   (log.read_text() if log.exists() else "")) from None
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


# Behind pgbouncer: no statement cache (transaction pooling), and migrations (a session
# advisory lock) run against PostgreSQL itself, as the suite already did.
PGBOUNCER_ENV = {"DB_STATEMENT_CACHE": "false", "MIGRATE_ON_START": "false",
                 "DB_STATEMENT_TIMEOUT_MS": "0"}


# -- direct SQL ------------------------------------------------------------------------------

class Database:
    """Direct SQL for assertions about what the API left behind."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg2.connect(**connect_kwargs(url))
        self.conn.autocommit = True

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(r) for r in cur.fetchall()] if cur.description else []

    def one(self, sql: str, params: tuple = ()) -> dict[str, Any] | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: tuple = ()) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()[0]

    def reset(self) -> None:
        # A server's background work (deliveries, overdue housekeeping) may hold a lock the
        # TRUNCATE needs in another order; PostgreSQL then cancels one side: try again.
        for attempt in range(5):
            try:
                with self.conn.cursor() as cur:
                    cur.execute("TRUNCATE " + ", ".join(TABLES) + " CASCADE")
                return
            except psycopg2.errors.DeadlockDetected:
                if attempt == 4:
                    raise
                time.sleep(0.1)


# -- the API as a client sees it -------------------------------------------------------------

@dataclass
class Account:
    id: str
    username: str
    email: str
    token: str
    role: str = "user"
    password: str = PASSWORD
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    def __init__(self, client: httpx.Client, db: Database, password_hash: str,
                 database_url: str) -> None:
        self.client = client
        self.db = db
        self._hash = password_hash
        self.database_url = database_url

    def login(self, username: str, password: str = PASSWORD) -> str:
        r = self.client.post("/login", data={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def user(self, role: str = "user", name: str | None = None) -> Account:
        """An account inserted directly (fast), then logged in through the API."""
        name = name or f"{role}_{uuid.uuid4().hex[:10]}"
        user_id = str(uuid.uuid4())
        self.db.rows(
            "INSERT INTO users (id, username, email, password_hash, role) "
            "VALUES (%s, %s, %s, %s, %s)",
            (user_id, name, f"{name}@example.com", self._hash, role))
        return Account(user_id, name, f"{name}@example.com", self.login(name), role)

    def invoice(self, admin: Account, payer: Account, receiver: Account,
                amount: str = "1000.00", **extra: Any) -> dict[str, Any]:
        r = self.client.post("/invoices", headers=admin.headers, json={
            "payer_id": payer.id, "receiver_id": receiver.id, "amount": amount,
            "description": "test invoice", **extra})
        assert r.status_code == 201, r.text
        return r.json()

    def pay(self, admin: Account, invoice_id: str, amount: Any, **extra: Any) -> httpx.Response:
        return self.client.post("/invoice-transactions", headers=admin.headers, json={
            "invoice_id": invoice_id, "amount": amount, "payment_mode": "upi", **extra})

    def reconcile(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "app", "reconcile"], cwd=ROOT, capture_output=True,
            text=True, env=app_env(self.database_url), timeout=60)


def assert_problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body


# -- metrics ------------------------------------------------------------------------------

def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- many requests at once -------------------------------------------------------------------

Request = tuple[str, str, dict, Any]  # method, path, headers, JSON body (or bytes)


def burst(url: str, requests: list[Request]) -> list[httpx.Response]:
    """Send every request at once (one connection each) and return the responses in order."""

    async def send(c: httpx.AsyncClient, method: str, path: str, headers: dict,
                   body: Any) -> httpx.Response:
        if isinstance(body, bytes):
            return await c.request(method, path, headers=headers, content=body)
        return await c.request(method, path, headers=headers, json=body)

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(requests))
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
            return await asyncio.gather(*(send(c, *request) for request in requests))

    return asyncio.run(run())


# -- the ledger ------------------------------------------------------------------------------

def ledger_sums(api: Api, invoice_id: str) -> tuple[int, int, int]:
    row = api.db.one(
        "SELECT i.amount_recovered, i.amount_refunded, "
        "(SELECT count(*) FROM invoice_transactions t WHERE t.invoice_id = i.id) AS n "
        "FROM invoices i WHERE id = %s", (invoice_id,))
    return row["amount_recovered"], row["amount_refunded"], row["n"]


def assert_reconciles(api: Api) -> None:
    result = api.reconcile()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 mismatch" in result.stdout


def concurrent_payments(api: Api, url: str, admin: Account, invoice_id: str) -> None:
    requests = [("POST", "/invoice-transactions", admin.headers,
                 {"invoice_id": invoice_id, "amount": 30, "payment_mode": "card"})] * 50
    responses = burst(url, requests)
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 33, codes
    assert codes.count(409) == 17, codes
    for r in responses:
        if r.status_code == 409:
            assert r.json()["code"] == "amount_exceeds_due"
    inv = api.client.get(f"/invoices/{invoice_id}", headers=admin.headers).json()
    assert inv["amount_recovered"] == "990.00" and inv["status"] == "partially_paid"
    assert ledger_sums(api, invoice_id) == (99000, 0, 33)
    assert_reconciles(api)


# -- provider webhooks -----------------------------------------------------------------------

def sign(body: bytes, secret: str = WEBHOOK_SECRETS[0], t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def signed(payload: dict | bytes) -> tuple[bytes, dict[str, str]]:
    """A webhook body and the headers that deliver it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return body, {"content-type": "application/json", "X-Signature": sign(body)}


def deliver(api: Api, path: str, payload: dict | bytes, signature: str | None = "auto",
            ) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if signature == "auto":
        signature = sign(body)
    if signature is not None:
        headers["X-Signature"] = signature
    return api.client.post(f"/webhooks/{path}", content=body, headers=headers)


def evt() -> str:
    return f"evt_{uuid.uuid4().hex}"


# -- a merchant's endpoint -------------------------------------------------------------------

@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on a free port that records what it is sent and answers with the
    scripted statuses, then 200 (`fail_always` answers 500 to everything)."""

    def __init__(self, statuses: list[int] | None = None,
                 respond: Callable[[Received], int | None] | None = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[Received] = []
        self.statuses = list(statuses or [])
        self.fail_always = False
        self.respond = respond  # a status for this request, or None for the script's
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                               body, time.monotonic())
                with receiver.lock:
                    receiver.received.append(got)
                    status = receiver.respond(got) if receiver.respond else None
                    if status is None:
                        status = 500 if receiver.fail_always else (
                            receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 15) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"the receiver got {len(self.received)} requests, not {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
