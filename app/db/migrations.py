"""Schema migrations: numbered scripts in migrations/, applied by peewee's runner."""

from __future__ import annotations

import logging

import peewee
from playhouse.migrations import Runner

from app.config import PROJECT_ROOT
from app.db.location import sync_database
from app.db.models import Currency
from app.money import CURRENCY_EXPONENTS

log = logging.getLogger("app.db")

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# Any constant works; it only has to be the same for every process of the app.
MIGRATION_LOCK_ID = 7_262_001


def migrate(url: str) -> list[str]:
    """Apply pending migrations; safe to run from several processes at once."""
    database = sync_database(url)
    database.connect()
    try:
        # One process migrates at a time; the others wait, then find nothing to do.
        database.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            applied = Runner(database, directory=str(MIGRATIONS_DIR)).up()
            sync_currencies(database)
        finally:
            database.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    finally:
        database.close()
    for name in applied:
        log.info("migration applied", extra={"migration": name})
    return applied


def sync_currencies(database: peewee.Database) -> None:
    """Add the currencies the app knows (app/money.py) that the currency table lacks.

    A code's exponent is never changed here: stored amounts are minor units of it. If the
    ISO list ever changes one, that needs a migration that rescales the invoices in it."""
    if not database.table_exists(Currency._meta.table_name):
        return  # before the migration that makes it
    stored = {row.code: row.exponent for row in Currency.select().execute(database)}
    missing = [{"code": code, "exponent": exponent}
               for code, exponent in CURRENCY_EXPONENTS.items() if code not in stored]
    if missing:
        Currency.insert_many(missing).on_conflict_ignore().execute(database)
    for code, exponent in CURRENCY_EXPONENTS.items():
        if code in stored and stored[code] != exponent:
            log.warning("currency exponent differs from ISO 4217; kept",
                        extra={"currency": code, "stored": stored[code], "iso": exponent})
