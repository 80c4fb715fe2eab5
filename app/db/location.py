"""Where the database is: `DATABASE_URL`, or an embedded PostgreSQL under the data folder;
and the synchronous connection the CLI and the migration runner use."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import peewee

from app.config import Settings


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under `data_dir` and return its URL."""
    import pgserver  # imported lazily: only needed without DATABASE_URL

    pgdata = data_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None keeps the server running after this process exits, so the
    # next start (and every worker process) reuses it instead of starting another.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri("postgres")


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir)


def connect_kwargs(url: str) -> dict:
    """libpq-style keyword arguments for psycopg2 from a postgresql:// URL."""
    parts = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict = {
        "database": unquote(parts.path.lstrip("/")) or query.pop("dbname", None) or "postgres",
        "user": unquote(parts.username) if parts.username else query.pop("user", None),
        "password": unquote(parts.password) if parts.password else None,
        "host": parts.hostname or query.pop("host", None),
        "port": parts.port,
    }
    kwargs.update(query)
    return {k: v for k, v in kwargs.items() if v not in (None, "")}


def sync_database(url: str) -> peewee.PostgresqlDatabase:
    return peewee.PostgresqlDatabase(**connect_kwargs(url))
