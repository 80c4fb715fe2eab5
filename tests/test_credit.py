"""Customer credit: grants, overpayments (provider and API), credit applied to invoices as
payments, and refunds of those payments returning to credit; the credit ledger always sums
to the balance (`reconcile`)."""

from __future__ import annotations

from tests.support import Account, Api, assert_problem, assert_reconciles, deliver, evt


def balance(api: Api, viewer: Account, user: Account) -> dict[str, str]:
    r = api.client.get(f"/users/{user.id}/credit", headers=viewer.headers)
    assert r.status_code == 200, r.text
    return {b["currency"]: b["amount"] for b in r.json()["balances"]}


def entries(api: Api, viewer: Account, user: Account) -> list[dict]:
    r = api.client.get(f"/users/{user.id}/credit/entries", headers=viewer.headers)
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["data"]))  # oldest first


def grant(api: Api, admin: Account, user: Account, amount: str, currency: str = "INR"):
    return api.client.post(f"/users/{user.id}/credit", headers=admin.headers, json={
        "amount": amount, "currency": currency, "reason": "goodwill"})


def apply(api: Api, admin: Account, invoice_id: str, amount: str | None = None):
    return api.client.post(f"/invoices/{invoice_id}/apply-credit", headers=admin.headers,
                           json={} if amount is None else {"amount": amount})


def event_types(api: Api, admin: Account, invoice_id: str) -> list[str]:
    r = api.client.get("/events", headers=admin.headers,
                       params={"invoice_id": invoice_id, "limit": 100})
    return [e["type"] for e in reversed(r.json()["data"])]


def test_grants_show_in_the_balance_and_the_ledger(api: Api, admin: Account,
                                                   alice: Account, bob: Account) -> None:
    before = balance(api, alice, alice).get("INR", "0.00")
    r = grant(api, admin, alice, "12.50")
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["amount"] == "12.50" and entry["source"] == "grant"
    assert entry["reason"] == "goodwill" and entry["user_id"] == alice.id
    assert grant(api, admin, alice, "3", "USD").status_code == 201
    got = balance(api, alice, alice)  # the user sees their own
    assert float(got["INR"]) - float(before) == 12.5 and got["USD"] == "3.00"
    assert entries(api, admin, alice)[-1]["currency"] == "USD"
    assert_problem(api.client.get(f"/users/{alice.id}/credit", headers=bob.headers), 403)
    assert_problem(grant(api, admin, alice, "1.001"), 422)  # more decimals than INR has
    assert_problem(grant(api, admin, alice, "0"), 422)
    assert_problem(api.client.post("/users/00000000-0000-4000-8000-000000000000/credit",
                                   headers=admin.headers, json={
                                       "amount": "1", "currency": "INR", "reason": "x"}),
                   404, "user_not_found")
    assert_reconciles(api)


def test_a_provider_overpayment_pays_what_is_due_and_credits_the_rest(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100.00")
    assert api.pay(admin, inv["id"], "30").status_code == 201
    r = deliver(api, "payment/success", {"id": evt(), "invoice_id": inv["id"],
                                         "amount_paid": "100"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["transaction"]["amount"] == "70.00" and body["credited"] == "30.00"
    assert body["invoice"]["status"] == "completed"
    assert balance(api, admin, alice) == {"INR": "30.00"}
    last = entries(api, admin, alice)[-1]
    assert last["source"] == "overpayment" and last["invoice_id"] == inv["id"]
    assert last["transaction_id"] == body["transaction"]["id"]
    assert event_types(api, admin, inv["id"])[-3:] == [
        "payment.succeeded", "invoice.completed", "credit.granted"]
    assert_reconciles(api)


def test_an_api_overpayment_is_refused_unless_it_asks_for_credit(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="50.00")
    assert_problem(api.pay(admin, inv["id"], "60"), 409, "amount_exceeds_due")
    r = api.pay(admin, inv["id"], "60", overpayment="credit")
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == "50.00" and r.json()["credited"] == "10.00"
    assert balance(api, admin, alice) == {"INR": "10.00"}
    # Nothing is due any more: that would be a grant, not a payment.
    assert_problem(api.pay(admin, inv["id"], "5", overpayment="credit"), 409,
                   "amount_exceeds_due")
    assert balance(api, admin, alice) == {"INR": "10.00"}
    assert_reconciles(api)


def test_credit_pays_invoices_and_refunds_return_it(api: Api, admin: Account,
                                                    alice: Account, bob: Account) -> None:
    assert grant(api, admin, alice, "70").status_code == 201
    inv = api.invoice(admin, alice, bob, amount="100.00")
    assert_problem(apply(api, admin, inv["id"], "80"), 409, "amount_exceeds_credit")
    assert_problem(apply(api, admin, inv["id"], "101"), 409, "amount_exceeds_due")
    r = apply(api, admin, inv["id"], "40")
    assert r.status_code == 201, r.text
    paid = r.json()
    assert paid["payment_mode"] == "credit" and paid["source"] == "credit"
    assert paid["kind"] == "payment" and paid["amount"] == "40.00"
    assert balance(api, admin, alice) == {"INR": "30.00"}
    rest = apply(api, admin, inv["id"])  # as much as both allow: the 30 left
    assert rest.status_code == 201 and rest.json()["amount"] == "30.00", rest.text
    assert balance(api, admin, alice) == {}
    assert_problem(apply(api, admin, inv["id"]), 409, "amount_exceeds_credit")
    assert api.pay(admin, inv["id"], "30").status_code == 201  # completed
    # Refunds return to credit what came from credit (70), no more.
    assert api.pay(admin, inv["id"], "50", kind="refund").status_code == 201
    assert balance(api, admin, alice) == {"INR": "50.00"}
    assert api.pay(admin, inv["id"], "40", kind="refund").status_code == 201
    assert balance(api, admin, alice) == {"INR": "70.00"}
    assert api.pay(admin, inv["id"], "10", kind="refund").status_code == 201
    assert balance(api, admin, alice) == {"INR": "70.00"}
    sources = [e["source"] for e in entries(api, admin, alice)]
    assert sources == ["grant", "applied", "applied", "refund", "refund"]
    assert [e["amount"] for e in entries(api, admin, alice)] == [
        "70.00", "-40.00", "-30.00", "50.00", "20.00"]
    types = event_types(api, admin, inv["id"])
    assert types.count("credit.applied") == 2 and types.count("credit.granted") == 2
    assert_reconciles(api)


def test_credit_is_not_applied_to_a_void_invoice(api: Api, admin: Account, alice: Account,
                                                 bob: Account) -> None:
    assert grant(api, admin, alice, "5").status_code == 201
    inv = api.invoice(admin, alice, bob, amount="10.00")
    assert api.client.post(f"/invoices/{inv['id']}/void",
                           headers=admin.headers).status_code == 200
    assert_problem(apply(api, admin, inv["id"]), 409, "invoice_void")
    assert_problem(apply(api, admin, "00000000-0000-4000-8000-000000000000"), 404,
                   "invoice_not_found")


def test_apply_credit_with_a_key_is_applied_once(api: Api, admin: Account, alice: Account,
                                                 bob: Account) -> None:
    assert grant(api, admin, alice, "20").status_code == 201
    before = balance(api, admin, alice)["INR"]
    inv = api.invoice(admin, alice, bob, amount="10.00")
    headers = {**admin.headers, "Idempotency-Key": f"apply-{inv['id']}"}
    first = api.client.post(f"/invoices/{inv['id']}/apply-credit", headers=headers,
                            json={"amount": "4"})
    again = api.client.post(f"/invoices/{inv['id']}/apply-credit", headers=headers,
                            json={"amount": "4"})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert float(before) - float(balance(api, admin, alice)["INR"]) == 4


def test_a_provider_refund_never_returns_credit(api: Api, admin: Account, alice: Account,
                                                bob: Account) -> None:
    """The provider refunds by its own means what it was paid; credit paid the rest."""
    assert grant(api, admin, alice, "60").status_code == 201
    inv = api.invoice(admin, alice, bob, amount="100.00")
    assert apply(api, admin, inv["id"], "60").status_code == 201
    assert deliver(api, "payment/success", {"id": evt(), "invoice_id": inv["id"],
                                            "amount_paid": "40"}).status_code == 200
    too_much = deliver(api, "refund", {"id": evt(), "invoice_id": inv["id"],
                                       "refunded_amount": "50"})
    assert_problem(too_much, 409, "amount_exceeds_refundable")
    ok = deliver(api, "refund", {"id": evt(), "invoice_id": inv["id"],
                                 "refunded_amount": "40"})
    assert ok.status_code == 200, ok.text
    assert balance(api, admin, alice) == {}  # nothing came back as credit
    # An admin's refund of the rest returns it to credit.
    assert api.pay(admin, inv["id"], "60", kind="refund").status_code == 201
    assert balance(api, admin, alice) == {"INR": "60.00"}
    assert_reconciles(api)


def test_a_refused_keyed_overpayment_credits_nothing(api: Api, admin: Account,
                                                     alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="10.00")
    assert api.pay(admin, inv["id"], "10").status_code == 201
    headers = {**admin.headers, "Idempotency-Key": f"over-{inv['id']}"}
    body = {"invoice_id": inv["id"], "amount": "5", "payment_mode": "upi",
            "overpayment": "credit"}
    for _ in range(2):
        r = api.client.post("/invoice-transactions", headers=headers, json=body)
        assert_problem(r, 409, "amount_exceeds_due")
    assert balance(api, admin, alice) == {}
    assert entries(api, admin, alice) == []
    assert_reconciles(api)


def test_a_balance_past_the_largest_amount_is_refused(api: Api, admin: Account,
                                                      alice: Account) -> None:
    assert grant(api, admin, alice, "9999999999999.99").status_code == 201
    assert_problem(grant(api, admin, alice, "0.01"), 409, "credit_balance_too_large")
    assert balance(api, admin, alice) == {"INR": "9999999999999.99"}
    assert_reconciles(api)


def test_an_overpayment_the_balance_cannot_hold_moves_nothing(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    """The excess would push the payer's balance past the largest amount: the whole payment
    is refused (409) before anything is written, by the provider's event as by the API."""
    assert grant(api, admin, alice, "9999999999999.99").status_code == 201
    inv = api.invoice(admin, alice, bob, amount="10")
    r = deliver(api, "payment/success", {"id": evt(), "invoice_id": inv["id"],
                                          "amount_paid": "12"})
    assert_problem(r, 409, "credit_balance_too_large")
    r = api.client.post("/invoice-transactions", headers=admin.headers, json={
        "invoice_id": inv["id"], "amount": "12", "payment_mode": "upi",
        "overpayment": "credit"})
    assert_problem(r, 409, "credit_balance_too_large")
    after = api.client.get(f"/invoices/{inv['id']}", headers=admin.headers).json()
    assert after["amount_recovered"] == "0.00" and after["status"] == "pending"
    assert api.db.scalar("SELECT count(*) FROM invoice_transactions") == 0
    assert balance(api, admin, alice) == {"INR": "9999999999999.99"}
    assert_reconciles(api)


def test_a_refund_marked_overpayment_credit_without_a_key_is_a_refund(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    """`overpayment` only means something for a payment; a refund sent with it (and no
    Idempotency-Key) is recorded like any refund."""
    inv = api.invoice(admin, alice, bob, amount="10")
    assert api.pay(admin, inv["id"], "10").status_code == 201
    r = api.client.post("/invoice-transactions", headers=admin.headers, json={
        "invoice_id": inv["id"], "amount": "4", "payment_mode": "upi", "kind": "refund",
        "overpayment": "credit"})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "refund" and r.json()["amount"] == "4.00"
