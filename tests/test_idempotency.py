"""Idempotency-Key: replays, a key reused with another body, copies at the same moment."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.support import (
    PASSWORD,
    Account,
    Api,
    Database,
    Server,
    assert_problem,
    burst,
    ledger_sums,
)


def test_idempotent_replay_and_reuse(api: Api, admin: Account, alice: Account,
                                     bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")
    headers = {**admin.headers, "Idempotency-Key": "pay-1"}
    body = {"invoice_id": inv["id"], "amount": "10", "payment_mode": "upi"}
    first = api.client.post("/invoice-transactions", headers=headers, json=body)
    again = api.client.post("/invoice-transactions", headers=headers,
                            json={**body, "amount": 10})  # same value, other spelling
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert ledger_sums(api, inv["id"]) == (1000, 0, 1)

    r = api.client.post("/invoice-transactions", headers=headers, json={**body, "amount": "11"})
    assert_problem(r, 422, "idempotency_key_reused")
    assert ledger_sums(api, inv["id"]) == (1000, 0, 1)

    # Another admin's identical key is a different key.
    other = api.user("admin")
    r = api.client.post("/invoice-transactions", json=body,
                        headers={**other.headers, "Idempotency-Key": "pay-1"})
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]

    # Refusals are replayed too, and do nothing again.
    big = {**body, "amount": "1000"}
    h2 = {**admin.headers, "Idempotency-Key": "pay-2"}
    a = api.client.post("/invoice-transactions", headers=h2, json=big)
    b = api.client.post("/invoice-transactions", headers=h2, json=big)
    assert a.status_code == b.status_code == 409 and a.json() == b.json()
    assert b.headers["idempotent-replayed"] == "true"
    r = api.client.post("/invoice-transactions", json=body,
                        headers={**admin.headers, "Idempotency-Key": "k" * 256})
    assert_problem(r, 422)


def test_idempotent_invoice_and_signup(api: Api, admin: Account, alice: Account,
                                       bob: Account) -> None:
    body = {"payer_id": alice.id, "receiver_id": bob.id, "amount": 5, "description": "x"}
    headers = {**admin.headers, "Idempotency-Key": "inv-1"}
    a = api.client.post("/invoices", headers=headers, json=body)
    b = api.client.post("/invoices", headers=headers, json=body)
    assert a.status_code == b.status_code == 201 and a.json() == b.json()
    assert api.db.scalar("SELECT count(*) FROM invoices") == 1
    user = {"username": "carol", "email": "c@example.com", "password": "password-123"}
    a = api.client.post("/users", json=user, headers={"Idempotency-Key": "u-1"})
    b = api.client.post("/users", json=user, headers={"Idempotency-Key": "u-1"})
    assert a.status_code == b.status_code == 201 and a.json() == b.json()
    stored = api.db.scalar("SELECT string_agg(fingerprint || response_body, '') "
                           "FROM replays")
    assert "password-123" not in stored


def test_concurrent_requests_with_one_key_make_one_row(api: Api, server: Server,
                                                       admin: Account, alice: Account,
                                                       bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    headers = {**admin.headers, "Idempotency-Key": "burst-1"}
    body = {"invoice_id": inv["id"], "amount": "10", "payment_mode": "upi"}
    responses = burst(server.url, [("POST", "/invoice-transactions", headers, body)] * 20)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}, codes
    assert codes.count(201) >= 1
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["code"] == "idempotency_key_in_use"
            assert r.headers["retry-after"] == "1"
    assert ledger_sums(api, inv["id"]) == (1000, 0, 1)
    assert Decimal(api.client.get(f"/invoices/{inv['id']}", headers=admin.headers)
                   .json()["amount_recovered"]) == Decimal("10")


def test_a_key_sent_to_another_path_is_a_reused_key(api: Api, admin: Account, alice: Account,
                                                    bob: Account) -> None:
    """The path's ids belong to the request: the same key and body sent for another user
    or invoice is refused, not answered with the first one's replay."""
    grant = {"amount": "5.00", "currency": "INR", "reason": "goodwill"}
    headers = {**admin.headers, "Idempotency-Key": "grant-1"}
    first = api.client.post(f"/users/{alice.id}/credit", headers=headers, json=grant)
    assert first.status_code == 201, first.text
    again = api.client.post(f"/users/{alice.id}/credit", headers=headers, json=grant)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    r = api.client.post(f"/users/{bob.id}/credit", headers=headers, json=grant)
    assert_problem(r, 422, "idempotency_key_reused")
    assert api.db.scalar("SELECT count(*) FROM credit_entries WHERE user_id = %s",
                         (bob.id,)) == 0

    inv1, inv2 = (api.invoice(admin, alice, bob, amount="1.00") for _ in range(2))
    headers = {**admin.headers, "Idempotency-Key": "apply-1"}
    r = api.client.post(f"/invoices/{inv1['id']}/apply-credit", headers=headers, json={})
    assert r.status_code == 201, r.text
    r = api.client.post(f"/invoices/{inv2['id']}/apply-credit", headers=headers, json={})
    assert_problem(r, 422, "idempotency_key_reused")
    assert ledger_sums(api, inv2["id"]) == (0, 0, 0)


def test_a_refusal_that_says_retry_is_not_kept_with_the_key(
        database_url: str, db: Database, password_hash: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`invoice_changed` tells the client to send the same request again: with its key, the
    retry must run, not replay the refusal (the app in-process, the refusal injected)."""
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.ledger import service
    from app.main import create_app

    settings = Settings(database_url=database_url, app_env="test", secret_key="k" * 40,
                        webhook_secret="w" * 40, migrate_on_start=False,
                        argon2_memory_kib=1024, argon2_time_cost=1, deliver_in_process=False)
    ids = {name: str(uuid.uuid4()) for name in ("admin", "payer", "receiver")}
    for name, user_id in ids.items():
        db.rows("INSERT INTO users (id, username, email, password_hash, role) VALUES "
                "(%s, %s, %s, %s, %s)", (user_id, name, f"{name}@example.com", password_hash,
                                         "admin" if name == "admin" else "user"))
    real, faults = service.record_transaction, [1]

    async def changing_once(**kw):
        if faults and faults.pop():
            raise service.InvoiceChanged("the invoice kept changing; retry")
        return await real(**kw)

    monkeypatch.setattr(service, "record_transaction", changing_once)
    with TestClient(create_app(settings)) as c:
        token = c.post("/login", data={"username": "admin", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        inv = c.post("/invoices", headers=headers, json={
            "payer_id": ids["payer"], "receiver_id": ids["receiver"], "amount": "10.00",
            "description": "d"}).json()
        keyed = {**headers, "Idempotency-Key": "changing"}
        body = {"invoice_id": inv["id"], "amount": "1.00", "payment_mode": "upi"}
        first = c.post("/invoice-transactions", headers=keyed, json=body)
        assert first.status_code == 409 and first.json()["code"] == "invoice_changed"
        assert first.headers["retry-after"] == "1"
        again = c.post("/invoice-transactions", headers=keyed, json=body)
        assert again.status_code == 201, again.text
        assert "idempotent-replayed" not in again.headers
    assert db.scalar("SELECT amount_recovered FROM invoices WHERE id = %s", (inv["id"],)) == 100
