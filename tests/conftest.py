"""Test harness: a real PostgreSQL, the app served by uvicorn, and HTTP clients.

The database is `DATABASE_URL`'s server when set, else the embedded one; the suite makes
its own database there (`payapp_test`) so it never touches application data. The app runs
as a real uvicorn process, so every test goes through HTTP exactly as a client would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import psycopg2.extras
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.db import connect_kwargs, embedded_database_url, migrate  # noqa: E402

# One database per test run, so parallel runs on one server never share or drop each other's.
TEST_DB = f"payapp_test_{os.getpid()}"
SECRET_KEY = "test-secret-key-" + "x" * 40
WEBHOOK_SECRETS = ["whsec_current_" + "a" * 32, "whsec_previous_" + "b" * 32]
PASSWORD = "correct-horse-42"
TABLES = ("webhook_event", "idempotency_key", "invoice_transaction", "invoice",
          "login_throttle", "revoked_token", "users")


def _server_url() -> str:
    return os.environ.get("DATABASE_URL") or embedded_database_url(ROOT / ".data")


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlparse, urlunparse

    parts = urlparse(url)
    return urlunparse(parts._replace(path="/" + name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin_sql(server: str, *statements: str) -> None:
    conn = psycopg2.connect(**connect_kwargs(server))
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = _server_url()
    _admin_sql(server, f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)",
               f"CREATE DATABASE {TEST_DB}")
    url = _with_database(server, TEST_DB)
    migrate(url)
    yield url
    _admin_sql(server, f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)")


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "APP_"))}
    env.update({
        "DATABASE_URL": database_url,
        "APP_ENV": "test",
        "SECRET_KEY": SECRET_KEY,
        "WEBHOOK_SECRET": ",".join(WEBHOOK_SECRETS),
        "LOG_LEVEL": "INFO",
        "DB_POOL_SIZE": "10",
    })
    env.update(extra)
    return env


class Server:
    """A uvicorn process serving the app on a free port, its log in a file."""

    def __init__(self, database_url: str, log_path: Path, workers: int = 1,
                 **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        cmd = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(self.port), "--no-server-header",
               "--no-access-log", "--workers", str(workers)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=app_env(database_url, **env),
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(workers)

    def _wait_ready(self, workers: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    if workers == 1 or self.log_text().count('"ready"') >= workers:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@pytest.fixture(scope="session")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(database_url, tmp_path_factory.mktemp("server") / "app.log")
    yield srv
    srv.stop()


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
        with self.conn.cursor() as cur:
            cur.execute("TRUNCATE " + ", ".join(TABLES) + " CASCADE")


@pytest.fixture(scope="session")
def _database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.conn.close()


@pytest.fixture
def db(_database: Database) -> Database:
    _database.reset()
    return _database


@pytest.fixture(scope="session")
def password_hash() -> str:
    from app.security import _context  # the app's own argon2 parameters

    return _context().hash(PASSWORD)


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


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def api(client: httpx.Client, db: Database, password_hash: str, database_url: str) -> Api:
    return Api(client, db, password_hash, database_url)


@pytest.fixture
def admin(api: Api) -> Account:
    return api.user("admin")


@pytest.fixture
def alice(api: Api) -> Account:
    return api.user(name="alice")


@pytest.fixture
def bob(api: Api) -> Account:
    return api.user(name="bob")


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
