"""Invoices: parties, access rules, read-only fields, changes, deletion, lists."""

from __future__ import annotations

import uuid

import httpx

from tests.support import (
    Account,
    Api,
    assert_problem,
    assert_reconciles,
    ledger_sums,
)


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
