"""Standard Webhooks signatures (standardwebhooks.com): what receivers verify with its
libraries. A secret is `whsec_` + base64 of random bytes; the key is those bytes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secrets_: list[str], message_id: str, timestamp: int,
            body: bytes) -> dict[str, str]:
    """The three headers of one delivery; one signature per secret, space-separated."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body)
                                      for s in secrets_),
    }


def verify(secret: str, message_id: str, timestamp: str, signatures: str, body: bytes,
           *, tolerance: int = 300, now: float | None = None) -> bool:
    """What a receiver checks: a recent timestamp and one matching `v1` signature."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - sent_at) > tolerance:
        return False
    expected = signature(secret, message_id, sent_at, body)
    return any(hmac.compare_digest(expected, s) for s in signatures.split(" "))
