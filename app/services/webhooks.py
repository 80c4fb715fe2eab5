"""Signed webhooks from the payment provider (placeholder until issue 4)."""

from __future__ import annotations

import hashlib
import hmac


def signature_header(body: bytes, secret: str, *, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"
