"""Idempotency-Key: replays, a key reused with another body, copies at the same moment."""

from __future__ import annotations

from decimal import Decimal

from tests.support import (
    Account,
    Api,
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
