"""Scale-out. The app runs with 2 workers through pgbouncer in transaction-pooling
mode, and the ledger's concurrency guarantees still hold."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support import (
    PGBOUNCER_ENV,
    Account,
    Api,
    Server,
    assert_reconciles,
    burst,
    concurrent_payments,
    ledger_sums,
    pgbouncer,
    pgbouncer_installed,
    sign,
)


@pytest.fixture(scope="module")
def bounced(database_url: str, tmp_path_factory) -> Iterator[Server]:
    if not pgbouncer_installed():
        pytest.skip("pgbouncer is not installed (Debian package pgbouncer; .ci/run installs it)")
    with pgbouncer(database_url) as url:
        srv = Server(url, tmp_path_factory.mktemp("bounced") / "app.log", workers=2,
                     **PGBOUNCER_ENV)
        yield srv
        srv.stop()


@pytest.mark.slow
def test_concurrent_payments_through_pgbouncer(api: Api, bounced: Server, admin: Account,
                                               alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="1000")
    concurrent_payments(api, bounced.url, admin, inv["id"])
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
