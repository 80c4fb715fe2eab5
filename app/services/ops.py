"""Operational checks."""

from __future__ import annotations

import asyncio

from app.db import db
from app.errors import DatabaseUnavailable

READY_TIMEOUT_SECONDS = 2.0


async def check_database() -> None:
    try:
        await asyncio.wait_for(db.aexecute_sql("SELECT 1"), READY_TIMEOUT_SECONDS)
    except Exception as exc:
        raise DatabaseUnavailable("the database is not answering") from exc
