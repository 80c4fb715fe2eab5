"""Signed provider webhooks, exactly-once events, refunds within the ledger."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import httpx

from tests.support import (
    ROOT,
    WEBHOOK_SECRETS,
    Account,
    Api,
    Server,
    app_env,
    assert_problem,
    assert_reconciles,
    deliver,
    evt,
    ledger_sums,
    sign,
)


def test_success_event_records_a_webhook_payment(api: Api, admin: Account, alice: Account,
                                                 bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")
    event = {"id": evt(), "invoice_id": inv["id"], "amount_paid": "60.50",
             "reference": "pay_123"}
    r = deliver(api, "payment/success", event)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["event_id"] == event["id"] and body["duplicate"] is False
    assert body["invoice"]["status"] == "partially_paid"
    assert body["invoice"]["amount_recovered"] == "60.50"
    tx = body["transaction"]
    assert tx["source"] == "webhook" and tx["event_id"] == event["id"]
    assert tx["amount"] == "60.50" and tx["reference"] == "pay_123"
    row = api.db.one("SELECT source, event_id, amount FROM invoice_transactions")
    assert row == {"source": "webhook", "event_id": event["id"], "amount": 6050}

    again = deliver(api, "payment/success", event)
    assert again.status_code == 200
    assert again.json() == {**body, "duplicate": True}
    assert ledger_sums(api, inv["id"]) == (6050, 0, 1)
    assert_reconciles(api)


def test_signatures(api: Api, admin: Account, alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")

    def payload() -> bytes:
        return json.dumps({"id": evt(), "invoice_id": inv["id"], "amount_paid": 1}).encode()

    now = int(time.time())
    body = payload()
    refused = {
        "missing": None,
        "empty": "",
        "malformed": "sha256=abc",
        "no v1": f"t={now}",
        "bad t": "t=yesterday,v1=00",
        "wrong": f"t={now},v1=" + "0" * 64,
        "other secret": sign(body, secret="not-our-secret-" + "z" * 30),
        "stale": sign(body, t=now - 301),  # further in the past by the time it is checked
        "future": sign(body, t=now + 330),
        "altered body": sign(body.replace(b'"amount_paid": 1', b'"amount_paid": 99')),
    }
    for name, header in refused.items():
        r = deliver(api, "payment/success", body, signature=header)
        assert_problem(r, 401, "invalid_signature")
        assert r.status_code == 401, name
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)
    assert api.db.scalar("SELECT count(*) FROM replays") == 0

    # Rotation: the previous secret still works, and one matching v1 among several is enough.
    rotated = payload()
    assert deliver(api, "payment/success", rotated,
                   signature=sign(rotated, secret=WEBHOOK_SECRETS[1])).status_code == 200
    several = payload()
    t = int(time.time())
    good = sign(several, t=t).split("v1=")[1]
    header = f"t={t},v1={'f' * 64},v1={good}"
    assert deliver(api, "payment/success", several, signature=header).status_code == 200
    within = payload()
    assert deliver(api, "payment/success", within,
                   signature=sign(within, t=now - 290)).status_code == 200
    assert ledger_sums(api, inv["id"]) == (300, 0, 3)


def test_twenty_simultaneous_copies_make_one_payment(api: Api, server: Server, admin: Account,
                                                     alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")
    body = json.dumps({"id": evt(), "invoice_id": inv["id"], "amount_paid": "25"}).encode()
    headers = {"X-Signature": sign(body), "content-type": "application/json"}

    async def run() -> list[httpx.Response]:
        import asyncio

        async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                     limits=httpx.Limits(max_connections=20)) as c:
            return await asyncio.gather(*(
                c.post("/webhooks/payment/success", content=body, headers=headers)
                for _ in range(20)))

    import asyncio

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 20
    assert sum(1 for r in responses if r.json()["duplicate"] is False) == 1
    assert len({r.json()["transaction"]["id"] for r in responses}) == 1
    assert ledger_sums(api, inv["id"]) == (2500, 0, 1)
    assert_reconciles(api)


def test_same_id_with_another_body_is_409(api: Api, admin: Account, alice: Account,
                                          bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")
    event = {"id": evt(), "invoice_id": inv["id"], "amount_paid": "10"}
    assert deliver(api, "payment/success", event).status_code == 200
    r = deliver(api, "payment/success", {**event, "amount_paid": "20"})
    assert_problem(r, 409, "event_id_reused")
    r = deliver(api, "refund", {"id": event["id"], "invoice_id": inv["id"],
                                "refunded_amount": "10"})
    assert_problem(r, 409, "event_id_reused")
    assert ledger_sums(api, inv["id"]) == (1000, 0, 1)


def test_refunds_respect_what_is_refundable(api: Api, admin: Account, alice: Account,
                                            bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")
    unpaid = {"id": evt(), "invoice_id": inv["id"], "refunded_amount": "10"}
    r = deliver(api, "refund", unpaid)
    body = assert_problem(r, 409, "amount_exceeds_refundable")
    assert "0.00" in body["detail"]
    assert deliver(api, "refund", unpaid).json() == body  # its repeats get the same answer
    assert api.client.get(f"/invoices/{inv['id']}", headers=admin.headers
                          ).json()["status"] == "pending"

    deliver(api, "payment/success", {"id": evt(), "invoice_id": inv["id"], "amount_paid": 50})
    too_much = deliver(api, "refund", {"id": evt(), "invoice_id": inv["id"],
                                       "refunded_amount": "50.01"})
    assert_problem(too_much, 409, "amount_exceeds_refundable")
    ok = deliver(api, "refund", {"id": evt(), "invoice_id": inv["id"], "refunded_amount": "20"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["invoice"]["status"] == "partially_refunded"
    assert ok.json()["transaction"]["kind"] == "refund"
    rest = deliver(api, "refund", {"id": evt(), "invoice_id": inv["id"], "refunded_amount": 30})
    assert rest.json()["invoice"]["status"] == "refunded"
    assert ledger_sums(api, inv["id"]) == (5000, 5000, 3)
    assert_reconciles(api)


def test_failure_then_success(api: Api, admin: Account, alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100")
    r = deliver(api, "payment/failure", {"id": evt(), "invoice_id": inv["id"],
                                         "reason": "card declined", "amount": "100"})
    assert r.status_code == 200, r.text
    assert r.json()["invoice"]["status"] == "payment_failed"
    assert r.json()["transaction"]["status"] == "failed"
    assert r.json()["invoice"]["amount_recovered"] == "0.00"
    no_amount = deliver(api, "payment/failure", {"id": evt(), "invoice_id": inv["id"]})
    assert no_amount.status_code == 200 and no_amount.json()["transaction"]["amount"] == "0.00"
    r = deliver(api, "payment/success", {"id": evt(), "invoice_id": inv["id"],
                                         "amount_paid": "100"})
    assert r.json()["invoice"]["status"] == "completed"
    assert ledger_sums(api, inv["id"]) == (10000, 0, 3)
    assert_reconciles(api)


def test_events_for_a_completed_invoice(api: Api, admin: Account, alice: Account,
                                        bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="10")
    assert api.pay(admin, inv["id"], 10).status_code == 201
    event = {"id": evt(), "invoice_id": inv["id"], "amount_paid": "1"}
    first = deliver(api, "payment/success", event)  # the provider took it: credited
    assert first.status_code == 200, first.text
    assert first.json()["transaction"] is None and first.json()["credited"] == "1.00"
    second = deliver(api, "payment/success", event)
    assert second.status_code == 200 and second.json() == {**first.json(), "duplicate": True}
    failure = deliver(api, "payment/failure", {"id": evt(), "invoice_id": inv["id"]})
    assert failure.json()["invoice"]["status"] == "completed"
    assert ledger_sums(api, inv["id"]) == (1000, 0, 2)
    assert_reconciles(api)


def test_bad_input_is_a_clear_4xx_and_changes_nothing(api: Api, admin: Account,
                                                      alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="10")
    cases = [
        (b"not json", 422),
        (b"[]", 422),
        (b'{"invoice_id": "%s", "amount_paid": 1}' % inv["id"].encode(), 422),  # no id
        (b'{"id": "evt_1", "invoice_id": "nope", "amount_paid": 1}', 422),
        (b'{"id": "evt_2", "invoice_id": "%s", "amount_paid": "ten"}' % inv["id"].encode(),
         422),
        (b'{"id": "evt_3", "invoice_id": "%s", "amount_paid": -1}' % inv["id"].encode(), 422),
        (b'{"id": 5, "invoice_id": "%s", "amount_paid": 1}' % inv["id"].encode(), 422),
        (b'\xff\xfe', 422),
        (b"[" * 5000 + b"]" * 5000, 422),
    ]
    for body, status in cases:
        assert_problem(deliver(api, "payment/success", body), status)
    unknown = {"id": evt(), "invoice_id": str(uuid.uuid4()), "amount_paid": 1}
    assert_problem(deliver(api, "payment/success", unknown), 404, "invoice_not_found")
    assert_problem(deliver(api, "payment/success", unknown), 404, "invoice_not_found")
    big = json.dumps({"id": evt(), "invoice_id": inv["id"], "amount_paid": 1,
                      "pad": "x" * 70_000}).encode()
    assert_problem(deliver(api, "payment/success", big), 413, "payload_too_large")
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)


def test_sign_webhook_cli_matches_the_server(api: Api, admin: Account, alice: Account,
                                             bob: Account, tmp_path) -> None:
    inv = api.invoice(admin, alice, bob, amount="10")
    body = json.dumps({"id": evt(), "invoice_id": inv["id"], "amount_paid": 2}).encode()
    path = tmp_path / "event.json"
    path.write_bytes(body)
    out = subprocess.run([sys.executable, "-m", "app", "sign-webhook", str(path)], cwd=ROOT,
                         env=app_env(api.database_url), capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out.startswith("t=") and ",v1=" in out
    assert deliver(api, "payment/success", body, signature=out).status_code == 200
    custom = subprocess.run([sys.executable, "-m", "app", "sign-webhook", str(path),
                             "--secret", "s3", "--timestamp", "1700000000"], cwd=ROOT,
                            env=app_env(api.database_url), capture_output=True, text=True,
                            timeout=60, check=True).stdout.strip()
    assert custom == sign(body, secret="s3", t=1700000000)


def test_a_payment_events_answer_shows_the_invoice_as_it_now_is(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    """The answer's invoice is built from the row read and locked with the event's claim
    and the sums the payment returned (no second read): it must equal a fresh GET."""
    inv = api.invoice(admin, alice, bob, amount="100", due_date="2020-01-31")  # overdue
    for amount in ("30.00", "70.00", "5.00"):  # partly, completed, then all of it credit
        r = deliver(api, "payment/success", {"id": evt(), "invoice_id": inv["id"],
                                              "amount_paid": amount})
        assert r.status_code == 200, r.text
        now = api.client.get(f"/invoices/{inv['id']}", headers=admin.headers).json()
        assert r.json()["invoice"] == now
    assert now["status"] == "completed" and r.json()["credited"] == "5.00"
    void = api.invoice(admin, alice, bob, amount="10")
    assert api.client.post(f"/invoices/{void['id']}/void", headers=admin.headers
                           ).status_code == 200
    r = deliver(api, "payment/success", {"id": evt(), "invoice_id": void["id"],
                                          "amount_paid": "3"})
    assert r.status_code == 200 and r.json()["transaction"] is None, r.text
    assert r.json()["invoice"] == api.client.get(f"/invoices/{void['id']}",
                                                 headers=admin.headers).json()
    missing = deliver(api, "payment/success", {"id": evt(), "invoice_id": str(uuid.uuid4()),
                                                "amount_paid": "3"})
    assert_problem(missing, 404, "invoice_not_found")


def test_a_payment_as_it_is_is_one_statement_and_its_answer_replays(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    """A payment with nothing to credit or refuse is claimed, recorded and answered by one
    statement (app/webhooks/queries.py, PAY_AT_ONCE), which stores the rows of its answer;
    an overpayment goes through the transaction, which stores the answer itself. Either
    way the answer shows the transaction and the invoice as a GET does, and replays the
    same."""
    inv = api.invoice(admin, alice, bob, amount="100", due_date="2020-01-31")
    stored = []
    for amount in ("40", "90"):  # as it is; then more than is due
        event = {"id": evt(), "invoice_id": inv["id"], "amount_paid": amount,
                 "reference": "ref ✓"}
        r = deliver(api, "payment/success", event)
        assert r.status_code == 200, r.text
        body = r.json()
        tx = api.client.get(f"/invoice-transactions/{body['transaction']['id']}",
                            headers=admin.headers)
        assert body["transaction"] == tx.json()
        assert body["invoice"] == api.client.get(f"/invoices/{inv['id']}",
                                                 headers=admin.headers).json()
        again = deliver(api, "payment/success", event)
        assert again.json() == {**body, "duplicate": True}
        assert again.headers["Idempotent-Replayed"] == "true"
        stored.append(api.db.scalar("SELECT response_body FROM replays WHERE key = %s",
                                    (event["id"],)))
    assert json.loads(stored[0]).keys() == {"raw"}  # the one statement's
    assert "raw" not in json.loads(stored[1])  # the transaction's
    assert body["credited"] == "30.00"
    assert ledger_sums(api, inv["id"]) == (10000, 0, 2)
    assert_reconciles(api)
