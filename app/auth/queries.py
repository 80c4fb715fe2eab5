"""The auth domain's SQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from peewee import fn

from app.auth.tokens import TokenClaims
from app.db.connection import db
from app.db.models import LoginThrottle, RevokedToken, User
from app.db.sql import Statement

_USER_COLUMNS = tuple(User._meta.sorted_field_names)

# Runs on every authenticated request: one statement, written out (building it with the
# query builder cost a measurable share of a GET; docs/PERFORMANCE.md, "raw-SQL auth").
_AUTHENTICATE = Statement(f"""
SELECT {', '.join(_USER_COLUMNS)},
       EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = :jti) AS revoked
FROM users WHERE id = :user_id
""")

# The same check as a CTE that a route's own statement carries, so that its authenticated
# request is one round trip, with revocation as immediate as above: the account behind the
# token, while it is active and at the token's version, and the token not revoked. No row:
# 401. Its parameters come from caller_params().
def _caller_select(user_id: str, version: str, jti: str) -> str:
    return f"""SELECT u.id, u.role FROM users u
    WHERE u.id = {user_id} AND u.is_active AND u.token_version = {version}
      AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = {jti})"""


def _caller(user_id: str, version: str, jti: str) -> str:
    return f"caller AS (\n    {_caller_select(user_id, version, jti)})"


CALLER = _caller(":caller_id", ":caller_version", ":caller_jti")


# The same check as a guard (app/db/guard.py) that the request's first SELECT carries, for
# the routes that do not write it into their own statements: allowed for an admin, or for
# the account whose id is the first parameter (none: admins only).
GUARD = (f"SELECT caller.role = 'admin' OR caller.id = %s AS allowed, caller.role AS info "
         f"FROM ({_caller_select('%s', '%s', '%s')}) caller")


def guard_params(claims: TokenClaims, allowed_user: uuid.UUID | None) -> tuple:
    return (allowed_user, claims.user_id, claims.version, claims.jti)


def caller_params(claims: TokenClaims) -> dict[str, Any]:
    return {"caller_id": claims.user_id, "caller_version": claims.version,
            "caller_jti": claims.jti}


# Counts a login attempt before its password is checked, in one statement under the row
# lock, so guesses sent all at once each take a number. A window or lockout that has ended
# starts over; the attempt that reaches the limit starts the lockout.
_ENDED = ("((t.locked_until IS NOT NULL AND t.locked_until <= :now) "
          "OR (t.locked_until IS NULL AND t.window_started_at < :window_start))")
_RESERVE_ATTEMPT = Statement(f"""
INSERT INTO login_throttles AS t (key, failures, window_started_at, locked_until)
VALUES (:key, 1, :now, CASE WHEN :limit <= 1 THEN :lock_until::timestamptz END)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN {_ENDED} THEN 1 ELSE t.failures + 1 END,
    window_started_at = CASE WHEN {_ENDED} THEN :now ELSE t.window_started_at END,
    locked_until = CASE
        WHEN {_ENDED} THEN CASE WHEN :limit <= 1 THEN :lock_until::timestamptz END
        WHEN t.locked_until IS NOT NULL THEN t.locked_until
        WHEN t.failures + 1 >= :limit THEN :lock_until::timestamptz
    END
RETURNING failures, locked_until
""")


async def user_with_revocation(user_id: uuid.UUID, jti: str) -> Any | None:
    cursor = await db.aexecute_sql(_AUTHENTICATE.text,
                                   _AUTHENTICATE.params(jti=jti, user_id=user_id))
    return cursor.fetchone()


def user_from(row: Any) -> User:
    return User(**{name: row[name] for name in _USER_COLUMNS})


async def user_by_login_name(name: str, email: str) -> User | None:
    """The user whose username (any case) or email (normalised) this is."""
    return await User.aget_or_none((fn.lower(User.username) == name.lower())
                                   | (User.email == email))


async def reserve_attempt(*, key: str, now: datetime, window_start: datetime, limit: int,
                          lock_until: datetime) -> Any:
    cursor = await db.aexecute_sql(_RESERVE_ATTEMPT.text, _RESERVE_ATTEMPT.params(
        key=key, now=now, window_start=window_start, limit=limit, lock_until=lock_until))
    return cursor.fetchone()


async def clear_attempts(key: str) -> None:
    await LoginThrottle.delete().where(LoginThrottle.key == key).aexecute()


async def set_password_hash(user_id: uuid.UUID, password_hash: str) -> None:
    await User.update(password_hash=password_hash).where(User.id == user_id).aexecute()


async def revoke(jti: str, expires_at: datetime, now: datetime) -> None:
    await RevokedToken.insert(jti=jti, expires_at=expires_at).on_conflict_ignore().aexecute()
    # Expired entries can go: the token's own `exp` already refuses them.
    await RevokedToken.delete().where(RevokedToken.expires_at < now).aexecute()
