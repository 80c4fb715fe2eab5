"""Access tokens: HS256 pinned, the user's token version inside, expiry checked on use."""

from __future__ import annotations

import time
import uuid

from jose import jwt

from app.auth.tokens import TokenCodec
from app.config import Settings

KEY = "k" * 48
codec = TokenCodec(Settings(secret_key=KEY))


def test_a_token_reads_back_with_its_version() -> None:
    user = uuid.uuid4()
    token, lifetime = codec.issue(user, 7)
    claims = codec.read(token)
    assert claims is not None and claims.user_id == user and claims.version == 7
    assert lifetime == 3600


def test_anything_not_ours_is_none() -> None:
    now = int(time.time())
    body = {"sub": str(uuid.uuid4()), "iat": now, "exp": now + 60, "jti": "j"}
    assert codec.read(jwt.encode(body, KEY, algorithm="HS256")) is not None  # no "ver": 0
    for token in (
        jwt.encode({**body, "exp": now - 1}, KEY, algorithm="HS256"),
        jwt.encode(body, "other" * 10, algorithm="HS256"),
        jwt.encode(body, KEY, algorithm="HS512"),
        jwt.encode({**body, "ver": "1"}, KEY, algorithm="HS256"),
        jwt.encode({**body, "ver": True}, KEY, algorithm="HS256"),
        jwt.encode({k: v for k, v in body.items() if k != "jti"}, KEY, algorithm="HS256"),
        "not-a-jwt", "x" * 5000,
    ):
        assert codec.read(token) is None, token
