"""Outgoing signatures, checked with the Standard Webhooks reference verifier."""

from __future__ import annotations

import json
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.events.signing import headers, new_secret, signature


def test_the_reference_verifier_accepts_our_signature() -> None:
    secret, body = new_secret(), json.dumps({"id": "evt_1", "type": "x"}).encode()
    sent = headers([secret], "evt_1", int(time.time()), body)
    assert Webhook(secret).verify(body, sent) == {"id": "evt_1", "type": "x"}


def test_it_refuses_another_secret_or_a_changed_body() -> None:
    secret, body = new_secret(), b'{"a": 1}'
    sent = headers([secret], "evt_2", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a": 2}', sent)


def test_during_a_rotation_both_secrets_verify() -> None:
    old, new, body = new_secret(), new_secret(), b"{}"
    sent = headers([new, old], "evt_3", int(time.time()), body)
    assert len(sent["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, sent)


def test_a_known_vector() -> None:
    # The example in the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = (b'{"test": 2432232314}')
    assert signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


def test_our_own_verifier_agrees_with_the_reference() -> None:
    from app.events.signing import verify

    secret, body, now = new_secret(), b'{"x": 1}', int(time.time())
    sent = headers([new_secret(), secret], "evt_4", now, body)
    args = ("evt_4", sent["webhook-timestamp"], sent["webhook-signature"])
    assert verify(secret, *args, body)
    assert not verify(secret, *args, body + b" ")
    assert not verify(new_secret(), *args, body)
    assert not verify(secret, *args, body, now=now + 301)  # too old: a replay
