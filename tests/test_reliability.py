"""Faults. Backends killed and a worker killed mid-burst, the pool exhausted,
deadlocks and serialization failures: requests fail fast (503), never 500, never hang, the
app recovers by itself, and no money is lost or applied twice."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import psycopg2
import pytest

from app.db.location import connect_kwargs
from tests.support import (
    Account,
    Api,
    Server,
    assert_problem,
    assert_reconciles,
    burst,
    ledger_sums,
)

pytestmark = pytest.mark.faults

FAULT_ENV = {"DB_ACQUIRE_TIMEOUT": "2", "DB_POOL_SIZE": "5"}


@dataclass
class BurstReport:
    attempts: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    slowest: float = 0.0


def paying_clients(url: str, admin: Account, invoice_id: str, payments: int,
                   concurrency: int, report: BurstReport, deadline: float = 90) -> list[int]:
    """Each logical payment has its own Idempotency-Key and is retried until it is 201."""

    async def one(c: httpx.AsyncClient, key: str, sem: asyncio.Semaphore) -> int:
        async with sem:
            while time.monotonic() < stop:
                started = time.monotonic()
                report.attempts += 1
                try:
                    r = await c.post("/invoice-transactions", json={
                        "invoice_id": invoice_id, "amount": "1.00", "payment_mode": "card"},
                        headers={**admin.headers, "Idempotency-Key": key})
                except httpx.TransportError:
                    report.transport_errors += 1
                    await asyncio.sleep(0.2)
                    continue
                finally:
                    report.slowest = max(report.slowest, time.monotonic() - started)
                report.statuses[r.status_code] = report.statuses.get(r.status_code, 0) + 1
                assert r.status_code in (201, 409, 503), r.text
                if r.status_code == 201:
                    return 201
                if r.status_code == 409:
                    assert r.json()["code"] == "idempotency_key_in_use", r.text
                await asyncio.sleep(0.2)
            return 0

    async def run() -> list[int]:
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=15) as c:
            return await asyncio.gather(*(one(c, f"fault-{i}-{uuid.uuid4().hex}", sem)
                                          for i in range(payments)))

    stop = time.monotonic() + deadline
    return asyncio.run(run())


def terminate_backends(database_url: str, stop: threading.Event, killed: list[int]) -> None:
    """Kill every backend of the app, again and again, until told to stop."""
    conn = psycopg2.connect(**connect_kwargs(database_url), application_name="fault-injector")
    conn.autocommit = True
    with conn.cursor() as cur:
        while not stop.is_set():
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND application_name = 'payment-app'")
            killed.append(cur.fetchone()[0])
            time.sleep(0.15)
    conn.close()


@pytest.fixture
def fault_server(database_url: str, tmp_path):
    srv = Server(database_url, tmp_path / "fault.log", workers=2, **FAULT_ENV)
    yield srv
    srv.stop()


@pytest.mark.slow
def test_backends_killed_mid_burst(api: Api, fault_server: Server, admin: Account,
                                   alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=terminate_backends,
                              args=(api.database_url, stop, killed))
    report = BurstReport()

    def stop_soon() -> None:
        time.sleep(2.5)
        stop.set()

    killer.start()
    threading.Thread(target=stop_soon).start()
    try:
        results = paying_clients(fault_server.url, admin, inv["id"], 150, 20, report)
    finally:
        stop.set()
        killer.join()
    print(f"\nbackends killed mid-burst: {sum(killed)} backends, {report}")
    assert sum(killed) > 0
    assert results == [201] * 150, report
    assert 500 not in report.statuses
    assert report.slowest < 15
    # Exactly one payment per logical request: nothing lost, nothing applied twice.
    assert ledger_sums(api, inv["id"])[:2] == (15000, 0)
    assert httpx.get(fault_server.url + "/ready").status_code == 200
    assert_reconciles(api)


def _worker_pids(server: Server) -> list[int]:
    children = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == server.proc.pid:
            children.append(int(pid))
    return children


@pytest.mark.slow
def test_workers_killed_mid_burst(api: Api, fault_server: Server, admin: Account,
                                 alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    workers = _worker_pids(fault_server)
    assert len(workers) >= 2, workers
    report = BurstReport()

    def kill_one() -> None:  # once the burst is well under way
        deadline = time.monotonic() + 30
        while report.statuses.get(201, 0) < 40 and time.monotonic() < deadline:
            time.sleep(0.005)
        # Every worker, so that requests in flight really die with it; the supervisor
        # starts new ones and the clients' retries (same Idempotency-Key) carry on.
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        killed_at.append(report.statuses.get(201, 0))

    killed_at: list[int] = []
    threading.Thread(target=kill_one).start()
    results = paying_clients(fault_server.url, admin, inv["id"], 150, 20, report)
    assert killed_at and killed_at[0] < 150, killed_at
    print(f"\nworkers {workers} killed after {killed_at[0]} payments: {report}")
    assert report.transport_errors > 0  # requests really were cut off
    assert results == [201] * 150, report
    assert 500 not in report.statuses
    assert ledger_sums(api, inv["id"])[:2] == (15000, 0)
    assert_reconciles(api)
    for _ in range(50):  # the supervisor replaces the dead worker
        if len(_worker_pids(fault_server)) >= 2:
            break
        time.sleep(0.2)
    assert httpx.get(fault_server.url + "/ready").status_code == 200


@pytest.mark.slow
def test_pool_exhausted_answers_503_quickly(api: Api, database_url: str, tmp_path,
                                            admin: Account, alice: Account,
                                            bob: Account) -> None:
    srv = Server(database_url, tmp_path / "pool.log", DB_POOL_SIZE="2", DB_ACQUIRE_TIMEOUT="1")
    try:
        inv = api.invoice(admin, alice, bob, amount="1000")
        locker = psycopg2.connect(**connect_kwargs(database_url))
        with locker.cursor() as cur:  # hold the invoice's row lock: payments queue on it
            cur.execute("SELECT 1 FROM invoices WHERE id = %s FOR UPDATE", (inv["id"],))
            started = time.monotonic()
            request = ("POST", "/invoice-transactions", admin.headers,
                       {"invoice_id": inv["id"], "amount": "1", "payment_mode": "card"})
            result: list[httpx.Response] = []
            t = threading.Thread(target=lambda: result.extend(burst(srv.url, [request] * 6)))
            t.start()
            time.sleep(4)
            locker.commit()
            t.join(30)
            elapsed = time.monotonic() - started
        locker.close()
        codes = sorted(r.status_code for r in result)
        print(f"\npool of 2, 6 payments behind a held lock: {codes} in {elapsed:.1f}s")
        assert codes.count(201) == 2 and codes.count(503) == 4, codes
        for r in result:
            if r.status_code == 503:
                assert_problem(r, 503, "database_unavailable")
                assert r.headers["retry-after"] == "1"
        assert ledger_sums(api, inv["id"]) == (200, 0, 2)
        assert httpx.get(srv.url + "/ready").status_code == 200
    finally:
        srv.stop()


def test_a_checked_request_waits_for_the_pool_once(api: Api, database_url: str, tmp_path,
                                                   admin: Account, alice: Account,
                                                   bob: Account) -> None:
    """With the pool's one connection held, a request whose token check rides on its
    statement (app/db/guard.py) answers 503 after one wait for the pool, not two (the
    check is not run alone again just to reach the same 503)."""
    srv = Server(database_url, tmp_path / "pool1.log", DB_POOL_SIZE="1",
                 DB_ACQUIRE_TIMEOUT="2")
    try:
        inv = api.invoice(admin, alice, bob)
        locker = psycopg2.connect(**connect_kwargs(database_url))
        with locker.cursor() as cur:  # the void holds the one connection, waiting on this
            cur.execute("SELECT 1 FROM invoices WHERE id = %s FOR UPDATE", (inv["id"],))
            blocked = threading.Thread(target=lambda: httpx.post(
                f"{srv.url}/invoices/{inv['id']}/void", headers=admin.headers, timeout=30))
            blocked.start()
            time.sleep(0.5)
            waits = []
            for method, path, extra in (
                    ("GET", "/events", {}),
                    ("POST", f"/users/{alice.id}/credit", {
                        "json": {"amount": "1", "currency": "INR", "reason": "r"},
                        "headers": {**admin.headers, "Idempotency-Key": "pool"}})):
                started = time.monotonic()
                r = httpx.request(method, srv.url + path, timeout=30,
                                  **{"headers": admin.headers, **extra})
                waits.append(time.monotonic() - started)
                assert_problem(r, 503, "database_unavailable")
            locker.commit()
            blocked.join(30)
        locker.close()
        print(f"\n503 after {', '.join(f'{w:.1f}' for w in waits)} s (timeout 2 s)")
        assert all(w < 3.5 for w in waits), waits  # one wait of 2 s, not two
    finally:
        srv.stop()


def test_a_replica_that_is_down_leaves_reads_to_the_primary(
        api: Api, database_url: str, tmp_path, admin: Account, alice: Account,
        bob: Account) -> None:
    """READ_DATABASE_URL on a port nobody listens on: reads are answered from the primary
    (a warning in the log, no error), and payments are not held up."""
    srv = Server(database_url, tmp_path / "replica.log",
                 READ_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    try:
        inv = api.invoice(admin, alice, bob, amount="100")
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for n in range(1, 6):
                started = time.monotonic()
                paid = c.post("/invoice-transactions", headers=admin.headers, json={
                    "invoice_id": inv["id"], "amount": "1", "payment_mode": "card"})
                assert paid.status_code == 201, paid.text
                got = c.get(f"/invoices/{inv['id']}", headers=admin.headers)
                assert got.status_code == 200 and got.json()["amount_recovered"] == \
                    f"{n}.00", got.text
                assert time.monotonic() - started < 2
        assert "replica unavailable, reading from the primary" in srv.log_text()
    finally:
        srv.stop()


@pytest.mark.parametrize("failures, expected", [(2, 201), (10, 503)])
@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_deadlocks_and_serialization_failures_are_retried(
        api: Api, admin: Account, alice: Account, bob: Account, sqlstate: str,
        failures: int, expected: int) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    # A sequence is not transactional: it counts attempts across the rolled-back ones.
    api.db.rows(f"""
        CREATE SEQUENCE fault_seq;
        CREATE FUNCTION fault_inject() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('fault_seq') <= {failures} THEN
                RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER fault_inject BEFORE INSERT ON invoice_transactions
        FOR EACH ROW EXECUTE FUNCTION fault_inject();
    """)
    try:
        r = api.pay(admin, inv["id"], "5")
        webhook_key = {**admin.headers, "Idempotency-Key": f"k-{sqlstate}-{failures}"}
        keyed = api.client.post("/invoice-transactions", headers=webhook_key, json={
            "invoice_id": inv["id"], "amount": "5", "payment_mode": "upi"})
        attempts = api.db.scalar("SELECT last_value FROM fault_seq")
    finally:
        api.db.rows("DROP TRIGGER fault_inject ON invoice_transactions; "
                    "DROP FUNCTION fault_inject(); DROP SEQUENCE fault_seq;")
    assert r.status_code == expected, r.text
    if expected == 201:
        assert attempts == failures + 2  # two failed tries, then the first request's success
        assert keyed.status_code == 201
        assert ledger_sums(api, inv["id"]) == (1000, 0, 2)
    else:
        assert_problem(r, 503, "database_busy")
        assert_problem(keyed, 503, "database_busy")
        assert attempts == 6  # three tries for each request, then it gives up
        assert ledger_sums(api, inv["id"]) == (0, 0, 0)
        # The key was released, so the client's retry can still succeed later.
        again = api.client.post("/invoice-transactions", headers=webhook_key, json={
            "invoice_id": inv["id"], "amount": "5", "payment_mode": "upi"})
        assert again.status_code == 201
    assert_reconciles(api)
