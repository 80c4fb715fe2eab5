"""Accounts: sign-up, reads, changes, deactivation. Who may do what is the router's
business (app/users/router.py); these are the rules of the accounts themselves. Passwords
arrive hashed: the router hashes them before its transaction opens (argon2 takes ~50 ms)."""

from __future__ import annotations

import uuid
from typing import Any

import peewee

from app.db.models import User, utcnow
from app.errors import Conflict, NotFound
from app.pagination import decode_cursor, page_json
from app.users import queries
from app.users.schemas import UserCreate, UserOut


class UsernameTaken(Conflict, code="username_taken"): ...
class EmailTaken(Conflict, code="email_taken"): ...
class LastAdmin(Conflict, code="last_admin"): ...
class UserNotFound(NotFound, code="user_not_found"): ...


def user_out(user: User | dict) -> UserOut:
    return UserOut.model_validate(user, from_attributes=not isinstance(user, dict))


def user_json(row: Any) -> dict[str, Any]:
    """A user row as the API shows it: UserOut's fields in its order, as plain values that
    app.http.responses encodes to the bytes the model would."""
    return {"id": row["id"], "username": row["username"], "email": row["email"],
            "role": row["role"], "is_active": row["is_active"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _taken(exc: peewee.IntegrityError) -> Conflict:
    constraint = getattr(getattr(exc, "orig", None), "constraint_name", None) or str(exc)
    if "users_email_key" in constraint:
        return EmailTaken("that email is already registered")
    if "users_username_key" in constraint:
        return UsernameTaken("that username is taken")
    raise exc


async def _refuse_taken(username: str | None, email: str | None, *,
                        except_id: uuid.UUID | None = None) -> None:
    for other in await queries.holders_of(username, email, except_id):
        if username is not None and other.username.lower() == username.lower():
            raise UsernameTaken("that username is taken")
        raise EmailTaken("that email is already registered")


async def create_user(*, data: UserCreate, password_hash: str) -> UserOut:
    await _refuse_taken(data.username, data.email)
    now = utcnow()
    user = await queries.insert({
        "id": uuid.uuid4(), "username": data.username, "email": data.email,
        "password_hash": password_hash, "role": data.role, "is_active": True,
        "created_at": now, "updated_at": now})
    if user is None:  # taken in the meantime; the unique indexes decided
        await _refuse_taken(data.username, data.email)
        raise UsernameTaken("that username or email was taken a moment ago")
    return user_out(user)


async def get_user(*, user_id: uuid.UUID) -> UserOut:
    user = await queries.get(user_id)
    if user is None:
        raise UserNotFound(f"no user with id {user_id}")
    return user_out(user)


async def list_users(*, limit: int, cursor: str | None) -> dict[str, Any]:
    """Newest first, as plain values (app.pagination.page_json)."""
    rows = await queries.page(limit, decode_cursor(cursor) if cursor else None)
    return page_json(rows, limit, user_json)


async def update_user(*, user_id: uuid.UUID, changes: dict[str, Any]) -> tuple[UserOut, int]:
    """Changes the caller may make (a new password as `password_hash`); the unique checks
    and the admin rule are here. The user, and its token version now."""
    changes = dict(changes)
    await _refuse_taken(changes.get("username"), changes.get("email"), except_id=user_id)
    if "role" in changes or "is_active" in changes:
        await queries.lock_admin_changes()
    user = await queries.lock(user_id)
    if user is None:
        raise UserNotFound(f"no user with id {user_id}")
    demoted = changes.get("role", user.role) != "admin" or changes.get("is_active") is False
    if user.role == "admin" and user.is_active and demoted \
            and await queries.other_active_admins(user.id) == 0:
        raise LastAdmin("this is the last active admin; make another admin first")
    new_email = "email" in changes and changes["email"] != user.email
    if "password_hash" in changes or new_email or \
            changes.get("is_active", user.is_active) != user.is_active:
        # New credentials, a deactivation or a reactivation: every earlier token stops.
        changes["token_version"] = user.token_version + 1
    if changes:
        changes["updated_at"] = utcnow()
        try:
            await queries.update(user_id, changes)
        except peewee.IntegrityError as exc:  # taken in the meantime: the index decided
            raise _taken(exc) from None
        for field, value in changes.items():
            setattr(user, field, value)
    return user_out(user), user.token_version


async def deactivate_user(*, user_id: uuid.UUID) -> None:
    await queries.lock_admin_changes()
    user = await queries.lock(user_id)
    if user is None:
        raise UserNotFound(f"no user with id {user_id}")
    if user.role == "admin" and user.is_active and await queries.other_active_admins(user.id) == 0:
        raise LastAdmin("this is the last active admin; make another admin first")
    await queries.update(user_id, {"is_active": False, "token_version": user.token_version + 1,
                                   "updated_at": utcnow()})
