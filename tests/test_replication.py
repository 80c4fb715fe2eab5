"""Losing the database machine: a primary and a synchronous hot standby of our own
(tests/clusters.py), the app on a multi-host URL that picks whichever server takes writes,
and reads routed to the standby with `READ_DATABASE_URL`.

These start two PostgreSQL clusters each (about 2 s) and skip, saying why, where the
server binaries are not installed."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.db.migrations import migrate
from tests.clusters import Pair, why_not
from tests.support import Api, Database, Receiver, Server, ledger_sums

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(why_not() is not None, reason=why_not() or "")]

DB = "payments"
PAYMENTS = 150
DETECTION = 1.0  # seconds between the primary's death and the standby's promotion


@pytest.fixture
def pair() -> Iterator[Pair]:
    pair = Pair()
    try:
        pair.primary.rows(f"CREATE DATABASE {DB}")
        migrate(pair.multi_host_url(DB))  # the migration runner on a multi-host URL
        yield pair
    finally:
        pair.close()


def api_on(pair: Pair, server: Server, password_hash: str) -> Api:
    url = pair.multi_host_url(DB)
    return Api(httpx.Client(base_url=server.url, timeout=30), Database(url), password_hash, url)


def read_connections(cluster) -> int:
    return cluster.rows("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = %s AND "
                        "application_name = 'payment-app-read'", (DB,))[0]["n"]


def test_reads_go_to_the_synchronous_standby_and_see_every_write(
        pair: Pair, password_hash: str, tmp_path: Path) -> None:
    assert pair.standby.rows("SELECT pg_is_in_recovery() AS r")[0]["r"] is True
    assert pair.primary.rows("SELECT sync_state FROM pg_stat_replication")[0]["sync_state"] \
        == "sync"
    server = Server(pair.multi_host_url(DB), tmp_path / "app.log", workers=2,
                    READ_DATABASE_URL=pair.standby.url(DB))
    try:
        api = api_on(pair, server, password_hash)
        admin, alice, bob = api.user("admin"), api.user(), api.user()
        inv = api.invoice(admin, alice, bob, amount="1000.00")
        for n in range(1, 101):  # each payment is visible to the very next read, 100 of 100
            assert api.pay(admin, inv["id"], "1.00").status_code == 201
            got = api.client.get(f"/invoices/{inv['id']}", headers=admin.headers)
            assert got.status_code == 200, got.text
            assert got.json()["amount_recovered"] == f"{n}.00", (n, got.json())
        listed = api.client.get("/invoices", headers=admin.headers)
        assert listed.status_code == 200 and listed.json()["data"][0]["id"] == inv["id"]
        assert read_connections(pair.standby) > 0  # the GETs were served by the standby
        assert read_connections(pair.primary) == 0
        # A write never goes to the read pool: the ledger is on the primary.
        assert pair.primary.rows("SELECT count(*) AS n FROM invoice_transactions",
                                 database=DB)[0]["n"] == 100
    finally:
        server.stop()


def test_a_read_only_server_answers_503_not_500(pair: Pair, password_hash: str,
                                                tmp_path: Path) -> None:
    """A URL that points writes at the standby (a misconfiguration, or a demoted primary):
    writes are refused with 503 database_unavailable, reads still work."""
    primary = Server(pair.multi_host_url(DB), tmp_path / "primary.log")
    try:
        api = api_on(pair, primary, password_hash)
        admin, alice = api.user("admin"), api.user()  # logging in writes
    finally:
        primary.stop()
    server = Server(pair.standby.url(DB), tmp_path / "app.log", ready_path="/health",
                    MIGRATE_ON_START="false")
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        r = client.post("/invoices", headers=admin.headers, json={
            "payer_id": alice.id, "receiver_id": admin.id, "amount": "1.00",
            "description": "refused"})
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "database_unavailable"
        assert client.get("/invoices", headers=admin.headers).status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503 and "standby" in ready.json()["detail"], ready.text
        log = server.log_text()
        assert "Traceback" not in log and '"status": 500' not in log
    finally:
        server.stop()


@pytest.mark.faults
def test_failover_mid_burst_loses_no_acknowledged_payment_and_no_event(
        pair: Pair, password_hash: str, tmp_path: Path) -> None:
    """150 keyed payments through 2 workers; a third of the way in, the primary stops
    (`-m immediate`) and, a second later, the standby is promoted. Clients retry with the
    same key on 503 or a dropped connection, as the API asks. The events of every
    acknowledged payment still reach the merchant's endpoint."""
    server = Server(pair.multi_host_url(DB), tmp_path / "app.log", workers=2,
                    READ_DATABASE_URL=pair.standby.url(DB), DB_ACQUIRE_TIMEOUT="3")
    receiver = Receiver()
    try:
        api = api_on(pair, server, password_hash)
        admin, alice, bob = api.user("admin"), api.user(), api.user()
        r = api.client.post("/webhook-endpoints", headers=admin.headers, json={
            "url": receiver.url, "event_types": ["payment.succeeded"]})
        assert r.status_code == 201, r.text
        inv = api.invoice(admin, alice, bob, amount="1000000.00")
        answers: dict[int, list[str]] = {}
        acknowledged: dict[int, tuple[str, float]] = {}
        lock = threading.Lock()

        def pay(n: int) -> None:
            seen = answers.setdefault(n, [])
            deadline = time.monotonic() + 120
            with httpx.Client(base_url=server.url, timeout=10) as client:
                while time.monotonic() < deadline:
                    try:
                        r = client.post("/invoice-transactions", headers={
                            **admin.headers, "Idempotency-Key": f"failover-{n}"}, json={
                            "invoice_id": inv["id"], "amount": "1.00", "payment_mode": "upi",
                            "reference": f"failover-{n}"})
                    except httpx.TransportError as exc:
                        seen.append(type(exc).__name__)
                        time.sleep(0.2)
                        continue
                    seen.append(str(r.status_code))
                    if r.status_code == 201:
                        with lock:
                            acknowledged[n] = (r.json()["id"], time.monotonic())
                        return
                    retry = r.status_code == 503 or (
                        r.status_code == 409 and r.json().get("code") ==
                        "idempotency_key_in_use")
                    assert retry, r.text
                    time.sleep(0.2)
            raise AssertionError(f"payment {n} never acknowledged: {seen}")

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(pay, n) for n in range(PAYMENTS)]
            while len(acknowledged) < PAYMENTS // 3:
                time.sleep(0.01)
            stopped = time.monotonic()
            pair.primary.stop("immediate")
            time.sleep(DETECTION)  # what a failover manager takes to notice, at least
            pair.standby.promote()
            promoted = time.monotonic()
            for f in futures:
                f.result()

        statuses = [s for seen in answers.values() for s in seen]
        assert "500" not in statuses, statuses
        times = sorted(at for _, at in acknowledged.values())
        outage = max(b - a for a, b in itertools.pairwise(times))
        after = [at for at in times if at > promoted]
        refused = Counter(s for s in statuses if s != "201")
        print(f"failover: promoted {promoted - stopped:.2f} s after the stop; first 201 "
              f"{(after[0] - promoted) if after else float('nan'):.2f} s after the "
              f"promotion; longest time without a 201 {outage:.2f} s; retried answers "
              f"{dict(refused)}")
        new_primary = pair.standby
        assert new_primary.rows("SELECT pg_is_in_recovery() AS r")[0]["r"] is False
        ledger = new_primary.rows(
            "SELECT id::text AS id FROM invoice_transactions WHERE invoice_id = %s",
            (inv["id"],), database=DB)
        ids = [row["id"] for row in ledger]
        assert sorted(ids) == sorted(t for t, _ in acknowledged.values())  # each once
        assert len(ids) == PAYMENTS
        api.db = Database(api.database_url)  # the old connection went down with the primary
        assert ledger_sums(api, inv["id"]) == (PAYMENTS * 100, 0, PAYMENTS)
        got = api.client.get(f"/invoices/{inv['id']}", headers=admin.headers).json()
        assert got["amount_recovered"] == f"{PAYMENTS}.00"
        done = api.reconcile()
        assert done.returncode == 0, done.stdout + done.stderr

        # Every acknowledged payment's event was written with it, and is delivered.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sent = {g.json()["data"]["object"]["id"] for g in list(receiver.received)}
            if sent >= set(ids):
                break
            time.sleep(0.2)
        assert sent >= set(ids), f"{len(set(ids) - sent)} payments' events not delivered"
    finally:
        receiver.close()
        server.stop()
