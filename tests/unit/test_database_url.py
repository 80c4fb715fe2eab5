"""Database URLs as libpq reads them, several hosts included: the migration runner and
every CLI command connect with these."""

from __future__ import annotations

import pytest

from app.db.location import InvalidDatabaseUrl, connect_kwargs


def test_one_host() -> None:
    assert connect_kwargs("postgresql://app:secret@db.internal:6432/payments") == {
        "user": "app", "password": "secret", "host": "db.internal", "port": "6432",
        "database": "payments"}


def test_several_hosts_and_the_writable_one_chosen_at_connect_time() -> None:
    got = connect_kwargs("postgresql://app@h1:5432,h2:5433/payments"
                         "?target_session_attrs=read-write&connect_timeout=3")
    assert got == {"user": "app", "host": "h1,h2", "port": "5432,5433",
                   "target_session_attrs": "read-write", "connect_timeout": "3",
                   "database": "payments"}


def test_percent_encoded_password_and_a_socket_folder() -> None:
    got = connect_kwargs("postgresql://app:p%40ss%2Fword@/payments?host=/run/postgresql")
    assert got["password"] == "p@ss/word" and got["host"] == "/run/postgresql"


def test_no_database_name_means_postgres() -> None:
    assert connect_kwargs("postgresql://app@localhost")["database"] == "postgres"


def test_a_url_libpq_cannot_read_says_what_is_expected() -> None:
    with pytest.raises(InvalidDatabaseUrl, match="postgresql://user:password@host"):
        connect_kwargs("postgresql://app@h1:5432/db?nonsense_option=1")
