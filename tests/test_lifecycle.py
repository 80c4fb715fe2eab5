"""The invoice lifecycle: void, uncollectible and collectible, overdue; every transition
allowed and refused, with its documented code, and the events they write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support import Account, Api, assert_problem, deliver, evt


def post(api: Api, admin: Account, invoice_id: str, action: str):
    return api.client.post(f"/invoices/{invoice_id}/{action}", headers=admin.headers)


def event_types(api: Api, admin: Account, invoice_id: str) -> list[str]:
    r = api.client.get("/events", headers=admin.headers,
                       params={"invoice_id": invoice_id, "limit": 100})
    return [e["type"] for e in reversed(r.json()["data"])]


def test_void_is_final(api: Api, admin: Account, alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100.00")
    r = post(api, admin, inv["id"], "void")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "void" and r.json()["overdue"] is False
    assert_problem(api.pay(admin, inv["id"], "1"), 409, "invoice_void")
    assert_problem(api.pay(admin, inv["id"], "1", kind="refund"), 409, "invoice_void")
    assert_problem(api.client.patch(f"/invoices/{inv['id']}", headers=admin.headers,
                                    json={"description": "x"}), 409, "invoice_void")
    assert_problem(post(api, admin, inv["id"], "void"), 409, "invoice_void")
    assert_problem(post(api, admin, inv["id"], "mark-uncollectible"), 409, "invoice_void")
    assert_problem(post(api, admin, inv["id"], "mark-collectible"), 409, "invoice_void")
    # The provider took money for it anyway: it goes to the payer's credit, not the invoice.
    paid = deliver(api, "payment/success", {"id": evt(), "invoice_id": inv["id"],
                                            "amount_paid": "1"})
    assert paid.status_code == 200, paid.text
    assert paid.json()["transaction"] is None and paid.json()["credited"] == "1.00"
    got = api.client.get(f"/invoices/{inv['id']}", headers=admin.headers).json()
    assert got["status"] == "void" and got["amount_recovered"] == "0.00"
    assert event_types(api, admin, inv["id"]) == ["invoice.created", "invoice.voided",
                                                  "credit.granted"]
    # The credit ledger keeps its invoice: it cannot be deleted now.
    assert_problem(api.client.delete(f"/invoices/{inv['id']}", headers=admin.headers), 409,
                   "invoice_has_transactions")


def test_void_with_money_moved_is_refused(api: Api, admin: Account, alice: Account,
                                          bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100.00")
    assert api.pay(admin, inv["id"], "10").status_code == 201
    assert_problem(post(api, admin, inv["id"], "void"), 409, "money_has_moved")
    assert api.pay(admin, inv["id"], "10", kind="refund").status_code == 201
    assert_problem(post(api, admin, inv["id"], "void"), 409, "money_has_moved")  # refunded
    assert_problem(post(api, admin, "00000000-0000-4000-8000-000000000000", "void"), 404,
                   "invoice_not_found")


def test_a_failed_attempt_does_not_stop_a_void(api: Api, admin: Account, alice: Account,
                                               bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100.00")
    assert deliver(api, "payment/failure", {
        "id": evt(), "invoice_id": inv["id"], "amount": "5"}).status_code == 200
    r = post(api, admin, inv["id"], "void")
    assert r.status_code == 200 and r.json()["status"] == "void", r.text


def test_uncollectible_until_paid_in_full(api: Api, admin: Account, alice: Account,
                                          bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100.00")
    assert api.pay(admin, inv["id"], "40").status_code == 201
    r = post(api, admin, inv["id"], "mark-uncollectible")
    assert r.status_code == 200 and r.json()["status"] == "uncollectible", r.text
    again = post(api, admin, inv["id"], "mark-uncollectible")  # changes nothing
    assert again.status_code == 200 and again.json()["status"] == "uncollectible"
    assert api.pay(admin, inv["id"], "10").status_code == 201  # it stays payable
    listed = api.client.get("/invoices", headers=admin.headers,
                            params={"status": "uncollectible"}).json()["data"]
    assert inv["id"] in {i["id"] for i in listed}
    back = post(api, admin, inv["id"], "mark-collectible")
    assert back.status_code == 200 and back.json()["status"] == "partially_paid", back.text
    assert post(api, admin, inv["id"], "mark-collectible").json()["status"] == "partially_paid"
    assert post(api, admin, inv["id"], "mark-uncollectible").status_code == 200
    paid = api.pay(admin, inv["id"], "50")
    assert paid.status_code == 201
    got = api.client.get(f"/invoices/{inv['id']}", headers=admin.headers).json()
    assert got["status"] == "completed"  # paid in full: no longer uncollectible
    assert_problem(post(api, admin, inv["id"], "mark-uncollectible"), 409, "invoice_paid")
    types = event_types(api, admin, inv["id"])
    assert types.count("invoice.uncollectible") == 2  # each time it became uncollectible
    assert types.count("invoice.updated") == 1  # mark-collectible, with the old status
    assert types[-1] == "invoice.completed"


def test_a_refund_after_uncollectible_shows_the_refund(api: Api, admin: Account,
                                                       alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="100.00")
    assert api.pay(admin, inv["id"], "40").status_code == 201
    assert post(api, admin, inv["id"], "mark-uncollectible").status_code == 200
    assert api.pay(admin, inv["id"], "40", kind="refund").status_code == 201
    got = api.client.get(f"/invoices/{inv['id']}", headers=admin.headers).json()
    assert got["status"] == "refunded"  # refunded / partially_refunded come first


def test_overdue_flag_and_filter(api: Api, admin: Account, alice: Account, bob: Account
                                 ) -> None:
    today = datetime.now(UTC).date()
    late = api.invoice(admin, alice, bob, amount="10", due_date=str(today - timedelta(days=1)))
    on_time = api.invoice(admin, alice, bob, amount="10", due_date=str(today))
    no_date = api.invoice(admin, alice, bob, amount="10")
    paid = api.invoice(admin, alice, bob, amount="10", due_date=str(today - timedelta(days=3)))
    void = api.invoice(admin, alice, bob, amount="10", due_date=str(today - timedelta(days=3)))
    assert api.pay(admin, paid["id"], "10").status_code == 201
    assert post(api, admin, void["id"], "void").status_code == 200
    flags = {i["id"]: api.client.get(f"/invoices/{i['id']}", headers=admin.headers)
             .json()["overdue"] for i in (late, on_time, no_date, paid, void)}
    assert flags == {late["id"]: True, on_time["id"]: False, no_date["id"]: False,
                     paid["id"]: False, void["id"]: False}
    mine = {late["id"], on_time["id"], no_date["id"], paid["id"], void["id"]}

    def listed(value: str) -> set[str]:
        r = api.client.get("/invoices", headers=admin.headers,
                           params={"overdue": value, "payer_id": alice.id, "limit": 100})
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["data"]} & mine

    assert listed("true") == {late["id"]}
    assert listed("false") == mine - {late["id"]}
    assert_problem(api.client.get("/invoices", headers=admin.headers,
                                  params={"overdue": "maybe"}), 422, "validation_error")


def _announce(api: Api) -> int:
    """One round of the overdue announcer (app/events/overdue.py), today as PostgreSQL's."""
    from app.events.overdue import _ANNOUNCE

    sql = _ANNOUNCE.source.replace(":today", "current_date").replace(":now", "now()")
    return api.db.scalar(sql)


def test_an_invoice_paid_then_refunded_is_checked_once_and_announced_when_due_again(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    """migrations/0008: the overdue index holds every invoice neither void nor completed,
    so one paid in full and then refunded (nothing due) is marked checked for its due
    date and leaves it; raising its amount makes it due, and then it is announced. (The
    server's own housekeeping may run a round too: the test looks at what is left.)"""
    settled = api.invoice(admin, alice, bob, amount="10")["id"]
    assert api.pay(admin, settled, "10").status_code == 201
    assert api.pay(admin, settled, "4", kind="refund").status_code == 201
    late = api.invoice(admin, alice, bob, amount="10")["id"]
    for invoice_id in (settled, late):  # both due two days ago
        api.db.rows("UPDATE invoices SET due_date = current_date - 2 WHERE id = %s",
                    (invoice_id,))
    candidates = ("SELECT id::text AS id FROM invoices WHERE overdue_notified_for IS "
                  "DISTINCT FROM due_date AND overdue_checked_for IS DISTINCT FROM due_date "
                  "AND status NOT IN ('void', 'completed')")

    def overdue_events(invoice_id: str) -> int:
        return event_types(api, admin, invoice_id).count("invoice.overdue")

    _announce(api)
    assert (overdue_events(late), overdue_events(settled)) == (1, 0)
    assert not {r["id"] for r in api.db.rows(candidates)} & {settled, late}  # both left it
    assert api.db.scalar("SELECT overdue_checked_for = due_date FROM invoices WHERE id = %s",
                         (settled,)) is True
    _announce(api)
    assert (overdue_events(late), overdue_events(settled)) == (1, 0)

    r = api.client.patch(f"/invoices/{settled}", headers=admin.headers, json={"amount": "25"})
    assert r.status_code == 200, r.text
    assert r.json()["overdue"] is True
    _announce(api)
    assert (overdue_events(late), overdue_events(settled)) == (1, 1)
    _announce(api)
    assert (overdue_events(late), overdue_events(settled)) == (1, 1)
