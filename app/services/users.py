"""Accounts: sign-up, reads, changes, deactivation."""

from __future__ import annotations

import uuid

import peewee

from app.auth import Principal, ensure_admin_or_self
from app.db import db, fetch_one, with_retries
from app.errors import Conflict, Forbidden, NotFound
from app.models import User, utcnow
from app.pagination import decode_cursor, next_cursor
from app.schemas import Page, UserCreate, UserOut, UserUpdate
from app.security import hash_password


class UsernameTaken(Conflict):
    code = "username_taken"


class EmailTaken(Conflict):
    code = "email_taken"


class LastAdmin(Conflict):
    code = "last_admin"


class UserNotFound(NotFound):
    code = "user_not_found"


def user_out(user: User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


def _unique_violation(exc: peewee.IntegrityError) -> Conflict:
    text = str(exc)
    if "users_email_key" in text:
        return EmailTaken("that email is already registered")
    if "users_username_key" in text:
        return UsernameTaken("that username is taken")
    raise exc


async def _ensure_free(username: str | None, email: str | None, *,
                       except_id: uuid.UUID | None = None) -> None:
    """Friendly early check; the unique indexes still decide under concurrency."""
    conditions = []
    if username is not None:
        conditions.append(peewee.fn.lower(User.username) == username.lower())
    if email is not None:
        conditions.append(User.email == email)  # already in its normal form
    if not conditions:
        return
    query = User.select(User.id, User.username, User.email).where(
        conditions[0] if len(conditions) == 1 else conditions[0] | conditions[1])
    if except_id is not None:
        query = query.where(User.id != except_id)
    for other in await db.list(query):
        if username is not None and other.username.lower() == username.lower():
            raise UsernameTaken("that username is taken")
        raise EmailTaken("that email is already registered")


async def create_user(*, actor: Principal | None, data: UserCreate) -> UserOut:
    if data.role == "admin" and (actor is None or not actor.is_admin):
        raise Forbidden("only an admin can create admin accounts")
    await _ensure_free(data.username, data.email)
    password_hash = await hash_password(data.password)
    now = utcnow()
    user = User(id=uuid.uuid4(), username=data.username, email=data.email,
                password_hash=password_hash, role=data.role, is_active=True,
                created_at=now, updated_at=now)
    try:
        await user.asave(force_insert=True)
    except peewee.IntegrityError as exc:
        raise _unique_violation(exc) from None
    return user_out(user)


async def get_user(*, actor: Principal, user_id: uuid.UUID) -> UserOut:
    ensure_admin_or_self(actor, user_id)
    user = await User.aget_or_none(User.id == user_id)
    if user is None:
        raise UserNotFound(f"no user with id {user_id}")
    return user_out(user)


async def list_users(*, limit: int, cursor: str | None) -> Page[UserOut]:
    query = User.select().order_by(User.created_at.desc(), User.id.desc()).limit(limit + 1)
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.where(peewee.Tuple(User.created_at, User.id) < (created, last_id))
    rows = await db.list(query)
    return Page[UserOut](data=[user_out(u) for u in rows[:limit]],
                         next_cursor=next_cursor(rows, limit))


# Changes that may remove an active admin take this transaction-level lock first, so two of
# them never both count the other as the admin who remains. The count runs in a statement
# after the lock is granted, so it sees every such change committed before.
ADMIN_CHANGES_LOCK = 7_262_002


async def _lock_admin_changes() -> None:
    await db.aexecute_sql("SELECT pg_advisory_xact_lock(%s)", (ADMIN_CHANGES_LOCK,))


async def _other_active_admins(user_id: uuid.UUID) -> int:
    query = User.select().where((User.role == "admin") & User.is_active & (User.id != user_id))
    return await db.count(query)


async def update_user(*, actor: Principal, user_id: uuid.UUID, data: UserUpdate) -> UserOut:
    ensure_admin_or_self(actor, user_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if not actor.is_admin and ("role" in changes or "is_active" in changes):
        if changes.get("role", actor.user.role) != actor.user.role or \
                changes.get("is_active", True) is not True:
            raise Forbidden("only an admin can change a role or deactivate an account")
        changes.pop("role", None)
        changes.pop("is_active", None)
    password = changes.pop("password", None)
    if password is not None:
        changes["password_hash"] = await hash_password(password)
    await _ensure_free(changes.get("username"), changes.get("email"), except_id=user_id)
    return await with_retries(lambda: _update_locked(user_id, changes))


async def _update_locked(user_id: uuid.UUID, changes: dict) -> UserOut:
    if "role" in changes or "is_active" in changes:
        await _lock_admin_changes()
    user = await fetch_one(User.select().where(User.id == user_id).for_update())
    if user is None:
        raise UserNotFound(f"no user with id {user_id}")
    demoted = changes.get("role", user.role) != "admin" or changes.get("is_active") is False
    if user.role == "admin" and user.is_active and demoted \
            and await _other_active_admins(user.id) == 0:
        raise LastAdmin("this is the last active admin; make another admin first")
    if "password_hash" in changes or changes.get("is_active", user.is_active) != user.is_active:
        # A new password, a deactivation or a reactivation: every earlier token stops.
        changes["token_version"] = user.token_version + 1
    if changes:
        changes["updated_at"] = utcnow()
        try:
            await User.update(**changes).where(User.id == user_id).aexecute()
        except peewee.IntegrityError as exc:
            raise _unique_violation(exc) from None
        for field, value in changes.items():
            setattr(user, field, value)
    return user_out(user)


async def deactivate_user(*, user_id: uuid.UUID) -> None:
    await with_retries(lambda: _deactivate_locked(user_id))


async def _deactivate_locked(user_id: uuid.UUID) -> None:
    await _lock_admin_changes()
    user = await fetch_one(User.select().where(User.id == user_id).for_update())
    if user is None:
        raise UserNotFound(f"no user with id {user_id}")
    if user.role == "admin" and user.is_active and await _other_active_admins(user.id) == 0:
        raise LastAdmin("this is the last active admin; make another admin first")
    await User.update(is_active=False, token_version=User.token_version + 1,
                      updated_at=utcnow()).where(User.id == user_id).aexecute()
