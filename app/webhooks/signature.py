"""`X-Signature: t=<unix seconds>,v1=<hex>`, with v1 = HMAC-SHA256(secret, f"{t}." + body).

Checked on the raw body bytes before anything else. Several `v1` entries may be sent and
several secrets configured (rotation): one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from app.errors import NotAuthenticated

# ASCII only: str.isdigit() and int() also take other scripts' digits, and comparing
# non-ASCII strings in constant time is not possible (hmac.compare_digest refuses them).
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-fA-F]{1,128}")


class InvalidSignature(NotAuthenticated, code="invalid_signature"): ...


def signature_header(body: bytes, secret: str, *, timestamp: int) -> str:
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def _mac(secret: str, timestamp: int | str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, *, secrets: list[str], tolerance_seconds: int,
           now: float | None = None) -> None:
    """Accept when any v1 matches any secret and t is within the tolerance; else raise."""
    if not header:
        raise InvalidSignature("missing X-Signature header (t=<unix seconds>,v1=<hex hmac>)")
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        value = value.strip()
        if key == "t":
            timestamp = value
        elif key == "v1" and _HEX.fullmatch(value):
            candidates.append(value.lower())
    if timestamp is None or not _UNIX_SECONDS.fullmatch(timestamp) or not candidates:
        raise InvalidSignature("malformed X-Signature header; expected t=<unix seconds>,v1=<hex>")
    skew = abs((time.time() if now is None else now) - int(timestamp))
    if skew > tolerance_seconds:
        raise InvalidSignature(
            f"signature timestamp is {int(skew)} s away from now; the tolerance is "
            f"{tolerance_seconds} s")
    matched = False
    for secret in secrets:
        expected = _mac(secret, timestamp, body)
        for candidate in candidates:
            # No early exit: the time taken does not depend on which entry matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("signature does not match the body")
