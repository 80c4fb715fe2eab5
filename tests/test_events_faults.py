"""Outgoing events survive crashes: delivery processes SIGKILLed mid-run and every database
connection dropped, and still every event reaches the receiver, in order per invoice.

These run on a database of their own, with a server whose in-process worker is off, so the
`deliver` processes started here are the only ones sending."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import httpx
import psycopg2
import pytest

from app.db.location import connect_kwargs
from tests.support import ROOT, Account, Api, Database, Receiver, Server, app_env

pytestmark = pytest.mark.slow

# A short send deadline makes a dead worker's lease run out in 3 s.
ENV = {"DELIVER_IN_PROCESS": "false", "DELIVERY_TIMEOUT_SECONDS": "1",
       "DELIVERY_CONCURRENCY": "4"}


@pytest.fixture
def own(own_database_url: str, password_hash: str, tmp_path) -> Iterator[Api]:
    """The module's database, emptied, and a server on it that does not deliver."""
    db = Database(own_database_url)
    db.reset()
    server = Server(own_database_url, tmp_path / "app.log", **ENV)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield Api(client, db, password_hash, own_database_url)
    server.stop()
    db.conn.close()


def start_deliverer(database_url: str, log, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app", "deliver"], cwd=ROOT,
                            env=app_env(database_url, **{**ENV, **extra}), stdout=log,
                            stderr=subprocess.STDOUT)


@contextmanager
def delivering(database_url: str, tmp_path, count: int = 1,
               **extra: str) -> Iterator[list[subprocess.Popen]]:
    """`count` deliver processes with these settings, stopped (and their log closed) after."""
    log = open(tmp_path / "deliver.log", "wb")
    processes = [start_deliverer(database_url, log, **extra) for _ in range(count)]
    try:
        yield processes
    finally:
        for p in processes:
            p.terminate()
            p.wait(15)
        log.close()


def drop_connections(database_url: str) -> int:
    conn = psycopg2.connect(**connect_kwargs(database_url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = 'payment-app'")
        dropped = cur.fetchone()[0]
    conn.close()
    return dropped


@pytest.mark.faults
def test_every_event_arrives_in_order_through_kills_and_dropped_connections(
        own: Api, tmp_path) -> None:
    api = own
    database_url = api.database_url
    admin, alice, bob = api.user("admin"), api.user(), api.user()
    receiver = Receiver(respond=lambda got: time.sleep(0.02))  # so kills land mid-send
    log = open(tmp_path / "deliver.log", "wb")
    deliverers = [start_deliverer(database_url, log) for _ in range(2)]
    try:
        c, h = api.client, admin.headers
        r = c.post("/webhook-endpoints", headers=h,
                   json={"url": receiver.url, "event_types": ["*"]})
        assert r.status_code == 201, r.text
        invoices = [api.invoice(admin, alice, bob, amount="100") for _ in range(20)]
        for n in range(200):
            if n == 80:  # every delivery process dies mid-run...
                assert all(p.poll() is None for p in deliverers), "a deliverer had died"
                for p in deliverers:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
            if n == 100:  # ...and comes back
                deliverers = [start_deliverer(database_url, log) for _ in range(2)]
            if n == 140:
                assert drop_connections(database_url) > 0
            inv = invoices[n % len(invoices)]
            for _ in range(5):  # a request that met a dropped connection may get 503: retry
                r = c.post("/invoice-transactions",
                           headers={**h, "Idempotency-Key": f"pay-{n}"}, json={
                               "invoice_id": inv["id"], "amount": "10", "payment_mode": "upi",
                               "reference": f"p{n}"}, timeout=30)
                if r.status_code != 503:
                    break
                time.sleep(0.2)
            assert r.status_code == 201, r.text
        expected = api.db.rows("SELECT id, invoice_id::text AS invoice_id FROM events "
                               "ORDER BY seq")
        assert len(expected) == 20 + 200 + 20  # created, paid, completed
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and api.db.scalar(
                "SELECT count(*) FROM deliveries WHERE status <> 'delivered'"):
            time.sleep(0.2)
        assert api.db.scalar("SELECT count(*) FROM deliveries WHERE status <> 'delivered'") == 0
        assert all(p.poll() is None for p in deliverers), "a deliverer had died"
    finally:
        for p in deliverers:
            p.terminate()
            p.wait(15)
        log.close()
        receiver.close()
    first_arrival: dict[str, int] = {}
    for i, got in enumerate(receiver.received):
        first_arrival.setdefault(got.headers["webhook-id"], i)
    assert set(first_arrival) == {e["id"] for e in expected}  # every event at least once
    for invoice_id in {e["invoice_id"] for e in expected}:
        mine = [e["id"] for e in expected if e["invoice_id"] == invoice_id]
        assert sorted(mine, key=first_arrival.__getitem__) == mine, invoice_id
    duplicates = len(receiver.received) - len(first_arrival)
    print(f"{len(first_arrival)} events, {duplicates} sent more than once")


def test_several_delivery_processes_send_each_delivery_once(
        own: Api, tmp_path) -> None:
    """Three `deliver` processes racing for the same queue: SKIP LOCKED and the lease mean
    no delivery is sent twice (nothing crashes here, so exactly once)."""
    api = own
    admin, alice, bob = api.user("admin"), api.user(), api.user()
    receiver = Receiver()
    log = open(tmp_path / "deliver.log", "wb")
    try:
        r = api.client.post("/webhook-endpoints", headers=admin.headers,
                            json={"url": receiver.url, "event_types": ["invoice.created"]})
        assert r.status_code == 201
        for _ in range(150):  # queued before anyone delivers: all due at once
            assert api.client.post("/invoices", headers=admin.headers, json={
                "payer_id": alice.id, "receiver_id": bob.id, "amount": "1",
                "description": "race"}).status_code == 201
        deliverers = [start_deliverer(api.database_url, log) for _ in range(3)]
        got = receiver.wait_for(150, timeout=60)
        time.sleep(1)  # a second send would come now
        assert all(p.poll() is None for p in deliverers), "a deliverer had died"
    finally:
        for p in locals().get("deliverers", []):
            p.terminate()
            p.wait(15)
        log.close()
        receiver.close()
    ids = [g.headers["webhook-id"] for g in receiver.received]
    assert len(ids) == len(set(ids)) == 150, len(ids)
    assert len(got) >= 150


def test_private_and_loopback_urls_are_refused_with_the_production_setting(
        api: Api, admin: Account, database_url: str, tmp_path) -> None:
    server = Server(database_url, tmp_path / "app.log", WEBHOOK_ALLOW_PRIVATE_URLS="false")
    try:
        for url in ("http://127.0.0.1:9000/", "http://localhost/hooks", "http://10.0.0.7/x",
                    "http://169.254.169.254/latest", "http://[::1]/x", "file:///etc/passwd",
                    "https://user:secret@merchant.example/x"):
            r = api.client.post(f"{server.url}/webhook-endpoints", headers=admin.headers,
                                json={"url": url, "event_types": ["*"]})
            assert r.status_code == 422, (url, r.text)
            assert r.json()["code"] in ("invalid_url", "validation_error"), r.text
        r = api.client.post(f"{server.url}/webhook-endpoints", headers=admin.headers,
                            json={"url": "https://93.184.215.14/hooks", "event_types": ["*"]})
        assert r.status_code == 201, r.text
        r = api.client.patch(f"{server.url}/webhook-endpoints/{r.json()['id']}",
                             headers=admin.headers, json={"url": "http://127.0.0.1/x"})
        assert r.status_code == 422 and r.json()["code"] == "invalid_url"
    finally:
        server.stop()


def test_an_address_that_became_private_is_refused_at_send_time(own: Api, tmp_path) -> None:
    """DNS rebinding: the endpoint was saved where private addresses were allowed (as a name
    that resolved to a public one would be); a deliverer with the production setting checks
    the address it connects to and sends nothing there."""
    api = own
    admin, alice, bob = api.user("admin"), api.user(), api.user()
    receiver = Receiver()
    try:
        with delivering(api.database_url, tmp_path, WEBHOOK_ALLOW_PRIVATE_URLS="false"):
            r = api.client.post("/webhook-endpoints", headers=admin.headers,
                                json={"url": receiver.url, "event_types": ["invoice.created"]})
            assert r.status_code == 201, r.text
            api.invoice(admin, alice, bob, amount="1")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not api.db.scalar(
                    "SELECT count(*) FROM delivery_attempts"):
                time.sleep(0.1)
            error = api.db.scalar("SELECT error FROM delivery_attempts")
            assert error and "127.0.0.1 is a loopback or private address" in error, error
            assert receiver.received == []
    finally:
        receiver.close()


def test_deliveries_behind_a_head_waiting_for_its_retry_are_held_to_its_time(
        own: Api, tmp_path) -> None:
    """While an invoice's first delivery waits 30 s for its retry, the later ones of that
    invoice are moved to that time (so the claim does not walk them on every poll) and
    none of them is sent before it."""
    api = own
    admin, alice, bob = api.user("admin"), api.user(), api.user()
    receiver = Receiver()
    receiver.fail_always = True
    try:
        with delivering(api.database_url, tmp_path, DELIVERY_RETRY_DELAYS="30,30"):
            r = api.client.post("/webhook-endpoints", headers=admin.headers,
                                json={"url": receiver.url, "event_types": ["*"]})
            assert r.status_code == 201, r.text
            inv = api.invoice(admin, alice, bob, amount="10")
            for _ in range(3):
                assert api.pay(admin, inv["id"], "1").status_code == 201
            query = ("SELECT d.next_attempt_at FROM deliveries d JOIN events e "
                     "ON e.seq = d.event_seq WHERE d.status = 'pending' ORDER BY e.seq")
            deadline = time.monotonic() + 15
            times = api.db.rows(query)
            while time.monotonic() < deadline and len({t["next_attempt_at"] for t in times}) > 1:
                time.sleep(0.2)
                times = api.db.rows(query)
            assert len(times) == 4 and len({t["next_attempt_at"] for t in times}) == 1, times
            assert len(receiver.received) == 1
            assert receiver.received[0].json()["type"] == "invoice.created"
    finally:
        receiver.close()


@pytest.mark.parametrize("pending", [2_000, 6_000, 20_000])
def test_the_claim_walks_its_index_at_every_queue_size(own: Api, pending: int) -> None:
    """The claim reads an endpoint's due deliveries from its index in due order, stops at
    the batch, and leases each by its key; it never reads the whole queue (it sorted it
    from about 5,000 pending deliveries to some 10,000, where the planner took the head
    check for a rare one, and scanned the table for the lease below some 20,000)."""
    from app.events.worker import CLAIM

    api = own
    endpoint = api.db.scalar(
        "INSERT INTO webhook_endpoints (id, url, event_types, secret, created_at, "
        "updated_at) VALUES (gen_random_uuid(), 'http://example.com/', '{*}', 's', now(), "
        "now()) RETURNING id")
    api.db.rows(  # the events of 1,000 invoices, queued as payments queue them
        "WITH e AS (INSERT INTO events (id, type, invoice_id, created_at, data) "
        "SELECT 'evt_' || g, 'payment.succeeded', "
        "('00000000-0000-4000-8000-' || lpad((g %% 1000)::text, 12, '0'))::uuid, "
        "now() - (%s - g) * interval '1 ms', '{}' FROM generate_series(1, %s) g "
        "RETURNING seq, invoice_id, created_at) "
        "INSERT INTO deliveries (event_seq, endpoint_id, invoice_id, next_attempt_at, "
        "created_at, updated_at) SELECT seq, %s, invoice_id, created_at, created_at, "
        "created_at FROM e", (pending, pending, endpoint))
    api.db.rows("ANALYZE deliveries")
    sql = CLAIM.source
    for name, value in {":lease_until": "now() + interval '21 s'", ":now": "now()",
                        ":batch": "32"}.items():
        sql = sql.replace(name, value)
    plan = "\n".join(r["QUERY PLAN"] for r in api.db.rows("EXPLAIN " + sql))
    assert "Seq Scan on deliveries" not in plan, plan
    assert "Index Scan using deliveries_endpoint_due_idx on deliveries h" in plan, plan
    assert "Index Scan using deliveries_pkey on deliveries d" in plan, plan


def test_invoice_overdue_is_written_once_across_two_delivery_processes(
        own: Api, tmp_path) -> None:
    """The clock moved two days on (CLOCK_SHIFT_DAYS), not slept: two `deliver` processes
    both find the invoices due tomorrow overdue, and each gets one invoice.overdue."""
    api = own
    admin, alice, bob = api.user("admin"), api.user(), api.user()
    tomorrow = str(date.today() + timedelta(days=1))
    due = [api.invoice(admin, alice, bob, amount="10", due_date=tomorrow)["id"]
           for _ in range(30)]
    paid = api.invoice(admin, alice, bob, amount="10", due_date=tomorrow)["id"]
    assert api.pay(admin, paid, "10").status_code == 201
    void = api.invoice(admin, alice, bob, amount="10", due_date=tomorrow)["id"]
    assert api.client.post(f"/invoices/{void}/void", headers=admin.headers).status_code == 200
    undated = api.invoice(admin, alice, bob, amount="10")["id"]
    query = ("SELECT invoice_id::text AS id, count(*) AS n FROM events "
             "WHERE type = 'invoice.overdue' GROUP BY invoice_id")
    with delivering(api.database_url, tmp_path, 2, CLOCK_SHIFT_DAYS="2") as deliverers:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(api.db.rows(query)) < len(due):
            time.sleep(0.2)
        time.sleep(6)  # a second housekeeping round of both processes
        assert all(p.poll() is None for p in deliverers), "a deliverer had died"
    counts = {r["id"]: r["n"] for r in api.db.rows(query)}
    assert counts == dict.fromkeys(due, 1), counts  # not paid, void or undated ones
    assert paid not in counts and void not in counts and undated not in counts
    event = api.client.get("/events", headers=admin.headers, params={
        "invoice_id": due[0], "type": "invoice.overdue"}).json()["data"][0]
    assert event["data"]["object"]["id"] == due[0]
    assert event["data"]["object"]["due_date"] == tomorrow
