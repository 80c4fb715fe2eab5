"""Issue 7: scale-out. The app runs with 2 workers through pgbouncer in transaction-pooling
mode, and the ledger's concurrency guarantees still hold."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg2
import pytest

from app.db import connect_kwargs
from tests.conftest import Account, Api, Server, free_port
from tests.test_ledger import _concurrent_payments, assert_reconciles, burst, ledger_sums
from tests.test_webhooks import sign

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture(scope="module")
def pgbouncer(database_url: str) -> Iterator[str]:
    if not Path(PGBOUNCER).exists():
        pytest.skip("pgbouncer is not installed (Debian package pgbouncer; .ci/run installs it)")
    target = connect_kwargs(database_url)
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o755)
    host = target.get("host", "127.0.0.1")
    if os.geteuid() != 0:
        user = pwd.getpwuid(os.geteuid()).pw_name
    elif host.startswith("/"):  # the embedded server's socket folder belongs to its owner
        user = pwd.getpwuid(os.stat(host).st_uid).pw_name
    else:
        user = "postgres"
    (folder / "users.txt").write_text(f'"{target.get("user", "postgres")}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""
[databases]
{target['database']} = host={host} port={target.get('port', 5432)} dbname={target['database']}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 500
ignore_startup_parameters = extra_float_digits,statement_timeout
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
""")
    for item in folder.iterdir():
        item.chmod(0o644)
    cmd = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        cmd[1:1] = ["-u", user]
        shutil.chown(folder, user)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = (f"postgresql://{target.get('user', 'postgres')}@127.0.0.1:{port}/"
           f"{target['database']}")
    deadline = time.monotonic() + 20
    while True:
        try:
            psycopg2.connect(**connect_kwargs(url)).close()
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline or proc.poll() is not None:
                log = (folder / "pgbouncer.log")
                raise RuntimeError("pgbouncer did not start: " +
                                   (log.read_text() if log.exists() else "")) from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def bounced(database_url: str, pgbouncer: str, tmp_path_factory) -> Iterator[Server]:
    # Migrations take a session-level advisory lock, so they run against PostgreSQL itself
    # (the suite already did); the app serves through pgbouncer.
    srv = Server(pgbouncer, tmp_path_factory.mktemp("bounced") / "app.log", workers=2,
                 DB_STATEMENT_CACHE="false", MIGRATE_ON_START="false",
                 DB_STATEMENT_TIMEOUT_MS="0")
    yield srv
    srv.stop()


@pytest.mark.slow
def test_concurrent_payments_through_pgbouncer(api: Api, bounced: Server, admin: Account,
                                               alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    _concurrent_payments(api, bounced.url, admin, inv["id"])
    for _ in range(3):
        assert httpx.get(bounced.url + "/ready").status_code == 200


@pytest.mark.slow
def test_idempotency_and_webhook_copies_through_pgbouncer(
        api: Api, bounced: Server, admin: Account, alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    headers = {**admin.headers, "Idempotency-Key": f"pgb-{uuid.uuid4().hex}"}
    body = {"invoice_id": inv["id"], "amount": "10", "payment_mode": "upi"}
    codes = [r.status_code for r in burst(bounced.url, [("POST", "/invoice-transactions",
                                                         headers, body)] * 20)]
    assert set(codes) <= {201, 409} and 201 in codes
    event = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "invoice_id": inv["id"],
                        "amount_paid": "5"}).encode()
    sig = {"X-Signature": sign(event), "content-type": "application/json"}

    async def copies() -> list[httpx.Response]:
        import asyncio

        async with httpx.AsyncClient(base_url=bounced.url, timeout=60) as c:
            return await asyncio.gather(*(c.post("/webhooks/payment/success", content=event,
                                                 headers=sig) for _ in range(20)))

    import asyncio

    responses = asyncio.run(copies())
    assert [r.status_code for r in responses] == [200] * 20
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    assert ledger_sums(api, inv["id"]) == (1500, 0, 2)
    assert_reconciles(api)
