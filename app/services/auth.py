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
from app.schemas import normalize_email
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


def login_name(username: str) -> str:
    """What was typed, without spaces (no username or email contains any)."""
    return re.sub(r"\s+", "", username)


async def authenticate(*, token: str) -> tuple[User, TokenClaims]:
    claims = decode_access_token(token)
    if claims is None:
        raise NotAuthenticated("the access token is invalid or has expired; log in again")
    # Every authenticated request runs this: one statement, no query building.
    row = (await db.aexecute_sql(_AUTHENTICATE_SQL, (claims.jti, claims.user_id))).fetchone()
    if row is None or row["revoked"] or not row["is_active"] \
            or row["token_version"] != claims.version:
        raise NotAuthenticated("the access token is no longer valid; log in again")
    return User(**{name: row[name] for name in _USER_COLUMNS}), claims


# Counts the attempt before the password is checked, in one statement: concurrent guesses
# each take a number, so no more than LOGIN_MAX_FAILURES passwords are ever checked per
# window, however many arrive at once. The attempt that reaches the limit sets the lockout
# (a success clears the row); a window or lockout that has ended starts over.
# $1 key, $2 now, $3 start of the current window, $4 the limit, $5 end of a lockout from now.
_ENDED = ("((t.locked_until IS NOT NULL AND t.locked_until <= $2) "
          "OR (t.locked_until IS NULL AND t.window_started_at < $3))")
_RESERVE_ATTEMPT_SQL = f"""
INSERT INTO login_throttle AS t (key, failures, window_started_at, locked_until)
VALUES ($1, 1, $2, CASE WHEN $4 <= 1 THEN $5::timestamptz END)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN {_ENDED} THEN 1 ELSE t.failures + 1 END,
    window_started_at = CASE WHEN {_ENDED} THEN $2 ELSE t.window_started_at END,
    locked_until = CASE
        WHEN {_ENDED} THEN CASE WHEN $4 <= 1 THEN $5::timestamptz END
        WHEN t.locked_until IS NOT NULL THEN t.locked_until
        WHEN t.failures + 1 >= $4 THEN $5::timestamptz
    END
RETURNING failures, locked_until
"""


async def _reserve_attempt(key: str, now: datetime) -> None:
    s = get_settings()
    row = (await db.aexecute_sql(_RESERVE_ATTEMPT_SQL, (
        key, now, now - timedelta(seconds=s.login_window_seconds), s.login_max_failures,
        now + timedelta(seconds=s.login_lockout_seconds)))).fetchone()
    if row["failures"] > s.login_max_failures:
        wait = max(1, math.ceil((row["locked_until"] - now).total_seconds()))
        raise TooManyAttempts(
            f"too many failed logins for this account; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )


async def login(*, username: str, password: str) -> tuple[str, int]:
    now = datetime.now(UTC)
    name = login_name(username)
    user = await User.aget_or_none(
        (fn.lower(User.username) == name.lower()) | (User.email == normalize_email(name)))
    # One bucket per account, whichever of its names is typed; unknown names get their own.
    await _reserve_attempt(f"user:{user.id}" if user else f"name:{name.lower()}", now)
    if user is None:
        await verify_against_dummy(password)
        ok = False
    else:
        ok = await verify_password(password, user.password_hash) and user.is_active
    if not ok:
        raise InvalidCredentials(WRONG_CREDENTIALS)
    await LoginThrottle.delete().where(LoginThrottle.key == f"user:{user.id}").aexecute()
    if needs_rehash(user.password_hash):
        # Keep every stored hash on the current cost, so that a login with a known name
        # takes as long as one with an unknown name (checked against the dummy hash).
        new_hash = await hash_password(password)
        await User.update(password_hash=new_hash).where(User.id == user.id).aexecute()
    return create_access_token(user.id, user.token_version)


async def logout(*, claims: TokenClaims) -> None:
    await db.aexecute_sql(
        "INSERT INTO revoked_token (jti, expires_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (claims.jti, claims.expires_at),
    )
    # Expired entries can go: the token's own `exp` already refuses them.
    await RevokedToken.delete().where(RevokedToken.expires_at < datetime.now(UTC)).aexecute()
