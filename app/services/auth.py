"""Login with throttling, token checks and revocation."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from peewee import fn

from app.config import get_settings
from app.db import db
from app.errors import InvalidCredentials, NotAuthenticated, TooManyAttempts
from app.models import LoginThrottle, RevokedToken, User
from app.security import (
    TokenClaims,
    create_access_token,
    decode_access_token,
    hash_password,
    needs_rehash,
    verify_against_dummy,
    verify_password,
)

WRONG_CREDENTIALS = "incorrect username or password"
_USER_COLUMNS = tuple(User._meta.fields)
_AUTHENTICATE_SQL = (
    f"SELECT {', '.join(_USER_COLUMNS)}, "
    "EXISTS (SELECT 1 FROM revoked_token WHERE jti = %s) AS revoked FROM users WHERE id = %s"
)


def login_key(username: str) -> str:
    """One throttle bucket per account name, however it is cased or spaced."""
    return re.sub(r"\s+", "", username).casefold()


async def authenticate(*, token: str) -> tuple[User, TokenClaims]:
    claims = decode_access_token(token)
    if claims is None:
        raise NotAuthenticated("the access token is invalid or has expired; log in again")
    # Every authenticated request runs this: one statement, no query building.
    row = (await db.aexecute_sql(_AUTHENTICATE_SQL, (claims.jti, claims.user_id))).fetchone()
    if row is None or row["revoked"] or not row["is_active"]:
        raise NotAuthenticated("the access token is no longer valid; log in again")
    return User(**{name: row[name] for name in _USER_COLUMNS}), claims


async def _check_throttle(key: str, now: datetime) -> None:
    row = await LoginThrottle.aget_or_none(LoginThrottle.key == key)
    if row is not None and row.locked_until is not None and row.locked_until > now:
        wait = max(1, math.ceil((row.locked_until - now).total_seconds()))
        raise TooManyAttempts(
            f"too many failed logins for this account; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )


async def _record_failure(key: str, now: datetime) -> None:
    s = get_settings()
    window_start = now - timedelta(seconds=s.login_window_seconds)
    locked_until = now + timedelta(seconds=s.login_lockout_seconds)
    await db.aexecute_sql(
        """
        INSERT INTO login_throttle AS t (key, failures, window_started_at, locked_until)
        VALUES (%s, 1, %s, NULL)
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN t.window_started_at < %s THEN 1 ELSE t.failures + 1 END,
            window_started_at = CASE WHEN t.window_started_at < %s THEN EXCLUDED.window_started_at
                                     ELSE t.window_started_at END,
            locked_until = CASE
                WHEN (CASE WHEN t.window_started_at < %s THEN 1 ELSE t.failures + 1 END) >= %s
                THEN %s::timestamptz ELSE NULL END
        """,
        (key, now, window_start, window_start, window_start, s.login_max_failures, locked_until),
    )


async def login(*, username: str, password: str) -> tuple[str, int]:
    now = datetime.now(UTC)
    key = login_key(username)
    await _check_throttle(key, now)
    user = await User.aget_or_none(
        (fn.lower(User.username) == key) | (fn.lower(User.email) == key)
    )
    if user is None:
        await verify_against_dummy(password)
        ok = False
    else:
        ok = await verify_password(password, user.password_hash) and user.is_active
    if not ok:
        await _record_failure(key, now)
        raise InvalidCredentials(WRONG_CREDENTIALS)
    await LoginThrottle.delete().where(LoginThrottle.key == key).aexecute()
    if needs_rehash(user.password_hash):
        # Keep every stored hash on the current cost, so that a login with a known name
        # takes as long as one with an unknown name (checked against the dummy hash).
        new_hash = await hash_password(password)
        await User.update(password_hash=new_hash).where(User.id == user.id).aexecute()
    return create_access_token(user.id)


async def logout(*, claims: TokenClaims) -> None:
    await db.aexecute_sql(
        "INSERT INTO revoked_token (jti, expires_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (claims.jti, claims.expires_at),
    )
    # Expired entries can go: the token's own `exp` already refuses them.
    await RevokedToken.delete().where(RevokedToken.expires_at < datetime.now(UTC)).aexecute()
