"""Password hashing (argon2id, off the event loop) and access tokens (JWT, HS256 pinned)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from jose import JWTError, jwt
from passlib.context import CryptContext

from app.config import Settings, get_settings

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 2048


@lru_cache
def _context() -> CryptContext:
    s = get_settings()
    return CryptContext(
        schemes=["argon2"],
        argon2__type="ID",
        argon2__memory_cost=s.argon2_memory_kib,
        argon2__time_cost=s.argon2_time_cost,
        argon2__parallelism=s.argon2_parallelism,
    )


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_context().hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    def check() -> bool:
        try:
            return _context().verify(password, password_hash)
        except (ValueError, TypeError):
            return False

    return await asyncio.to_thread(check)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other argon2 parameters than the current ones."""
    try:
        return _context().needs_update(password_hash)
    except (ValueError, TypeError):
        return False


@lru_cache
def _dummy_hash() -> str:
    return _context().hash("not-a-real-password-" + uuid.uuid4().hex)


async def verify_against_dummy(password: str) -> None:
    """Spend the same time as a real check, so an unknown username is not revealed."""
    dummy = await asyncio.to_thread(_dummy_hash)
    await verify_password(password, dummy)


async def warm_up() -> None:
    await asyncio.to_thread(_dummy_hash)


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    jti: str
    expires_at: datetime
    # The user's token_version when the token was issued; it must still be current.
    version: int = 0


def create_access_token(user_id: uuid.UUID, version: int,
                        settings: Settings | None = None) -> tuple[str, int]:
    s = settings or get_settings()
    now = datetime.now(UTC)
    expires_in = s.access_token_expire_minutes * 60
    claims = {
        "sub": str(user_id),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=expires_in)).timestamp()),
        "jti": uuid.uuid4().hex,
        "ver": version,
    }
    return jwt.encode(claims, s.resolved_secret_key(), algorithm=ALGORITHM), expires_in


def decode_access_token(token: str, settings: Settings | None = None) -> TokenClaims | None:
    """The token's claims, or None for anything not signed by us, malformed or expired."""
    s = settings or get_settings()
    if len(token) > MAX_TOKEN_LENGTH:  # ours are ~250 characters; keep the cache small
        return None
    claims = _verified_claims(token, s.resolved_secret_key())
    if claims is None or claims.expires_at <= datetime.now(UTC):
        return None
    return claims


@lru_cache(maxsize=4096)
def _verified_claims(token: str, key: str) -> TokenClaims | None:
    """Signature and shape checks, cached per token: a pure function of the token and the
    key. Expiry is checked by the caller on every use, revocation by the database."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"require_exp": True, "require_iat": True, "require_sub": True,
                     "require_jti": True, "verify_exp": False},
        )
        version = claims.get("ver", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            return None
        return TokenClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            jti=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            version=version,
        )
    except (JWTError, ValueError, TypeError, KeyError, OverflowError):
        return None
