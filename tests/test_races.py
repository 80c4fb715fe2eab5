"""Races: both sides of every pair of operations on one invoice or one account, fired at the
same moment through two worker processes, many times over.

Each test asserts that every answer is one the contract documents for that operation (never
a 5xx: the server log is checked after every test too), and that the invariants hold
afterwards: every invoice's sums equal its ledger rows, 0 <= refunded <= recovered <= amount,
the status follows the rules, every ledger row is in its invoice's currency, and at least
one admin is active.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support import (
    PASSWORD,
    Account,
    Api,
    Request,
    Server,
    assert_reconciles,
    burst,
    evt,
    signed,
)

pytestmark = pytest.mark.slow

ROUNDS = 4


def interleave(*groups: list[Request]) -> list[Request]:
    """One request from each group in turn, so both sides start at the same moment."""
    out = []
    for items in itertools.zip_longest(*groups):
        out += [item for item in items if item is not None]
    return out


def codes(responses: list[httpx.Response]) -> Counter:
    """Status and problem code of each answer, e.g. {(201, None): 5, (409, "x"): 2}."""
    found: Counter = Counter()
    for r in responses:
        code = r.json().get("code") if r.status_code >= 400 and r.content else None
        found[(r.status_code, code)] += 1
    return found


def assert_only(responses: list[httpx.Response], allowed: set[tuple[int, str | None]]) -> None:
    seen = codes(responses)
    unexpected = {k: v for k, v in seen.items() if k not in allowed}
    assert not unexpected, f"unexpected answers {unexpected}; all: {dict(seen)}"


def status_of(recovered: int, refunded: int, amount: int, failed: bool,
              void: bool = False, uncollectible: bool = False) -> str:
    if void:
        return "void"
    if refunded > 0:
        return "refunded" if refunded == recovered else "partially_refunded"
    if recovered == amount:
        return "completed"
    if uncollectible:
        return "uncollectible"
    if recovered > 0:
        return "partially_paid"
    return "payment_failed" if failed else "pending"


def assert_invariants(api: Api) -> None:
    rows = api.db.rows("""
        SELECT i.id, i.amount, i.amount_recovered, i.amount_refunded, i.status,
               i.last_attempt_failed, i.currency, i.voided_at IS NOT NULL AS void,
               i.uncollectible_at IS NOT NULL AS uncollectible,
               COALESCE(sum(t.amount) FILTER (WHERE t.kind = 'payment'
                                              AND t.status = 'succeeded'), 0) AS paid,
               COALESCE(sum(t.amount) FILTER (WHERE t.kind = 'refund'), 0) AS refunds,
               count(t.id) FILTER (WHERE t.currency <> i.currency) AS foreign_rows
        FROM invoices i LEFT JOIN invoice_transactions t ON t.invoice_id = i.id
        GROUP BY i.id""")
    for r in rows:
        assert r["amount_recovered"] == r["paid"], r
        assert r["amount_refunded"] == r["refunds"], r
        assert 0 <= r["amount_refunded"] <= r["amount_recovered"] <= r["amount"], r
        assert r["status"] == status_of(r["amount_recovered"], r["amount_refunded"],
                                        r["amount"], r["last_attempt_failed"], r["void"],
                                        r["uncollectible"]), r
        assert not r["void"] or r["amount_recovered"] == 0, r
        assert r["foreign_rows"] == 0, r
    orphans = api.db.scalar("SELECT count(*) FROM invoice_transactions t WHERE NOT EXISTS "
                            "(SELECT 1 FROM invoices i WHERE i.id = t.invoice_id)")
    assert orphans == 0
    admins = api.db.scalar("SELECT count(*) FROM users WHERE role = 'admin' AND is_active")
    assert admins >= 1
    # Every ledger row has exactly its one event, every invoice its invoice.created, and an
    # invoice.completed shows a completed invoice.
    unmatched = api.db.rows("""
        SELECT t.id, count(e.seq) AS events FROM invoice_transactions t
        LEFT JOIN events e ON e.data -> 'transaction' ->> 'id' = t.id::text
        GROUP BY t.id HAVING count(e.seq) <> 1""")
    assert unmatched == [], unmatched
    strays = api.db.scalar("""
        SELECT count(*) FROM events e WHERE e.data ? 'transaction' AND NOT EXISTS (
            SELECT 1 FROM invoice_transactions t
            WHERE t.id::text = e.data -> 'transaction' ->> 'id')""")
    assert strays == 0
    created = api.db.rows("""
        SELECT i.id FROM invoices i LEFT JOIN events e
          ON e.invoice_id = i.id AND e.type = 'invoice.created'
        GROUP BY i.id HAVING count(e.seq) <> 1""")
    assert created == [], created
    assert api.db.scalar("""
        SELECT count(*) FROM events WHERE type = 'invoice.completed'
          AND COALESCE(data -> 'invoice' ->> 'status', data -> 'object' ->> 'status')
              <> 'completed'""") == 0


def pay(admin: Account, invoice_id: str, amount: Any, **extra: Any) -> Request:
    return ("POST", "/invoice-transactions", admin.headers,
            {"invoice_id": invoice_id, "amount": amount, "payment_mode": "card", **extra})


def refund(admin: Account, invoice_id: str, amount: Any) -> Request:
    return pay(admin, invoice_id, amount, kind="refund")


def webhook(path: str, invoice_id: str, **fields: Any) -> Request:
    body, headers = signed({"id": evt(), "invoice_id": invoice_id, **fields})
    return ("POST", f"/webhooks/{path}", headers, body)


def patch(admin: Account, invoice_id: str, **fields: Any) -> Request:
    return ("PATCH", f"/invoices/{invoice_id}", admin.headers, fields)


def delete(admin: Account, invoice_id: str) -> Request:
    return ("DELETE", f"/invoices/{invoice_id}", admin.headers, None)


PAYMENT = {(201, None), (409, "amount_exceeds_due")}
REFUND = {(201, None), (409, "amount_exceeds_refundable")}
HOOK_PAYMENT = {(200, None), (409, "amount_exceeds_due")}
HOOK_REFUND = {(200, None), (409, "amount_exceeds_refundable")}
GONE = {(404, "invoice_not_found")}


@pytest.fixture
def racer(two_workers: Server) -> str:
    return two_workers.url


# -- money against money ---------------------------------------------------------------------

def test_payments_race_refunds(api: Api, racer: str, admin: Account, alice: Account,
                               bob: Account) -> None:
    for _ in range(ROUNDS):
        inv = api.invoice(admin, alice, bob, amount="1000")
        assert api.pay(admin, inv["id"], 10).status_code == 201
        payments = [pay(admin, inv["id"], 40)] * 20
        refunds = [refund(admin, inv["id"], 30)] * 20
        out = burst(racer, interleave(payments, refunds))
        assert_only(out[0::2], PAYMENT)
        assert_only(out[1::2], REFUND)
        assert codes(out[0::2])[(201, None)] == 20  # 800 of the 990 due: all fit
    assert_invariants(api)


def test_amount_changes_race_payments(api: Api, racer: str, admin: Account, alice: Account,
                                      bob: Account) -> None:
    for _ in range(ROUNDS):
        inv = api.invoice(admin, alice, bob, amount="1000")
        amounts = ["900", "800", "700", "1000", "1100", "1200"] * 2
        changes = [patch(admin, inv["id"], amount=a) for a in amounts]
        payments = [pay(admin, inv["id"], 10)] * 60
        out = burst(racer, interleave(changes, payments))
        sent = interleave(changes, payments)
        assert_only([r for r, q in zip(out, sent, strict=True) if q[0] == "PATCH"],
                    {(200, None), (409, "amount_below_paid")})
        assert_only([r for r, q in zip(out, sent, strict=True) if q[0] == "POST"], PAYMENT)
    assert_invariants(api)


def test_success_and_refund_webhooks_race(api: Api, racer: str, admin: Account,
                                          alice: Account, bob: Account) -> None:
    for _ in range(ROUNDS):
        inv = api.invoice(admin, alice, bob, amount="1000")
        assert api.pay(admin, inv["id"], 100).status_code == 201
        successes = [webhook("payment/success", inv["id"], amount_paid="20")
                     for _ in range(20)]
        refunds = [webhook("refund", inv["id"], refunded_amount="10") for _ in range(20)]
        out = burst(racer, interleave(successes, refunds))
        assert_only(out[0::2], HOOK_PAYMENT)
        assert_only(out[1::2], HOOK_REFUND)
    assert_invariants(api)


def test_webhook_payments_race_api_payments_and_failures(
        api: Api, racer: str, admin: Account, alice: Account, bob: Account) -> None:
    for _ in range(ROUNDS):
        inv = api.invoice(admin, alice, bob, amount="500")
        successes = [webhook("payment/success", inv["id"], amount_paid="30")
                     for _ in range(10)]
        failures = [webhook("payment/failure", inv["id"], amount="30") for _ in range(10)]
        payments = [pay(admin, inv["id"], 30)] * 10
        out = burst(racer, interleave(successes, failures, payments))
        # The provider's money has moved: what is not due any more goes to credit.
        assert_only(out[0::3], {(200, None)})
        assert_only(out[1::3], {(200, None)})
        assert_only(out[2::3], PAYMENT)
        credited = sum(Decimal(r.json().get("credited") or 0) for r in out[0::3])
        recovered = Decimal(api.client.get(f"/invoices/{inv['id']}", headers=admin.headers)
                            .json()["amount_recovered"])
        api_paid = codes(out[2::3])[(201, None)]
        assert recovered + credited == 30 * (10 + api_paid), (recovered, credited, api_paid)
        assert recovered <= 500 and api_paid <= 16
    assert_invariants(api)
    assert_reconciles(api)


def test_copies_of_one_event_id_race_in_one_statement_and_in_a_transaction(
        api: Api, racer: str, admin: Account, alice: Account, bob: Account) -> None:
    """One event id, at once: copies of a payment as it is (taken by the one statement,
    which stores the id with the answer at its end) and copies of another body, an
    overpayment (taken by the transaction, which claims the id first). Exactly one body
    takes effect, once: its copies all get its answer, the others 409."""
    for n in range(ROUNDS * 2):
        inv = api.invoice(admin, alice, bob, amount="100")
        event = {"id": evt(), "invoice_id": inv["id"]}
        plain = signed({**event, "amount_paid": "30"})
        over = signed({**event, "amount_paid": "130"})
        first, second = (plain, over) if n % 2 == 0 else (over, plain)
        out = burst(racer, interleave(
            [("POST", "/webhooks/payment/success", first[1], first[0])] * 6,
            [("POST", "/webhooks/payment/success", second[1], second[0])] * 6))
        assert_only(out, {(200, None), (409, "event_id_reused")})
        won = [r for r in out if r.status_code == 200]
        assert len({r.request.content for r in won}) == 1, "two bodies took effect"
        assert len({r.json()["transaction"]["id"] for r in won}) == 1
        assert [r.json()["duplicate"] for r in won].count(False) == 1
        first_answer = next(r.json() for r in won if not r.json()["duplicate"])
        assert all(r.json() == {**first_answer, "duplicate": True}
                   for r in won if r.json()["duplicate"])
        recovered = api.db.scalar("SELECT amount_recovered FROM invoices WHERE id = %s",
                                  (inv["id"],))
        overpaid = b'"130"' in won[0].request.content
        assert recovered == (10000 if overpaid else 3000)
        assert api.db.scalar("SELECT count(*) FROM invoice_transactions WHERE event_id = %s",
                             (event["id"],)) == 1
        assert first_answer.get("credited") == ("30.00" if overpaid else None)
    assert_invariants(api)
    assert_reconciles(api)


# -- money against changes of the invoice ------------------------------------------------------

def test_delete_races_the_first_payment(api: Api, racer: str, admin: Account, alice: Account,
                                        bob: Account) -> None:
    firsts = {
        "api payment": lambda i: pay(admin, i, 5),
        "success webhook": lambda i: webhook("payment/success", i, amount_paid="5"),
        "failure webhook": lambda i: webhook("payment/failure", i, amount="5"),
    }
    allowed = {
        "api payment": {(201, None), *GONE},
        "success webhook": {(200, None), *GONE},
        "failure webhook": {(200, None), *GONE},
    }
    for name, first in firsts.items():
        invoices = [api.invoice(admin, alice, bob, amount="100")["id"] for _ in range(12)]
        sent = interleave([delete(admin, i) for i in invoices],
                          [first(i) for i in invoices])
        out = burst(racer, sent)
        deletes, effects = out[0::2], out[1::2]
        assert_only(deletes, {(204, None), (409, "invoice_has_transactions")})
        assert_only(effects, allowed[name])
        for invoice_id, d, e in zip(invoices, deletes, effects, strict=True):
            exists = api.db.scalar("SELECT count(*) FROM invoices WHERE id = %s", (invoice_id,))
            assert (d.status_code == 204) == (exists == 0), (name, d.text, e.text)
            assert (d.status_code == 204) == (e.status_code == 404), (name, d.text, e.text)
    assert_invariants(api)


def test_void_races_the_first_payment(api: Api, racer: str, admin: Account, alice: Account,
                                      bob: Account) -> None:
    """Exactly one wins: the payment (and the void is refused, money has moved) or the void
    (and an API payment is refused, a provider's is credited to the payer)."""
    firsts = {
        "api payment": (lambda i: pay(admin, i, 5), {(201, None), (409, "invoice_void")}),
        "success webhook": (lambda i: webhook("payment/success", i, amount_paid="5"),
                            {(200, None)}),
    }
    for name, (first, allowed) in firsts.items():
        for _ in range(ROUNDS // 2):
            invoices = [api.invoice(admin, alice, bob, amount="100")["id"] for _ in range(12)]
            out = burst(racer, interleave(
                [("POST", f"/invoices/{i}/void", admin.headers, None) for i in invoices],
                [first(i) for i in invoices]))
            voids, payments = out[0::2], out[1::2]
            assert_only(voids, {(200, None), (409, "money_has_moved")})
            assert_only(payments, allowed)
            for v, p in zip(voids, payments, strict=True):
                if name == "api payment":
                    assert (v.status_code == 200) == (p.status_code == 409), (v.text, p.text)
                else:  # after the void, the provider's money goes to credit
                    assert (v.status_code == 200) == (p.json()["transaction"] is None), \
                        (v.text, p.text)
    assert_invariants(api)


def test_mark_uncollectible_races_the_last_payment(api: Api, racer: str, admin: Account,
                                                   alice: Account, bob: Account) -> None:
    """Marked before the last payment or refused after it (paid in full): either way the
    invoice ends completed, and the status always follows the rules."""
    invoices = [api.invoice(admin, alice, bob, amount="10")["id"] for _ in range(12)]
    out = burst(racer, interleave(
        [("POST", f"/invoices/{i}/mark-uncollectible", admin.headers, None) for i in invoices],
        [pay(admin, i, 10) for i in invoices]))
    assert_only(out[0::2], {(200, None), (409, "invoice_paid")})
    assert_only(out[1::2], {(201, None)})
    for i in invoices:
        assert api.client.get(f"/invoices/{i}", headers=admin.headers).json()["status"] == \
            "completed"
    assert_invariants(api)


# -- credit ------------------------------------------------------------------------------------

def _grant(api: Api, admin: Account, user: Account, amount: str) -> None:
    r = api.client.post(f"/users/{user.id}/credit", headers=admin.headers,
                        json={"amount": amount, "currency": "INR", "reason": "race"})
    assert r.status_code == 201, r.text


def _balance(api: Api, user: Account) -> int:
    return api.db.scalar("SELECT COALESCE(sum(balance), 0) FROM credit_balances "
                         "WHERE user_id = %s", (user.id,))


def _apply(admin: Account, invoice_id: str, amount: str) -> Request:
    return ("POST", f"/invoices/{invoice_id}/apply-credit", admin.headers, {"amount": amount})


def test_concurrent_applies_never_spend_more_than_the_balance(
        api: Api, racer: str, admin: Account, alice: Account, bob: Account) -> None:
    for _ in range(ROUNDS // 2):
        _grant(api, admin, alice, "55")
        start = _balance(api, alice)
        invoices = [api.invoice(admin, alice, bob, amount="10")["id"] for _ in range(20)]
        out = burst(racer, [_apply(admin, i, "10") for i in invoices])
        assert_only(out, {(201, None), (409, "amount_exceeds_credit")})
        took = sum(r.status_code == 201 for r in out)
        assert took == start // 1000, (took, start)
        assert _balance(api, alice) == start - took * 1000 >= 0
    assert_invariants(api)
    assert_reconciles(api)


def test_an_overpaying_webhook_races_an_api_payment(api: Api, racer: str, admin: Account,
                                                    alice: Account, bob: Account) -> None:
    """Whichever comes first is paid in full; the webhook that comes second pays what is
    left and credits the rest, the API payment that comes second is refused."""
    for _ in range(ROUNDS // 2):
        start = _balance(api, alice)
        invoices = [api.invoice(admin, alice, bob, amount="100")["id"] for _ in range(10)]
        out = burst(racer, interleave(
            [webhook("payment/success", i, amount_paid="60") for i in invoices],
            [pay(admin, i, 60) for i in invoices]))
        hooks, payments = out[0::2], out[1::2]
        assert_only(hooks, {(200, None)})
        assert_only(payments, {(201, None), (409, "amount_exceeds_due")})
        credited = 0
        for h, p in zip(hooks, payments, strict=True):
            if p.status_code == 201:  # the API first: the webhook pays 40, credits 20
                assert h.json()["transaction"]["amount"] == "40.00", h.text
                assert h.json()["credited"] == "20.00"
                credited += 2000
            else:
                assert h.json()["transaction"]["amount"] == "60.00" and \
                    h.json().get("credited") is None, h.text
        assert _balance(api, alice) == start + credited
    assert_invariants(api)
    assert_reconciles(api)


def test_a_refund_returning_credit_races_a_new_apply(api: Api, racer: str, admin: Account,
                                                     alice: Account, bob: Account) -> None:
    """A payment made from credit is refunded while another invoice takes credit: the
    apply succeeds only with what is there at that moment; never below zero."""
    for _ in range(ROUNDS):
        _grant(api, admin, alice, "50")
        paid_from_credit = api.invoice(admin, alice, bob, amount="50")["id"]
        r = api.client.post(f"/invoices/{paid_from_credit}/apply-credit",
                            headers=admin.headers, json={})
        assert r.status_code == 201, r.text
        start = _balance(api, alice)
        # Due enough for any balance the rounds leave: only the credit may limit the apply.
        other = api.invoice(admin, alice, bob, amount="10000")["id"]
        out = burst(racer, [refund(admin, paid_from_credit, 50),
                            _apply(admin, other, str(start / 100 + 30))])
        assert_only(out[0:1], {(201, None)})
        assert_only(out[1:2], {(201, None), (409, "amount_exceeds_credit")})
        spent = (start + 3000) if out[1].status_code == 201 else 0
        assert _balance(api, alice) == start + 5000 - spent
    assert_invariants(api)
    assert_reconciles(api)


def test_currency_change_races_a_payment(api: Api, racer: str, admin: Account,
                                         alice: Account, bob: Account) -> None:
    for _ in range(ROUNDS):
        invoices = [api.invoice(admin, alice, bob, amount="1000")["id"] for _ in range(8)]
        sent = interleave([patch(admin, i, currency="JPY") for i in invoices],
                          [pay(admin, i, "0.50") for i in invoices])
        out = burst(racer, sent)
        changes, payments = out[0::2], out[1::2]
        assert_only(changes, {(200, None), (409, "money_has_moved")})
        assert_only(payments, {(201, None), (422, "validation_error")})
        for c, p in zip(changes, payments, strict=True):
            # Exactly one of the two took effect, and the other says why.
            assert (c.status_code == 200) != (p.status_code == 201), (c.text, p.text)
            if p.status_code == 422:
                assert "JPY amounts are whole numbers" in p.text
    assert_invariants(api)


def test_stale_currency_is_never_used(api: Api, racer: str, admin: Account, alice: Account,
                                      bob: Account) -> None:
    """Every worker has seen the invoice as JPY; after the change to INR, 0.50 is valid."""
    inv = api.invoice(admin, alice, bob, amount="1000", currency="JPY")
    for _ in range(4):
        assert httpx.get(f"{racer}/invoice-transactions/invoice/{inv['id']}",
                         headers=admin.headers).status_code == 200
    assert api.pay(admin, inv["id"], "0.5").status_code == 422
    r = api.client.patch(f"/invoices/{inv['id']}", headers=admin.headers,
                         json={"currency": "INR"})
    assert r.status_code == 200, r.text
    out = burst(racer, [pay(admin, inv["id"], "0.50")] * 4 + [
        webhook("payment/success", inv["id"], amount_paid="0.25") for _ in range(4)] + [
        webhook("payment/failure", inv["id"], amount="0.25") for _ in range(4)])
    assert [r.status_code for r in out] == [201] * 4 + [200] * 8, [r.text for r in out]
    rows = api.db.rows("SELECT amount, currency FROM invoice_transactions")
    assert {(r["amount"], r["currency"]) for r in rows} == {(50, "INR"), (25, "INR")}
    assert_invariants(api)


def test_put_and_patch_race(api: Api, racer: str, admin: Account, alice: Account,
                            bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    puts = [("PUT", f"/invoices/{inv['id']}", admin.headers,
             {"description": f"put {n}", "amount": str(1000 + n)}) for n in range(15)]
    patches = [patch(admin, inv["id"], due_date=f"2027-01-{n + 1:02d}") for n in range(15)]
    payments = [pay(admin, inv["id"], 1)] * 15
    out = burst(racer, interleave(puts, patches, payments))
    assert_only(out[0::3] + out[1::3], {(200, None)})
    assert_only(out[2::3], {(201, None)})
    assert_invariants(api)


# -- accounts ----------------------------------------------------------------------------------

def _only_admins(api: Api, *keep: Account) -> None:
    api.db.rows("UPDATE users SET is_active = false "
                "WHERE role = 'admin' AND NOT id = ANY(%s::uuid[])", ([a.id for a in keep],))


def test_two_admins_stepping_down_leave_one(api: Api, racer: str) -> None:
    for _ in range(ROUNDS * 2):
        a, b = api.user("admin"), api.user("admin")
        _only_admins(api, a, b)
        out = burst(racer, [
            ("PATCH", f"/users/{a.id}", a.headers, {"role": "user"}),
            ("PATCH", f"/users/{b.id}", b.headers, {"role": "user"})])
        assert sorted(r.status_code for r in out) == [200, 409], [r.text for r in out]
        assert_only(out, {(200, None), (409, "last_admin")})
        assert_invariants(api)


def test_two_admins_deactivating_each_other_leave_one(api: Api, racer: str) -> None:
    for _ in range(ROUNDS * 2):
        a, b = api.user("admin"), api.user("admin")
        _only_admins(api, a, b)
        out = burst(racer, [("DELETE", f"/users/{b.id}", a.headers, None),
                            ("DELETE", f"/users/{a.id}", b.headers, None)])
        assert_only(out, {(204, None), (409, "last_admin"), (401, "not_authenticated")})
        assert sum(r.status_code == 204 for r in out) == 1, [r.text for r in out]
        assert_invariants(api)


def test_deactivate_races_reactivate(api: Api, racer: str, admin: Account) -> None:
    for _ in range(ROUNDS):
        user = api.user()
        old_token = user.headers
        out = burst(racer, [("DELETE", f"/users/{user.id}", admin.headers, None),
                            ("PATCH", f"/users/{user.id}", admin.headers, {"is_active": True})])
        assert_only(out[:1], {(204, None)})
        assert_only(out[1:], {(200, None)})
        # Whatever the order, a token from before the deactivation never works again.
        r = httpx.get(f"{racer}/users/{user.id}", headers=old_token)
        assert r.status_code == 401, r.text
    assert_invariants(api)


def test_logout_races_the_same_token(api: Api, racer: str) -> None:
    user = api.user()
    reads = [("GET", f"/users/{user.id}", user.headers, None)] * 20
    out = burst(racer, interleave([("POST", "/logout", user.headers, None)], reads))
    assert out[0].status_code == 204
    assert_only(out[1:], {(200, None), (401, "not_authenticated")})
    assert httpx.get(f"{racer}/users/{user.id}", headers=user.headers).status_code == 401


def test_parallel_wrong_passwords_are_throttled_per_account(api: Api, racer: str) -> None:
    user = api.user()
    names = [user.username, user.email, user.username.upper(), f" {user.email} "]
    attempts = [("POST", "/login", {"content-type": "application/json"},
                 {"username": names[n % 4], "password": f"wrong-{n}"}) for n in range(40)]
    out = burst(racer, attempts)
    assert_only(out, {(401, "invalid_credentials"), (429, "too_many_attempts")})
    checked = sum(r.status_code == 401 for r in out)
    assert checked <= 5, f"{checked} passwords were checked; the limit is 5"
    r = httpx.post(f"{racer}/login", data={"username": user.email, "password": PASSWORD})
    assert r.status_code == 429, r.text


def test_password_change_races_logins(api: Api, racer: str) -> None:
    user = api.user()
    old_token = user.headers
    logins = [("POST", "/login", {"content-type": "application/json"},
               {"username": user.username, "password": PASSWORD})] * 4
    change = ("PATCH", f"/users/{user.id}", user.headers,
              {"password": "a-new-password-9", "current_password": PASSWORD})
    out = burst(racer, interleave([change], logins))
    assert out[0].status_code == 200, out[0].text
    assert_only(out[1:], {(200, None), (401, "invalid_credentials")})
    # Tokens from before the change (the old one, and any login that raced it) are refused.
    for token in [old_token] + [{"Authorization": f"Bearer {r.json()['access_token']}"}
                                for r in out[1:] if r.status_code == 200]:
        assert httpx.get(f"{racer}/users/{user.id}", headers=token).status_code == 401
    assert api.login(user.username, "a-new-password-9")


def test_signup_races_an_email_change(api: Api, racer: str) -> None:
    for _ in range(ROUNDS):
        user = api.user()
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        out = burst(racer, [
            ("POST", "/users", {}, {"username": f"u{uuid.uuid4().hex[:8]}", "email": email,
                                    "password": PASSWORD}),
            ("PATCH", f"/users/{user.id}", user.headers, {
                "email": email.upper(), "current_password": PASSWORD})])
        assert_only(out, {(201, None), (200, None), (409, "email_taken")})
        assert sum(r.status_code < 300 for r in out) == 1, [r.text for r in out]
    assert api.db.scalar("SELECT count(DISTINCT lower(email)) = count(*) FROM users")


def test_the_books_balance_after_the_races(api: Api, racer: str, admin: Account,
                                           alice: Account, bob: Account) -> None:
    """One mixed storm on one invoice, then the reconcile command itself."""
    inv = api.invoice(admin, alice, bob, amount="300")
    i = inv["id"]
    sent = interleave(
        [pay(admin, i, 7)] * 10, [refund(admin, i, 3)] * 10,
        [webhook("payment/success", i, amount_paid="5") for _ in range(10)],
        [webhook("refund", i, refunded_amount="2") for _ in range(10)],
        [webhook("payment/failure", i) for _ in range(5)],
        [patch(admin, i, amount=a) for a in ("250", "400", "300", "350", "280")],
        [delete(admin, i)] * 3)
    out = burst(racer, sent)
    allowed = PAYMENT | REFUND | HOOK_PAYMENT | HOOK_REFUND | {
        (200, None), (409, "amount_below_paid"), (409, "invoice_has_transactions"),
        (204, None), *GONE}
    assert_only(out, allowed)
    assert_invariants(api)
    assert_reconciles(api)


# -- endpoints against their deliveries -------------------------------------------------------
# Deleting an endpoint locks its row, then (the foreign key's cascade) its deliveries. The
# races below are made to happen every time: the test holds a lock itself, lines the
# others up behind it, then lets go.

def _waiting(api: Api, like: str, count: int, timeout: float = 20) -> None:
    """Wait until `count` sessions whose statement is LIKE `like` wait for a lock. (Asked
    on the test's autocommit connection: inside a transaction, pg_stat_activity would
    answer from a snapshot taken at its first read.)"""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                         "current_database() AND wait_event_type = 'Lock' AND query LIKE %s",
                         (like,)) >= count:
            return
        time.sleep(0.02)
    sessions = api.db.rows("SELECT state, wait_event_type, left(query, 60) AS query "
                           "FROM pg_stat_activity WHERE datname = current_database()")
    raise AssertionError(f"fewer than {count} sessions running {like!r} waited: {sessions}")


def _endpoint(api: Api, admin: Account, url: str) -> str:
    r = api.client.post("/webhook-endpoints", headers=admin.headers,
                        json={"url": url, "event_types": ["*"]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _delete_in_background(racer: str, admin: Account, endpoint_id: str,
                          ) -> tuple[Any, list[tuple[httpx.Response, float]]]:
    """DELETE /webhook-endpoints/{id} on a thread: the thread, and (answer, when) once done."""
    import threading
    import time

    answers: list[tuple[httpx.Response, float]] = []

    def delete() -> None:
        r = httpx.delete(f"{racer}/webhook-endpoints/{endpoint_id}", headers=admin.headers,
                         timeout=30)
        answers.append((r, time.monotonic()))

    thread = threading.Thread(target=delete)
    thread.start()
    return thread, answers


def test_a_payment_racing_the_delete_of_its_endpoint_skips_it(
        api: Api, racer: str, admin: Account, alice: Account, bob: Account,
        receiver: Any) -> None:
    """The endpoint is deleted (not yet committed) while a payment fans its events out to
    it: the payment waits, then leaves the endpoint out (it failed with 23503, a 500)."""
    import time

    import psycopg2

    inv = api.invoice(admin, alice, bob, amount="100000.00")
    for _ in range(ROUNDS):
        endpoint_id = _endpoint(api, admin, receiver.url)
        assert api.pay(admin, inv["id"], "1.00").status_code == 201  # one delivery to hold
        deadline = time.monotonic() + 20  # sent: no worker will lock its endpoint again
        while api.db.scalar("SELECT count(*) FROM deliveries WHERE endpoint_id = %s "
                            "AND status <> 'delivered'", (endpoint_id,)):
            assert time.monotonic() < deadline, "the delivery was never delivered"
            time.sleep(0.05)
        holder = psycopg2.connect(api.database_url)
        try:
            with holder.cursor() as cur:  # holds the DELETE's cascade, after its own row
                cur.execute("SELECT 1 FROM deliveries WHERE endpoint_id = %s FOR UPDATE",
                            (endpoint_id,))
            deleting, deleted = _delete_in_background(racer, admin, endpoint_id)
            _waiting(api, "DELETE FROM%webhook_endpoints%", 1)
            with ThreadPoolExecutor(1) as pool:  # three payments, waiting for the DELETE
                paid = pool.submit(burst, racer, [("POST", "/invoice-transactions",
                                                   admin.headers, {
                    "invoice_id": inv["id"], "amount": "1.00", "payment_mode": "upi"})] * 3)
                _waiting(api, "WITH caller AS%", 1)  # the others wait behind its invoice
                holder.rollback()
                paying = paid.result(30)
        finally:
            holder.close()
        deleting.join(30)
        assert deleted and deleted[0][0].status_code == 204, deleted
        assert [r.status_code for r in paying] == [201] * 3, [r.text for r in paying]
        assert not api.db.rows("SELECT 1 FROM deliveries WHERE endpoint_id = %s",
                               (endpoint_id,))


def test_recording_a_batch_races_the_delete_of_its_endpoint(
        api: Api, racer: str, admin: Account, alice: Account, bob: Account,
        receiver: Any) -> None:
    """A delivery worker records a batch's outcomes and its endpoints' health while the
    endpoint is being deleted. The DELETE goes first, the worker's record waits behind it:
    they do not wait for each other in a circle (before, PostgreSQL broke a deadlock after
    deadlock_timeout, failing one of them)."""
    import time

    import psycopg2

    receiver.fail_always = True  # the outcome is recorded, and the endpoint marked failing
    inv = api.invoice(admin, alice, bob, amount="100000.00")
    for _ in range(ROUNDS):
        endpoint_id = _endpoint(api, admin, receiver.url)
        holder = psycopg2.connect(api.database_url)
        try:
            with holder.cursor() as cur:
                cur.execute("SELECT 1 FROM webhook_endpoints WHERE id = %s FOR NO KEY UPDATE",
                            (endpoint_id,))
            deleting, deleted = _delete_in_background(racer, admin, endpoint_id)
            _waiting(api, "DELETE FROM%webhook_endpoints%", 1)  # the DELETE first in line
            assert api.pay(admin, inv["id"], "1.00").status_code == 201  # a delivery, due
            _waiting(api, "%FOR NO KEY UPDATE%", 1)  # then a worker recording its attempt
        finally:
            holder.rollback()
            released = time.monotonic()
            holder.close()
        deleting.join(30)
        assert deleted and deleted[0][0].status_code == 204, deleted
        assert deleted[0][1] - released < 0.8, "the DELETE waited for a deadlock to be broken"


def test_a_provider_payment_racing_a_change_of_payer_is_recorded(
        api: Api, racer: str, admin: Account, alice: Account, bob: Account) -> None:
    """The invoice's payer changes (not yet committed) while a provider payment waits for
    the invoice's lock: the payment is recorded against the invoice as it now is. (With the
    parties joined under the lock, the re-checked row failed the join and the event was
    answered, and kept, as 404 invoice_not_found.) Three ways, in turn: a payment as it is
    (one statement), an overpayment (the transaction that credits the excess), and a payer
    made in the same transaction as the change, whom the one statement's snapshot cannot
    see (it moves nothing, and the transaction records the payment)."""
    import psycopg2

    carol, dave = api.user(name="carol"), api.user(name="dave")
    for n in range(ROUNDS):
        way = n % 3
        inv = api.invoice(admin, alice, bob, amount="100")
        holder = psycopg2.connect(api.database_url)
        try:
            with holder.cursor() as cur:
                payer = (carol if n % 2 == 0 else dave).id
                if way == 2:
                    payer = str(uuid.uuid4())
                    cur.execute(
                        "INSERT INTO users SELECT (jsonb_populate_record(NULL::users, to_jsonb(u)"
                        " || jsonb_build_object('id', %s::text, 'username', %s::text, 'email',"
                        " %s::text))).* FROM users u WHERE u.id = %s",
                        (payer, f"new{n}", f"new{n}@example.com", carol.id))
                cur.execute("UPDATE invoices SET payer_id = %s WHERE id = %s", (payer, inv["id"]))
            paid = "130" if way == 1 else "30"
            body, headers = signed({"id": evt(), "invoice_id": inv["id"], "amount_paid": paid})
            with ThreadPoolExecutor(1) as pool:
                sent = pool.submit(httpx.post, f"{racer}/webhooks/payment/success",
                                   content=body, headers=headers, timeout=30)
                _waiting(api, "WITH claim AS%" if way == 1 else "WITH stored AS%", 1)
                holder.commit()
                r = sent.result(30)
        finally:
            holder.close()
        assert r.status_code == 200, r.text
        assert r.json()["invoice"]["amount_recovered"] == ("100.00" if way == 1 else "30.00")
        assert r.json()["invoice"]["payer_id"] == payer
        assert r.json()["invoice"] == api.client.get(
            f"/invoices/{inv['id']}", headers=admin.headers).json()
    assert_reconciles(api)
