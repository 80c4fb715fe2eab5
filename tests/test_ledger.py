"""The ledger: partial payments, refunds, exact amounts, concurrency, reconcile."""

from __future__ import annotations

import re

import pytest

from app.ledger.queries import RECORD_FAILED_ATTEMPT, RECORD_REFUND_TO_CREDIT, RECORD_TRANSACTION
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
    # The bound is 10^15 minor units (docs/API.md): 9,999,999,999,999.99 in a 2-decimal currency.
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


def test_reconcile_names_a_broken_invoice(api: Api, admin: Account, alice: Account,
                                          bob: Account) -> None:
    inv = api.invoice(admin, alice, bob)
    api.pay(admin, inv["id"], 10)
    assert_reconciles(api)
    api.db.rows("UPDATE invoices SET amount_recovered = 999 WHERE id = %s", (inv["id"],))
    result = api.reconcile()
    assert result.returncode == 1
    assert inv["id"] in result.stdout and "1 mismatch" in result.stdout


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


def _columns_payments_write() -> set[str]:
    written: set[str] = set()
    for statement in (RECORD_TRANSACTION, RECORD_REFUND_TO_CREDIT, RECORD_FAILED_ATTEMPT):
        assignments = statement.text.split("UPDATE invoices i SET", 1)[1].split("FROM", 1)[0]
        written |= set(re.findall(r"(?m)(?:^|,)\s*([a-z_]+) = ", assignments))
    return written


def test_payments_that_keep_the_status_write_no_index_entry(api: Api, admin: Account,
                                                             alice: Account,
                                                             bob: Account) -> None:
    """migrations/0008_hot_payments.py: no index of invoices reads a column the ledger
    statement writes (only `status`, which follows them), so PostgreSQL updates the row in
    place (HOT) when the status stays."""
    written = _columns_payments_write()
    assert {"amount_recovered", "amount_refunded", "last_attempt_failed", "updated_at"} <= written
    indexes = api.db.rows("SELECT indexrelid::regclass::text AS name, "
                          "pg_get_indexdef(indexrelid) AS definition "
                          "FROM pg_index WHERE indrelid = 'invoices'::regclass")
    assert len(indexes) >= 6
    for index in indexes:
        read = set(re.findall(r"\w+", index["definition"].split(" USING ", 1)[1]))
        assert not read & written, f"{index['name']} reads {read & written}"

    inv = api.invoice(admin, alice, bob, amount="100")
    assert api.pay(admin, inv["id"], "10").status_code == 201  # partially_paid from here
    hot = api.db.scalar(
        "BEGIN; UPDATE invoices SET amount_recovered = amount_recovered + 1000, "
        "updated_at = now() WHERE id = %s; "
        "SELECT pg_stat_get_xact_tuples_hot_updated('invoices'::regclass)", (inv["id"],))
    api.db.scalar("ROLLBACK; SELECT 1")
    assert hot == 1
