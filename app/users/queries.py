"""The users domain's SQL (all through the query builder: none of it is on a hot path)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import peewee

from app.db.connection import db
from app.db.models import User
from app.db.sql import newest_first

# Changes that may remove an active admin take this transaction-level lock first, so two of
# them never both count the other as the admin who remains. The count runs in a statement
# after the lock is granted, so it sees every such change committed before.
ADMIN_CHANGES_LOCK = 7_262_002


async def insert(values: dict[str, Any]) -> User | None:
    """The new user, or None when the username or email is taken (nothing is written, and
    the transaction stays usable: ON CONFLICT DO NOTHING instead of an error)."""
    rows = await db.list(User.insert(**values).on_conflict_ignore().returning(User))
    return rows[0] if rows else None


async def holders_of(username: str | None, email: str | None,
                     except_id: uuid.UUID | None = None) -> list[User]:
    """Other users with this username (any case) or this email."""
    conditions = []
    if username is not None:
        conditions.append(peewee.fn.lower(User.username) == username.lower())
    if email is not None:
        conditions.append(User.email == email)
    if not conditions:
        return []
    query = User.select(User.id, User.username, User.email).where(
        conditions[0] if len(conditions) == 1 else conditions[0] | conditions[1])
    if except_id is not None:
        query = query.where(User.id != except_id)
    return await db.list(query)


async def get(user_id: uuid.UUID) -> User | None:
    return await User.aget_or_none(User.id == user_id)


# UserOut's columns, written out as every list page's are (docs/PERFORMANCE.md, "List
# pages as plain values").
_SELECT_PUBLIC = "SELECT id, username, email, role, is_active, created_at, updated_at FROM users"


async def page(limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[Any]:
    """Newest first, `limit + 1` rows."""
    sql, params = newest_first(_SELECT_PUBLIC, created="created_at", key="id", filters={},
                               after=after, limit=limit)
    return (await db.aexecute_sql(sql, params)).fetchall()


async def lock(user_id: uuid.UUID) -> User | None:
    rows = await db.list(User.select().where(User.id == user_id).for_update())
    return rows[0] if rows else None


async def lock_admin_changes() -> None:
    await db.aexecute_sql("SELECT pg_advisory_xact_lock(%s)", (ADMIN_CHANGES_LOCK,))


async def other_active_admins(user_id: uuid.UUID) -> int:
    return await db.count(User.select().where(
        (User.role == "admin") & User.is_active & (User.id != user_id)))


async def update(user_id: uuid.UUID, values: dict[str, Any]) -> None:
    await User.update(**values).where(User.id == user_id).aexecute()
