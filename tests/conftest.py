"""Fixtures: a real PostgreSQL, the app served by uvicorn, HTTP clients and accounts.

The database is `DATABASE_URL`'s server when set, else the embedded one; the suite makes
its own database there (`payapp_test_<pid>`) so it never touches application data. The app
runs as a real uvicorn process, so every test goes through HTTP exactly as a client would.

`TEST_SERVER` chooses how the main server runs: `1` (one worker, the default), `2` (two
worker processes) or `pgbouncer` (two workers behind pgbouncer in transaction pooling).

After every test, each running server's log is read: a traceback, an ERROR record or a 5xx
answer fails the test, unless the test is marked `faults` (it causes them on purpose).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import psycopg2
import pytest

from app.db.location import connect_kwargs, embedded_database_url
from app.db.migrations import migrate
from tests.support import (
    LIVE_SERVERS,
    PASSWORD,
    PGBOUNCER_ENV,
    ROOT,
    Account,
    Api,
    Database,
    Receiver,
    Server,
    pgbouncer,
    pgbouncer_installed,
)

# One database per test run, so parallel runs on one server never share or drop each other's.
TEST_DB = f"payapp_test_{os.getpid()}"


def _server_url() -> str:
    return os.environ.get("DATABASE_URL") or embedded_database_url(ROOT / ".data")


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlparse, urlunparse

    parts = urlparse(url)
    return urlunparse(parts._replace(path="/" + name))


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


@pytest.fixture(scope="module")
def own_database_url() -> Iterator[str]:
    """A database of the module's own: no other test server (and its in-process delivery
    worker) touches it."""
    server, name = _server_url(), f"{TEST_DB}_own"
    _admin_sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
    url = _with_database(server, name)
    migrate(url)
    yield url
    _admin_sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    mode = os.environ.get("TEST_SERVER", "1")
    log = tmp_path_factory.mktemp("server") / "app.log"
    with ExitStack() as stack:
        if mode == "pgbouncer":
            if not pgbouncer_installed():
                pytest.exit("TEST_SERVER=pgbouncer needs pgbouncer installed", returncode=2)
            url = stack.enter_context(pgbouncer(database_url))
            srv = Server(url, log, workers=2, **PGBOUNCER_ENV)
        else:
            srv = Server(database_url, log, workers=int(mode))
        yield srv
        srv.stop()


@pytest.fixture(scope="session")
def two_workers(database_url: str, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[Server]:
    """Two worker processes on one port: concurrent requests really run in parallel."""
    srv = Server(database_url, tmp_path_factory.mktemp("two") / "app.log", workers=2)
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    before = {id(s): s.log_size() for s in LIVE_SERVERS}
    yield
    servers = list(LIVE_SERVERS)
    if request.node.get_closest_marker("faults"):
        time.sleep(0.3)  # let late lines of this test land before the next one starts
        return
    problems = []
    for srv in servers:
        problems += [f"{srv.url}: {line}"
                     for line in srv.problems_since(before.get(id(srv), 0))]
    assert not problems, "the server logged failures:\n" + "\n".join(problems[:20])


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
    from app.auth.passwords import PasswordHasher
    from app.config import Settings

    return PasswordHasher(Settings()).hash_now(PASSWORD)  # the app's own argon2 parameters


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
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def bob(api: Api) -> Account:
    return api.user(name="bob")
