"""Access tokens: JWT signed with HS256 (pinned on decode), carrying the user's token
version so that a password change or a (re)activation ends every earlier token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from jose import JWTError, jwt

from app.config import Settings

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 2048
# Clocks differ a little between machines; a token issued further in the future than this
# was not issued by us (ASVS V3.5.3).
CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    jti: str
    expires_at: datetime
    issued_at: datetime
    # The user's token_version when the token was issued; it must still be current.
    version: int = 0


class TokenCodec:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.resolved_secret_key()
        self.lifetime_seconds = settings.access_token_expire_minutes * 60

    def issue(self, user_id: uuid.UUID, version: int) -> tuple[str, int]:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.lifetime_seconds)).timestamp()),
            "jti": uuid.uuid4().hex,
            "ver": version,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), self.lifetime_seconds

    def read(self, token: str) -> TokenClaims | None:
        """The claims, or None for anything not signed by us, malformed or expired."""
        if len(token) > MAX_TOKEN_LENGTH:  # ours are ~250 characters; keep the cache small
            return None
        claims = _verified_claims(token, self._key)
        if claims is None:
            return None
        now = datetime.now(UTC)
        skew = timedelta(seconds=CLOCK_SKEW_SECONDS)
        lifetime = claims.expires_at - claims.issued_at
        # Expired, issued in the future, or living longer than we ever issue (a token made
        # with a leaked key would have to keep within the configured lifetime too).
        if claims.expires_at <= now or claims.issued_at > now + skew or \
                lifetime > timedelta(seconds=self.lifetime_seconds) + skew:
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
                     "require_jti": True, "verify_exp": False, "verify_iat": False,
                     "verify_nbf": False},
        )
        if "nbf" in claims:  # we never issue one: a token carrying it is not ours
            return None
        version = claims.get("ver", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            return None
        return TokenClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            jti=str(claims["jti"]),
            expires_at=_instant(claims["exp"]),
            issued_at=_instant(claims["iat"]),
            version=version,
        )
    except (JWTError, ValueError, TypeError, KeyError, OverflowError, OSError):
        return None


def _instant(value: object) -> datetime:
    """A NumericDate claim as a time, or ValueError: an integer within the years 2000–2100
    (a bool, a float, a string or a time the platform cannot represent is not one)."""
    if not isinstance(value, int) or isinstance(value, bool) or \
            not 946_684_800 <= value <= 4_102_444_800:
        raise ValueError(f"not a NumericDate we accept: {value!r}")
    return datetime.fromtimestamp(value, UTC)
