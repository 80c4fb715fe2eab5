"""X-Signature on provider webhooks: HMAC-SHA256 over f"{t}." + the raw body."""

from __future__ import annotations

import pytest

from app.webhooks.signature import InvalidSignature, signature_header, verify

SECRETS = ["s" * 32, "r" * 32]
BODY = b'{"id": "evt_1"}'
NOW = 1_800_000_000


def check(header: str | bytes | None, body: bytes = BODY, secrets: list[str] = SECRETS) -> None:
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    verify(body, text, secrets=secrets, tolerance_seconds=300, now=NOW)


def test_a_good_signature_and_rotation() -> None:
    check(signature_header(BODY, SECRETS[0], timestamp=NOW))
    check(signature_header(BODY, SECRETS[1], timestamp=NOW - 299))  # the previous secret
    good = signature_header(BODY, SECRETS[0], timestamp=NOW).split("v1=")[1]
    check(f"t={NOW},v1={'f' * 64},v1={good.upper()}")  # one of several, any case


@pytest.mark.parametrize("header", [
    None, "", "sha256=abc", f"t={NOW}", "t=yesterday,v1=00", f"t={NOW},v1=" + "0" * 64,
    signature_header(BODY, "x" * 32, timestamp=NOW),
    signature_header(BODY, SECRETS[0], timestamp=NOW - 301),
    signature_header(BODY, SECRETS[0], timestamp=NOW + 301),
    signature_header(BODY + b" ", SECRETS[0], timestamp=NOW),
    f"t={''.join(chr(0x0660 + int(d)) for d in str(NOW))},v1=" + "0" * 64,  # Arabic digits
    f"t={NOW},v1=" + "\u0661" * 64,
    f"t={NOW},v1=".encode() + b"\xff" * 64,
    f"t={'9' * 13},v1=" + "0" * 64,
])
def test_anything_else_is_refused(header: str | bytes | None) -> None:
    with pytest.raises(InvalidSignature):
        check(header)
