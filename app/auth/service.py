"""Login with throttling, token checks and revocation."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.auth import queries
from app.auth.passwords import PasswordHasher
from app.auth.tokens import TokenClaims, TokenCodec
from app.config import Settings
from app.db.models import User
from app.errors import Forbidden, NotAuthenticated, TooManyAttempts
from app.users.schemas import normalize_email

WRONG_CREDENTIALS = "incorrect username or password"


class InvalidCredentials(NotAuthenticated, code="invalid_credentials"): ...
class WrongCurrentPassword(Forbidden, code="wrong_current_password"): ...


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int
    window: timedelta
    lockout: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottlePolicy:
        return cls(settings.login_max_failures, timedelta(seconds=settings.login_window_seconds),
                   timedelta(seconds=settings.login_lockout_seconds))


UNREADABLE = "the access token is invalid or has expired; log in again"
NO_LONGER_VALID = "the access token is no longer valid; log in again"


def read_token(*, token: str, tokens: TokenCodec) -> TokenClaims:
    """The token's claims if we signed it and it is current; its account is not checked
    here (authenticate(), the guard a route's first SELECT carries, or the CALLER check in
    the payment statement)."""
    claims = tokens.read(token)
    if claims is None:
        raise NotAuthenticated(UNREADABLE)
    return claims


async def authenticate(*, claims: TokenClaims) -> User:
    """The account behind the claims, while it is active, at the token's version, and the
    token not revoked."""
    row = await queries.user_with_revocation(claims.user_id, claims.jti)
    if row is None or row["revoked"] or not row["is_active"] \
            or row["token_version"] != claims.version:
        raise NotAuthenticated(NO_LONGER_VALID)
    return queries.user_from(row)


ADMIN_NEEDED = "this needs an admin account"


async def authenticate_admin(*, claims: TokenClaims) -> User:
    """authenticate(), and 403 unless the account is an admin's."""
    user = await authenticate(claims=claims)
    if user.role != "admin":
        raise Forbidden(ADMIN_NEEDED)
    return user


async def login(*, username: str, password: str, hasher: PasswordHasher, tokens: TokenCodec,
                policy: ThrottlePolicy) -> tuple[str, int]:
    now = datetime.now(UTC)
    name = re.sub(r"\s+", "", username)  # no username or email contains a space
    user = await queries.user_by_login_name(name, normalize_email(name))
    # One bucket per account, whichever of its names is typed; unknown names get their own.
    key = f"user:{user.id}" if user else f"name:{name.lower()}"
    await _count_attempt(key, now, policy)
    if user is None:
        await hasher.verify_against_dummy(password)
        raise InvalidCredentials(WRONG_CREDENTIALS)
    if not (await hasher.verify(password, user.password_hash) and user.is_active):
        raise InvalidCredentials(WRONG_CREDENTIALS)
    await queries.clear_attempts(key)
    if hasher.needs_rehash(user.password_hash):
        # Keep every stored hash on the current cost, so that a login with a known name
        # takes as long as one with an unknown name (checked against the dummy hash).
        await queries.set_password_hash(user.id, await hasher.hash(password))
    return tokens.issue(user.id, user.token_version)


async def check_current_password(*, user: User, password: str, hasher: PasswordHasher,
                                 policy: ThrottlePolicy) -> None:
    """Before a change of one's own email or password (ASVS V2.1.6): the current password,
    each try counted in the account's login bucket, so it is no way around the lockout.
    Runs outside the change's transaction: a wrong try stays counted."""
    key = f"user:{user.id}"
    await _count_attempt(key, datetime.now(UTC), policy)
    if not await hasher.verify(password, user.password_hash):
        raise WrongCurrentPassword("current_password is not this account's password")
    await queries.clear_attempts(key)


async def _count_attempt(key: str, now: datetime, policy: ThrottlePolicy) -> None:
    """Counted before the password is checked: at most `max_failures` checks per window."""
    row = await queries.reserve_attempt(
        key=key, now=now, window_start=now - policy.window, limit=policy.max_failures,
        lock_until=now + policy.lockout)
    if row["failures"] > policy.max_failures:
        wait = max(1, math.ceil((row["locked_until"] - now).total_seconds()))
        raise TooManyAttempts(
            f"too many failed logins for this account; try again in {wait} seconds",
            retry_after=wait)


async def logout(*, claims: TokenClaims) -> None:
    await queries.revoke(claims.jti, claims.expires_at, datetime.now(UTC))
