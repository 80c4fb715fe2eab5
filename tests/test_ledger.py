"""Issue 3: invoices and the payment ledger: exact money, derived status, concurrency."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest

from tests.support import (
    Account,
    Api,
    Server,
    assert_problem,
    assert_reconciles,
    burst,
    concurrent_payments,
    ledger_sums,
)

# -- the seed flow -----------------------------------------------------------------------

def test_seed_flow_three_partial_payments(api: Api, admin: Account, alice: Account,
                                          bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    assert inv["amount"] == "1000.00" and inv["currency"] == "INR"
    assert inv["status"] == "pending" and inv["amount_due"] == "1000.00"
    assert inv["payer"] == {"id": alice.id, "username": "alice", "email": "alice@example.com"}

    statuses = []
    for amount in ("250.50", 249.5, "500"):
        r = api.pay(admin, inv["id"], amount)
        assert r.status_code == 201, r.text
        tx = r.json()
        assert tx["kind"] == "payment" and tx["status"] == "succeeded" and tx["source"] == "api"
        statuses.append(api.client.get(f"/invoices/{inv['id']}", headers=admin.headers)
                        .json()["status"])
    assert statuses == ["partially_paid", "partially_paid", "completed"]

    final = api.client.get(f"/invoices/{inv['id']}", headers=alice.headers).json()
    assert final["amount_recovered"] == "1000.00" and final["amount_due"] == "0.00"
    txs = api.client.get(f"/invoice-transactions/invoice/{inv['id']}",
                         headers=admin.headers).json()
    assert [t["amount"] for t in txs["data"]] == ["250.50", "249.50", "500.00"]
    assert txs["next_cursor"] is None
    one = api.client.get(f"/invoice-transactions/{txs['data'][0]['id']}", headers=admin.headers)
    assert one.status_code == 200 and one.json() == txs["data"][0]

    r = api.pay(admin, inv["id"], "0.01")
    body = assert_problem(r, 409, "amount_exceeds_due")
    assert "0.00" in body["detail"]
    assert ledger_sums(api, inv["id"]) == (100000, 0, 3)
    assert_reconciles(api)


def test_payment_over_due_is_refused_and_names_the_due(api: Api, admin: Account,
                                                       alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="40")
    assert api.pay(admin, inv["id"], 30).status_code == 201
    body = assert_problem(api.pay(admin, inv["id"], 30), 409, "amount_exceeds_due")
    assert body["detail"] == "payment of 30.00 exceeds the amount due 10.00"
    assert ledger_sums(api, inv["id"]) == (3000, 0, 1)


# -- concurrency ---------------------------------------------------------------------------

def test_50_concurrent_payments_never_overpay(api: Api, server: Server, admin: Account,
                                              alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    concurrent_payments(api, server.url, admin, inv["id"])


@pytest.mark.slow
def test_50_concurrent_payments_across_two_worker_processes(
        api: Api, two_workers: Server, admin: Account, alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    concurrent_payments(api, two_workers.url, admin, inv["id"])


def test_concurrent_payments_and_refunds_stay_exact(api: Api, server: Server, admin: Account,
                                                    alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")
    assert api.pay(admin, inv["id"], 50).status_code == 201
    body = {"invoice_id": inv["id"], "payment_mode": "card"}
    requests = ([("POST", "/invoice-transactions", admin.headers, {**body, "amount": 10})] * 10
                + [("POST", "/invoice-transactions", admin.headers,
                    {**body, "amount": 10, "kind": "refund"})] * 10)
    responses = burst(server.url, requests)
    assert all(r.status_code in (201, 409) for r in responses)
    recovered, refunded, _ = ledger_sums(api, inv["id"])
    assert 0 <= refunded <= recovered <= 10000
    paid_ok = sum(1 for r in responses[:10] if r.status_code == 201)
    refunds_ok = sum(1 for r in responses[10:] if r.status_code == 201)
    assert recovered == 5000 + paid_ok * 1000 and refunded == refunds_ok * 1000
    assert paid_ok == 5
    assert_reconciles(api)


# -- amounts -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"-5", b"0", b"0.00", b"10.001", b'"abc"', b"1e309", b"-1e309", b"1e15",
    b"1000000000000000", b"99999999999999999999999", b"0.30000000000000004",
    b'"0.30000000000000004"', b"true", b"null", b'""', b'"1e3"', b"[1]", b"NaN",
    b"Infinity", b'" 12.5.1"', b"1" + b"0" * 5000,
])
def test_bad_amounts_are_422_and_record_nothing(api: Api, admin: Account, alice: Account,
                                                bob: Account, raw: bytes) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    body = (b'{"invoice_id": "' + inv["id"].encode() + b'", "payment_mode": "upi", '
            b'"amount": ' + raw + b"}")
    r = api.client.post("/invoice-transactions", content=body,
                        headers={**admin.headers, "content-type": "application/json"})
    assert_problem(r, 422)
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)


def test_exact_decimals_and_currency_scales(api: Api, admin: Account, alice: Account,
                                            bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="0.3")
    assert inv["amount"] == "0.30"
    assert api.pay(admin, inv["id"], 0.1).status_code == 201
    assert api.pay(admin, inv["id"], 0.2).status_code == 201
    assert api.client.get(f"/invoices/{inv['id']}", headers=admin.headers
                          ).json()["status"] == "completed"

    jpy = api.invoice(admin, alice, bob, amount="1500", currency="jpy")
    assert jpy["amount"] == "1500" and jpy["currency"] == "JPY"
    assert_problem(api.pay(admin, jpy["id"], "10.5"), 422)
    kwd = api.invoice(admin, alice, bob, amount="1.125", currency="KWD")
    assert kwd["amount"] == "1.125"
    assert api.pay(admin, kwd["id"], "0.005").status_code == 201
    # The bound is 10^15 minor units (API.md): 9,999,999,999,999.99 in a 2-decimal currency.
    top = api.invoice(admin, alice, bob, amount="9999999999999.99")
    assert top["amount"] == "9999999999999.99"
    for bad in ("10000000000000.00", "12.345"):
        r = api.client.post("/invoices", headers=admin.headers, json={
            "payer_id": alice.id, "receiver_id": bob.id, "amount": bad, "description": "x"})
        assert_problem(r, 422)
    r = api.client.post("/invoices", headers=admin.headers, json={
        "payer_id": alice.id, "receiver_id": bob.id, "amount": 5, "description": "x",
        "currency": "XYZ"})
    assert_problem(r, 422)


# -- invoices ------------------------------------------------------------------------------

def test_invoice_parties_must_be_distinct_active_users(api: Api, admin: Account,
                                                       alice: Account, bob: Account) -> None:
    def create(payer: str, receiver: str) -> httpx.Response:
        return api.client.post("/invoices", headers=admin.headers, json={
            "payer": payer, "receiver": receiver, "amount": 5, "description": "x"})

    assert_problem(create(alice.id, alice.id), 422, "invalid_party")
    assert_problem(create(alice.id, str(uuid.uuid4())), 422, "invalid_party")
    assert_problem(create("not-a-uuid", bob.id), 422)
    api.db.rows("UPDATE users SET is_active = false WHERE id = %s", (bob.id,))
    assert_problem(create(alice.id, bob.id), 422, "invalid_party")
    assert api.db.scalar("SELECT count(*) FROM invoices") == 0


def test_invoice_access_rules(api: Api, admin: Account, alice: Account, bob: Account) -> None:
    carol = api.user(name="carol")
    inv = api.invoice(admin, alice, bob)
    url = f"/invoices/{inv['id']}"
    assert_problem(api.client.get(url), 401)
    assert api.client.get(url, headers=alice.headers).status_code == 200
    assert api.client.get(url, headers=bob.headers).status_code == 200
    assert_problem(api.client.get(url, headers=carol.headers), 403)
    assert api.client.get(url, headers=admin.headers).status_code == 200
    assert_problem(api.client.get(f"/invoices/{uuid.uuid4()}", headers=admin.headers), 404,
                   "invoice_not_found")
    assert_problem(api.client.get("/invoices/123", headers=admin.headers), 422)

    body = {"payer_id": alice.id, "receiver_id": bob.id, "amount": 5, "description": "x"}
    for who in (None, alice, bob, carol):
        headers = who.headers if who else {}
        expected = 401 if who is None else 403
        assert_problem(api.client.post("/invoices", headers=headers, json=body), expected)
        assert_problem(api.client.get("/invoices", headers=headers), expected)
        assert_problem(api.client.patch(url, headers=headers, json={"description": "y"}),
                       expected)
        assert_problem(api.client.delete(url, headers=headers), expected)
        assert_problem(api.pay(who, inv["id"], 1) if who else api.client.post(
            "/invoice-transactions", json={"invoice_id": inv["id"], "amount": 1,
                                           "payment_mode": "x"}), expected)
        assert_problem(api.client.get(f"/invoice-transactions/invoice/{inv['id']}",
                                      headers=headers), expected)
        assert_problem(api.client.get(f"/invoice-transactions/{uuid.uuid4()}",
                                      headers=headers), expected)
    assert_problem(api.client.get(f"/invoice-transactions/{uuid.uuid4()}",
                                  headers=admin.headers), 404, "transaction_not_found")
    assert_problem(api.client.get(f"/invoice-transactions/invoice/{uuid.uuid4()}",
                                  headers=admin.headers), 404, "invoice_not_found")
    assert_problem(api.pay(admin, str(uuid.uuid4()), 1), 404, "invoice_not_found")
    assert api.db.scalar("SELECT count(*) FROM invoice_transactions") == 0


def test_read_only_fields(api: Api, admin: Account, alice: Account, bob: Account) -> None:
    body = {"payer_id": alice.id, "receiver_id": bob.id, "amount": 5, "description": "x"}
    for field, value in (("status", "completed"), ("amount_recovered", "5.00"),
                         ("amount_refunded", 1), ("amount_due", "0")):
        r = api.client.post("/invoices", headers=admin.headers, json={**body, field: value})
        assert_problem(r, 422, "read_only_field")
    assert api.db.scalar("SELECT count(*) FROM invoices") == 0
    # Echoing the current values back is fine (a client PUTting what it GOT).
    r = api.client.post("/invoices", headers=admin.headers,
                        json={**body, "status": "pending", "amount_recovered": "0.00"})
    assert r.status_code == 201, r.text
    inv = r.json()
    assert api.pay(admin, inv["id"], 2).status_code == 201
    url = f"/invoices/{inv['id']}"
    for field, value in (("status", "completed"), ("amount_recovered", "5"),
                         ("amount_due", "0.00"), ("amount_refunded", "1.00")):
        r = api.client.patch(url, headers=admin.headers, json={field: value, "description": "z"})
        assert_problem(r, 422, "read_only_field")
    r = api.client.put(url, headers=admin.headers, json={**api.client.get(
        url, headers=admin.headers).json() | {"description": "echo"}} | {})
    assert r.status_code == 422  # ids, timestamps and parties are not input fields
    r = api.client.patch(url, headers=admin.headers,
                         json={"status": "partially_paid", "amount_recovered": "2.00",
                               "description": "ok"})
    assert r.status_code == 200 and r.json()["description"] == "ok"
    row = api.db.one("SELECT amount_recovered, status FROM invoices WHERE id = %s", (inv["id"],))
    assert row == {"amount_recovered": 200, "status": "partially_paid"}


def test_update_rules_after_payments(api: Api, admin: Account, alice: Account,
                                     bob: Account) -> None:
    carol = api.user(name="carol")
    inv = api.invoice(admin, alice, bob, amount="100")
    url = f"/invoices/{inv['id']}"
    r = api.client.patch(url, headers=admin.headers,
                         json={"payer_id": carol.id, "currency": "USD", "amount": "80",
                               "due_date": "2027-01-31", "description": "changed"})
    assert r.status_code == 200, r.text
    assert r.json()["payer"]["username"] == "carol" and r.json()["currency"] == "USD"
    assert r.json()["due_date"] == "2027-01-31" and r.json()["amount"] == "80.00"

    assert api.pay(admin, inv["id"], 50).status_code == 201
    before = api.db.one("SELECT * FROM invoices WHERE id = %s", (inv["id"],))
    assert_problem(api.client.patch(url, headers=admin.headers, json={"amount": "49.99"}),
                   409, "amount_below_paid")
    assert_problem(api.client.patch(url, headers=admin.headers, json={"payer_id": alice.id}),
                   409, "money_has_moved")
    assert_problem(api.client.patch(url, headers=admin.headers, json={"currency": "EUR"}),
                   409, "money_has_moved")
    assert_problem(api.client.patch(url, headers=admin.headers, json={"amount": None}), 422)
    assert api.db.one("SELECT * FROM invoices WHERE id = %s", (inv["id"],)) == before

    r = api.client.patch(url, headers=admin.headers, json={"amount": "50"})
    assert r.status_code == 200 and r.json()["status"] == "completed"
    r = api.client.put(url, headers=admin.headers, json={"amount": "60.00"})
    assert r.status_code == 200 and r.json()["status"] == "partially_paid"
    assert r.json()["amount_due"] == "10.00"
    assert_reconciles(api)


def test_delete_with_and_without_transactions(api: Api, admin: Account, alice: Account,
                                              bob: Account) -> None:
    empty = api.invoice(admin, alice, bob)
    assert api.client.delete(f"/invoices/{empty['id']}", headers=admin.headers
                             ).status_code == 204
    assert api.db.scalar("SELECT count(*) FROM invoices WHERE id = %s", (empty["id"],)) == 0
    assert_problem(api.client.delete(f"/invoices/{empty['id']}", headers=admin.headers), 404)

    paid = api.invoice(admin, alice, bob)
    assert api.pay(admin, paid["id"], "1000").status_code == 201
    assert_problem(api.client.delete(f"/invoices/{paid['id']}", headers=admin.headers), 409,
                   "invoice_has_transactions")
    assert ledger_sums(api, paid["id"]) == (100000, 0, 1)


def test_transactions_are_immutable_in_the_database(api: Api, admin: Account, alice: Account,
                                                    bob: Account) -> None:
    import psycopg2

    inv = api.invoice(admin, alice, bob)
    api.pay(admin, inv["id"], 10)
    for sql in ("UPDATE invoice_transactions SET amount = 1", "DELETE FROM invoice_transactions"):
        with pytest.raises(psycopg2.Error):
            api.db.rows(sql)
    with pytest.raises(psycopg2.errors.CheckViolation):
        api.db.rows("UPDATE invoices SET amount_recovered = amount + 1")


def test_refunds_through_the_api(api: Api, admin: Account, alice: Account,
                                 bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")
    assert_problem(api.pay(admin, inv["id"], 1, kind="refund"), 409,
                   "amount_exceeds_refundable")
    api.pay(admin, inv["id"], 100)
    r = api.pay(admin, inv["id"], "40", kind="refund")
    assert r.status_code == 201 and r.json()["kind"] == "refund"
    assert api.client.get(f"/invoices/{inv['id']}", headers=admin.headers
                          ).json()["status"] == "partially_refunded"
    assert_problem(api.pay(admin, inv["id"], "60.01", kind="refund"), 409,
                   "amount_exceeds_refundable")
    api.pay(admin, inv["id"], "60", kind="refund")
    got = api.client.get(f"/invoices/{inv['id']}", headers=admin.headers).json()
    assert got["status"] == "refunded" and got["amount_refunded"] == "100.00"
    assert ledger_sums(api, inv["id"]) == (10000, 10000, 3)
    assert_reconciles(api)


def test_list_filters_and_keyset_pages(api: Api, admin: Account, alice: Account,
                                       bob: Account) -> None:
    ids = [api.invoice(admin, alice, bob, amount=str(10 + i))["id"] for i in range(5)]
    other = api.invoice(admin, bob, alice, amount="7")
    api.pay(admin, ids[0], 10)
    seen, cursor = [], None
    while True:
        page = api.client.get("/invoices", headers=admin.headers,
                              params={"limit": 2, **({"cursor": cursor} if cursor else {})}
                              ).json()
        seen += [i["id"] for i in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [other["id"], *reversed(ids)]
    by_status = api.client.get("/invoices", headers=admin.headers,
                               params={"status": "completed"}).json()["data"]
    assert [i["id"] for i in by_status] == [ids[0]]
    by_payer = api.client.get("/invoices", headers=admin.headers,
                              params={"payer_id": bob.id}).json()["data"]
    assert [i["id"] for i in by_payer] == [other["id"]]
    by_receiver = api.client.get("/invoices", headers=admin.headers,
                                 params={"receiver_id": bob.id}).json()["data"]
    assert len(by_receiver) == 5
    created = api.db.scalar("SELECT created_at FROM invoices WHERE id = %s", (ids[2],))
    after = api.client.get("/invoices", headers=admin.headers,
                           params={"created_after": created.isoformat()}).json()["data"]
    assert [i["id"] for i in after] == [other["id"], ids[4], ids[3]]
    before = api.client.get("/invoices", headers=admin.headers,
                            params={"created_before": created.isoformat()}).json()["data"]
    assert [i["id"] for i in before] == [ids[1], ids[0]]
    assert_problem(api.client.get("/invoices", headers=admin.headers,
                                  params={"status": "bogus"}), 422)


def test_list_uses_the_keyset_indexes(api: Api, admin: Account, alice: Account,
                                      bob: Account) -> None:
    api.db.rows(
        "INSERT INTO invoices (id, payer_id, receiver_id, amount, currency, created_at) "
        "SELECT gen_random_uuid(), %s, %s, 100, 'INR', now() - make_interval(secs => g) "
        "FROM generate_series(1, 20000) g", (alice.id, bob.id))
    api.db.rows("ANALYZE invoices")
    mid = api.db.one("SELECT created_at, id FROM invoices ORDER BY created_at DESC "
                     "OFFSET 15000 LIMIT 1")
    plans = {
        "first": ("ORDER BY i.created_at DESC, i.id DESC LIMIT 21", ()),
        "deep": ("WHERE (i.created_at, i.id) < (%s, %s) ORDER BY i.created_at DESC, "
                 "i.id DESC LIMIT 21", (mid["created_at"], mid["id"])),
        "status": ("WHERE i.status = 'pending' ORDER BY i.created_at DESC, i.id DESC "
                   "LIMIT 21", ()),
    }
    for name, (tail, params) in plans.items():
        plan = "\n".join(r["QUERY PLAN"] for r in api.db.rows(
            "EXPLAIN SELECT i.id FROM invoices i " + tail, params))
        assert "Index" in plan and "Sort" not in plan, (name, plan)
    first = api.client.get("/invoices", headers=admin.headers, params={"limit": 50})
    assert len(first.json()["data"]) == 50


def test_reconcile_names_a_broken_invoice(api: Api, admin: Account, alice: Account,
                                          bob: Account) -> None:
    inv = api.invoice(admin, alice, bob)
    api.pay(admin, inv["id"], 10)
    assert_reconciles(api)
    api.db.rows("UPDATE invoices SET amount_recovered = 999 WHERE id = %s", (inv["id"],))
    result = api.reconcile()
    assert result.returncode == 1
    assert inv["id"] in result.stdout and "1 mismatch" in result.stdout


# -- idempotency ----------------------------------------------------------------------------

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


def test_payment_after_a_currency_change_uses_the_new_currency(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")
    assert_problem(api.pay(admin, inv["id"], "500"), 409, "amount_exceeds_due")  # seen as INR
    r = api.client.patch(f"/invoices/{inv['id']}", headers=admin.headers,
                         json={"currency": "JPY", "amount": "1000"})
    assert r.status_code == 200 and r.json()["currency"] == "JPY"
    assert_problem(api.pay(admin, inv["id"], "5.5"), 422)  # JPY has no decimals
    r = api.pay(admin, inv["id"], "5")
    assert r.status_code == 201 and r.json()["currency"] == "JPY" and r.json()["amount"] == "5"
    assert ledger_sums(api, inv["id"]) == (5, 0, 1)
    assert_reconciles(api)
