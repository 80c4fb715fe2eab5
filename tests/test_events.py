"""Outgoing events: written with the change, listed, and delivered to a real local HTTP
receiver by the server's own delivery worker, signed per Standard Webhooks."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.support import Account, Api, Received, Receiver, assert_problem, deliver, evt


def events(api: Api, admin: Account, invoice_id: str) -> list[dict]:
    """Oldest first."""
    r = api.client.get("/events", headers=admin.headers,
                       params={"invoice_id": invoice_id, "limit": 100})
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["data"]))


def endpoint(api: Api, admin: Account, url: str, types: list[str] | None = None) -> dict:
    r = api.client.post("/webhook-endpoints", headers=admin.headers,
                        json={"url": url, "event_types": types or ["*"]})
    assert r.status_code == 201, r.text
    assert r.json()["secret"].startswith("whsec_")
    return r.json()


def test_a_payment_through_the_api_writes_exactly_its_events(api: Api, admin: Account,
                                                              alice: Account, bob: Account
                                                              ) -> None:
    inv = api.invoice(admin, alice, bob, amount="100.00")
    first = api.pay(admin, inv["id"], "40").json()
    last = api.pay(admin, inv["id"], "60").json()
    refund = api.pay(admin, inv["id"], "10", kind="refund").json()
    seen = events(api, admin, inv["id"])
    assert [e["type"] for e in seen] == [
        "invoice.created", "payment.succeeded", "payment.succeeded", "invoice.completed",
        "refund.succeeded"]
    assert seen[0]["data"]["object"] == inv
    assert [e["data"]["object"] for e in seen[1:3]] == [first, last]
    completed = seen[3]["data"]["object"]
    assert completed["status"] == "completed" and completed["amount_due"] == "0.00"
    assert completed["payer"] == {"id": alice.id, "username": alice.username,
                                  "email": alice.email}
    assert seen[4]["data"]["object"] == refund
    one = api.client.get(f"/events/{seen[1]['id']}", headers=admin.headers)
    assert one.status_code == 200 and one.json() == seen[1]


def test_a_refused_payment_writes_no_event(api: Api, admin: Account, alice: Account,
                                           bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="10.00")
    assert_problem(api.pay(admin, inv["id"], "11"), 409, "amount_exceeds_due")
    assert_problem(api.pay(admin, inv["id"], "1", kind="refund"), 409,
                   "amount_exceeds_refundable")
    assert [e["type"] for e in events(api, admin, inv["id"])] == ["invoice.created"]


def test_provider_webhooks_write_their_events(api: Api, admin: Account, alice: Account,
                                              bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="50.00")
    failed = deliver(api, "payment/failure", {"id": evt(), "invoice_id": inv["id"],
                                              "amount": "50"})
    assert failed.status_code == 200, failed.text
    paid = deliver(api, "payment/success", {"id": evt(), "invoice_id": inv["id"],
                                            "amount_paid": "50"})
    assert paid.status_code == 200, paid.text
    again = deliver(api, "payment/success", {"id": paid.json()["event_id"],
                                             "invoice_id": inv["id"], "amount_paid": "50"})
    assert again.json()["duplicate"] is True
    seen = events(api, admin, inv["id"])
    assert [e["type"] for e in seen] == ["invoice.created", "payment.failed",
                                         "payment.succeeded", "invoice.completed"]
    assert seen[2]["data"]["object"] == paid.json()["transaction"]
    assert seen[1]["data"]["object"]["status"] == "failed"


def test_changes_and_deletion_write_events(api: Api, admin: Account, alice: Account,
                                           bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="30.00")
    r = api.client.patch(f"/invoices/{inv['id']}", headers=admin.headers,
                         json={"description": "renamed", "amount": "30"})
    assert r.status_code == 200
    paid = api.pay(admin, inv["id"], "20")
    assert paid.status_code == 201
    r = api.client.patch(f"/invoices/{inv['id']}", headers=admin.headers,
                         json={"amount": "20"})  # lowered to what was paid: completed
    assert r.status_code == 200 and r.json()["status"] == "completed"
    other = api.invoice(admin, alice, bob)
    assert api.client.delete(f"/invoices/{other['id']}", headers=admin.headers
                             ).status_code == 204
    seen = events(api, admin, inv["id"])
    assert [e["type"] for e in seen] == ["invoice.created", "invoice.updated",
                                         "payment.succeeded", "invoice.updated",
                                         "invoice.completed"]
    assert seen[1]["previous"] == {"description": "test invoice"}
    assert seen[3]["previous"] == {"amount": "30.00", "amount_due": "10.00",
                                   "status": "partially_paid"}
    gone = events(api, admin, other["id"])
    assert [e["type"] for e in gone] == ["invoice.created", "invoice.deleted"]
    assert gone[1]["data"]["object"] == other


def test_deliveries_are_signed_and_verify_with_the_standard_library(
        api: Api, admin: Account, alice: Account, bob: Account, receiver: Receiver) -> None:
    hook = endpoint(api, admin, receiver.url, ["payment.succeeded", "invoice.completed"])
    inv = api.invoice(admin, alice, bob, amount="5.00")
    api.pay(admin, inv["id"], "5")
    got = receiver.wait_for(2)
    assert [g.json()["type"] for g in got] == ["payment.succeeded", "invoice.completed"]
    for g in got:
        assert Webhook(hook["secret"]).verify(g.body, g.headers) == g.json()
        assert g.headers["webhook-id"] == g.json()["id"]
        assert g.headers["content-type"] == "application/json"
        stored = api.client.get(f"/events/{g.json()['id']}", headers=admin.headers).json()
        assert stored == g.json()
    try:
        Webhook("whsec_" + "A" * 43 + "=").verify(got[0].body, got[0].headers)
        raise AssertionError("another secret verified")
    except WebhookVerificationError:
        pass


@pytest.mark.faults  # it logs the event it cannot render, on purpose
def test_an_event_that_cannot_be_rendered_fails_alone(
        api: Api, admin: Account, alice: Account, bob: Account, receiver: Receiver) -> None:
    """A delivery whose event cannot be rendered is recorded as a failed attempt, and the
    others claimed with it go out once each (before, the batch's outcomes were lost and
    the others were sent again every time their lease ran out)."""
    hook = endpoint(api, admin, receiver.url, ["payment.succeeded"])
    seq = api.db.scalar(
        "INSERT INTO events (id, type, invoice_id, created_at, data) VALUES (%s, "
        "'payment.succeeded', NULL, now(), '{\"transaction\": {\"created_at\": \"x\"}}') "
        "RETURNING seq", ("evt_" + uuid.uuid4().hex,))
    api.db.rows("INSERT INTO deliveries (event_seq, endpoint_id, next_attempt_at, created_at, "
                "updated_at) VALUES (%s, %s, now(), now(), now())", (seq, hook["id"]))
    try:
        inv = api.invoice(admin, alice, bob, amount="5.00")
        api.pay(admin, inv["id"], "2")
        api.pay(admin, inv["id"], "3")
        got = receiver.wait_for(2)
        attempt = api.db.rows(
            "SELECT a.error, d.status FROM delivery_attempts a JOIN deliveries d "
            "ON d.id = a.delivery_id WHERE d.event_seq = %s", (seq,))
        assert attempt == [{"error": "the event could not be sent: ValueError",
                            "status": "pending"}]
        time.sleep(1.5)  # longer than a poll: nothing is sent again
        assert len(receiver.received) == 2, [g.json()["type"] for g in receiver.received]
        assert {g.json()["data"]["object"]["amount"] for g in got} == {"2.00", "3.00"}
    finally:  # its retry would log the failure again during the next tests
        api.db.rows("DELETE FROM events WHERE seq = %s", (seq,))


def test_a_failing_receiver_gets_retries_with_growing_delays_and_the_same_id(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    receiver = Receiver(statuses=[500, 500, 200])
    try:
        endpoint(api, admin, receiver.url, ["invoice.created"])
        inv = api.invoice(admin, alice, bob)
        got = receiver.wait_for(3)
    finally:
        receiver.close()
    assert len({g.headers["webhook-id"] for g in got}) == 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert 0.25 < gaps[0] < gaps[1]  # DELIVERY_RETRY_DELAYS=0.3,0.6,… in the tests
    event_id = got[0].json()["id"]
    assert events(api, admin, inv["id"])[0]["id"] == event_id
    attempts = api.client.get(f"/events/{event_id}/deliveries",
                              headers=admin.headers).json()["data"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert attempts[-1]["delivery_status"] == "delivered"
    assert attempts[0]["next_attempt_at"] is not None and attempts[-1]["next_attempt_at"] is None


def test_events_of_one_invoice_arrive_in_order_while_others_go_on(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    refused: list[str] = []

    def refuse_held_twice(got: Received) -> int | None:
        """The held invoice (the one of 10.00) has its first event refused twice."""
        event = got.json()
        if event["type"] == "invoice.created" and \
                event["data"]["object"]["amount"] == "10.00" and len(refused) < 2:
            refused.append(event["id"])
            return 500
        return None

    receiver = Receiver(respond=refuse_held_twice)  # the held invoice's first event, twice
    try:
        endpoint(api, admin, receiver.url)
        held = api.invoice(admin, alice, bob, amount="10")
        api.pay(admin, held["id"], "4")
        api.pay(admin, held["id"], "6")
        free = api.invoice(admin, alice, bob, amount="20")
        got = receiver.wait_for(2 + 5)
    finally:
        receiver.close()
    order = [(g.json()["invoice_id"], g.json()["type"]) for g in got
             if g.headers.get("webhook-id")]
    held_seen = [t for i, t in order if i == held["id"]]
    trail = api.db.rows("SELECT d.id, e.type, d.status, a.attempt, a.status_code, a.created_at "
                        "FROM deliveries d JOIN events e ON e.seq = d.event_seq LEFT JOIN "
                        "delivery_attempts a ON a.delivery_id = d.id ORDER BY a.created_at")
    assert held_seen[:3] == ["invoice.created"] * 3, (order, trail)  # refused twice, then ok
    assert held_seen[3:] == ["payment.succeeded", "payment.succeeded", "invoice.completed"]
    assert order.index((free["id"], "invoice.created")) < \
        order.index((held["id"], "payment.succeeded"))  # not held up by the other invoice


def test_rotation_signs_with_both_secrets_until_the_overlap_ends(
        api: Api, admin: Account, alice: Account, bob: Account, receiver: Receiver) -> None:
    hook = endpoint(api, admin, receiver.url, ["invoice.created"])
    r = api.client.post(f"/webhook-endpoints/{hook['id']}/rotate-secret", headers=admin.headers)
    assert r.status_code == 200
    new = r.json()["secret"]
    assert new != hook["secret"] and "secret" not in api.client.get(
        f"/webhook-endpoints/{hook['id']}", headers=admin.headers).json()
    api.invoice(admin, alice, bob)
    during = receiver.wait_for(1)[0]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (hook["secret"], new):
        Webhook(secret).verify(during.body, during.headers)
    # The overlap ends (SECRET_ROTATION_OVERLAP_SECONDS, 24 h): only the new one signs.
    api.db.rows("UPDATE webhook_endpoints SET previous_secret_expires_at = now() "
                "- interval '1 second' WHERE id = %s", (hook["id"],))
    api.invoice(admin, alice, bob)
    after = receiver.wait_for(2)[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(after.body, after.headers)
    try:
        Webhook(hook["secret"]).verify(after.body, after.headers)
        raise AssertionError("the old secret still verifies after the overlap")
    except WebhookVerificationError:
        pass


def test_an_endpoint_failing_long_enough_is_disabled_until_re_enabled(
        api: Api, admin: Account, alice: Account, bob: Account, receiver: Receiver) -> None:
    receiver.fail_always = True
    hook = endpoint(api, admin, receiver.url, ["invoice.created"])
    # Failing for six days already (ENDPOINT_DISABLE_AFTER_SECONDS is five).
    api.db.rows("UPDATE webhook_endpoints SET failing_since = now() - interval '6 days' "
                "WHERE id = %s", (hook["id"],))
    inv = api.invoice(admin, alice, bob)
    receiver.wait_for(1)
    shown = api.client.get(f"/webhook-endpoints/{hook['id']}", headers=admin.headers).json()
    for _ in range(100):
        if not shown["enabled"]:
            break
        shown = api.client.get(f"/webhook-endpoints/{hook['id']}",
                               headers=admin.headers).json()
    assert shown["enabled"] is False and "every delivery failed since" in \
        shown["disabled_reason"]
    count = len(receiver.received)
    api.invoice(admin, alice, bob)  # no delivery is queued for a disabled endpoint
    assert api.db.scalar("SELECT count(*) FROM deliveries") == 1
    receiver.fail_always = False
    r = api.client.patch(f"/webhook-endpoints/{hook['id']}", headers=admin.headers,
                         json={"enabled": True})
    assert r.json()["enabled"] is True and r.json()["disabled_reason"] is None
    got = receiver.wait_for(count + 1)  # the pending delivery goes out again
    assert got[-1].json()["invoice_id"] == inv["id"]


def test_redeliver_sends_a_delivered_event_again(api: Api, admin: Account, alice: Account,
                                                 bob: Account, receiver: Receiver) -> None:
    hook = endpoint(api, admin, receiver.url, ["invoice.created"])
    api.invoice(admin, alice, bob)
    first = receiver.wait_for(1)[0]
    r = api.client.post(f"/events/{first.json()['id']}/redeliver", headers=admin.headers,
                        json={"endpoint_id": hook["id"]})
    assert r.status_code == 202 and r.json()["endpoint_ids"] == [hook["id"]]
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.body == first.body
    assert_problem(api.client.post("/events/evt_nope/redeliver", headers=admin.headers), 404,
                   "event_not_found")
    assert_problem(api.client.post(f"/events/{first.json()['id']}/redeliver",
                                   headers=admin.headers,
                                   json={"endpoint_id": str(uuid.uuid4())}),
                   404, "endpoint_not_found")


def test_deleting_an_endpoint_drops_its_pending_deliveries(
        api: Api, admin: Account, alice: Account, bob: Account, receiver: Receiver) -> None:
    receiver.fail_always = True
    hook = endpoint(api, admin, receiver.url)
    api.invoice(admin, alice, bob)
    receiver.wait_for(1)
    assert api.db.scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'") == 1
    assert api.client.delete(f"/webhook-endpoints/{hook['id']}", headers=admin.headers
                             ).status_code == 204
    assert api.db.scalar("SELECT count(*) FROM deliveries") == 0
    assert_problem(api.client.get(f"/webhook-endpoints/{hook['id']}", headers=admin.headers),
                   404, "endpoint_not_found")


def test_only_admins_see_events_and_endpoints(api: Api, alice: Account) -> None:
    for method, path in (("GET", "/events"), ("GET", "/webhook-endpoints"),
                         ("POST", "/webhook-endpoints")):
        assert_problem(api.client.request(method, path, headers=alice.headers,
                                          json={"url": "https://x.example", "event_types": ["*"]}),
                       403, "forbidden")
        assert_problem(api.client.request(method, path), 401, "not_authenticated")


def test_endpoint_input_is_checked(api: Api, admin: Account) -> None:
    for body in ({"url": "file:///etc/passwd", "event_types": ["*"]},
                 {"url": "https://u:p@merchant.example/h", "event_types": ["*"]},
                 {"url": "https://merchant.example/h", "event_types": ["invoice.nope"]},
                 {"url": "https://merchant.example/h", "event_types": []}):
        r = api.client.post("/webhook-endpoints", headers=admin.headers, json=body)
        assert r.status_code == 422, (body, r.text)
    assert_problem(api.client.get("/events", headers=admin.headers,
                                  params={"cursor": "nonsense"}), 422, "invalid_cursor")


def test_the_local_receiver_prints_events_and_checks_signatures() -> None:
    import subprocess
    import sys
    import time

    import httpx

    from app.events.signing import headers, new_secret
    from tests.support import ROOT, free_port

    secret, port = new_secret(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", "receive-events", "--port", str(port),
                             "--secret", secret], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert "receiving events" in proc.stdout.readline()
        body = b'{"id": "evt_1", "type": "invoice.created", "invoice_id": "i1"}'
        for key in (secret, new_secret()):
            sent = headers([key], "evt_1", int(time.time()), body)
            r = httpx.post(f"http://127.0.0.1:{port}/", content=body, headers=sent)
            assert r.status_code == 200
        assert "invoice.created evt_1 invoice i1  signature verified" in proc.stdout.readline()
        assert "DOES NOT VERIFY" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)
