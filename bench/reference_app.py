"""The reference: the benchmarked routes written with the least code FastAPI, asyncpg and
orjson allow, running the app's own statements (the ones bench/pgbench runs), on the same
server as the app and the floor. bench/reference.py compares the three.

What it leaves out is everything the app adds around the statements: the request-context
middleware and its headers, metrics and logs, the query-string and body models, the error
shapes, the response models' checks, the unit of work, the replay of a request with an
Idempotency-Key. A token is decoded once and its claims kept, as the app does. What it
keeps is what the contract cannot do without: the token check in each statement (so a
revoked token is refused at once), the ledger statement, a webhook's payment and stored
answer in the app's one statement. So its rate is about the best a FastAPI program can do
with these statements on this machine: if it stays under a target, no change to the
app's code alone can reach it (docs/PERFORMANCE.md, "A list page planned once").
"""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request, Response
from jose import jwt

from app import clock
from app.auth.queries import GUARD
from app.db.connection import numbered
from app.db.guard import wrapped_text
from app.db.sql import newest_first
from app.invoices.queries import ONE, SELECT_INVOICE
from app.ledger.queries import RECORD_PAYMENT_CHECKING_CALLER
from app.money import CURRENCY_EXPONENTS, format_units
from app.webhooks.queries import PAY_AT_ONCE

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _guarded(sql: str) -> str:
    """`sql` behind the caller's token check, numbered (app/db/guard.py: the check's 4
    parameters come after a $n statement's own)."""
    text, _ = wrapped_text(sql, GUARD, 4)
    return numbered(text) if "%s" in text else text


_READ = _guarded(ONE.text)  # $n already: the check's parameters come after the id


@lru_cache(maxsize=100)
def _page(limit: int) -> str:
    """The first page of `limit` as the app reads it; no parameters of its own, so the
    token check's are $1..$4."""
    sql, _ = newest_first(SELECT_INVOICE, created="i.created_at", key="i.id", filters={},
                          after=None, limit=limit)
    return _guarded(sql)


def _invoice(row: Any, today: date) -> dict[str, Any]:
    (invoice_id, payer_id, receiver_id, amount, currency, description, due, status,
     recovered, refunded, created, updated) = tuple(row)[:12]
    exp = CURRENCY_EXPONENTS[currency]
    payer, receiver = str(payer_id), str(receiver_id)
    return {"id": str(invoice_id), "payer_id": payer, "receiver_id": receiver,
            "payer": {"id": payer, "username": row["payer_username"],
                      "email": row["payer_email"]},
            "receiver": {"id": receiver, "username": row["receiver_username"],
                         "email": row["receiver_email"]},
            "amount": format_units(amount, exp), "currency": currency,
            "description": description, "due_date": due, "status": status,
            "amount_recovered": format_units(recovered, exp),
            "amount_refunded": format_units(refunded, exp),
            "amount_due": format_units(amount - recovered, exp),
            "overdue": due is not None and due < today and status != "void"
            and amount > recovered,
            "created_at": created, "updated_at": updated}


def _plain(row: Any) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, uuid.UUID | Decimal) else v for k, v in row.items()}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=_OPTIONS), status_code=status,
                    media_type="application/json")


def create_app() -> FastAPI:
    gc.set_threshold(20_000, 10, 10)  # as the app's workers (app/ops/runtime.py)
    key, webhook_secret = os.environ["SECRET_KEY"], os.environ["WEBHOOK_SECRET"].encode()
    claims: dict[str, tuple[uuid.UUID, int, str]] = {}
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools.append(await asyncpg.create_pool(  # the app's session settings
            os.environ["DATABASE_URL"], min_size=10, max_size=10,
            server_settings={"jit": "off", "timezone": "UTC"}))
        yield
        await pools[0].close()

    def caller(request: Request) -> tuple[uuid.UUID, int, str]:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in claims:
            c = jwt.decode(token, key, algorithms=["HS256"])
            claims[token] = (uuid.UUID(c["sub"]), c.get("ver", 0), c["jti"])
        return claims[token]

    app = FastAPI(lifespan=lifespan)

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/invoices/{invoice_id}")
    async def read(invoice_id: uuid.UUID, request: Request) -> Response:
        user, version, jti = caller(request)
        async with pools[0].acquire() as conn:
            rows = await conn.fetch(_READ, invoice_id, None, user, version, jti)
        if not rows or not rows[0]["guard_allowed"] or rows[0]["guard_row"] is None:
            return _json({}, 404)
        return _json(_invoice(rows[0], clock.today()))

    @app.get("/invoices")
    async def page(request: Request, limit: int = 20) -> Response:
        user, version, jti = caller(request)
        limit = min(max(limit, 1), 100)
        async with pools[0].acquire() as conn:
            rows = await conn.fetch(_page(limit), None, user, version, jti)
        if not rows or not rows[0]["guard_allowed"] or rows[0]["guard_row"] is None:
            return _json({}, 403)
        today, kept = clock.today(), rows[:limit]
        last = kept[-1]
        cursor = base64.urlsafe_b64encode(
            f"{last['created_at'].isoformat()}|{last['id']}".encode()).decode().rstrip("=")
        return _json({"data": [_invoice(r, today) for r in kept],
                      "next_cursor": cursor if len(rows) > limit else None})

    @app.post("/invoice-transactions")
    async def pay(request: Request) -> Response:
        user, version, jti = caller(request)
        body, now = orjson.loads(await request.body()), datetime.now(UTC)
        values = {"caller_id": user, "caller_version": version, "caller_jti": jti,
                  "kind": "payment", "amount": Decimal(body["amount"]), "source": "api",
                  "created_at": now, "invoice_id": uuid.UUID(body["invoice_id"]),
                  "id": uuid.uuid4(), "payment_mode": body["payment_mode"],
                  "payment_date": now, "reference": body.get("reference"), "event_id": None}
        statement = RECORD_PAYMENT_CHECKING_CALLER
        async with pools[0].acquire() as conn:
            rows = await conn.fetch(statement.text, *statement.params(values))
        return _json(_plain(rows[0]), 201) if rows else _json({}, 409)

    @app.post("/webhooks/payment/success")
    async def webhook(request: Request) -> Response:
        body = await request.body()
        signed = dict(part.split("=", 1) for part in request.headers["x-signature"].split(","))
        mac = hmac.new(webhook_secret, signed["t"].encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest(mac.hexdigest(), signed["v1"]):
            return _json({}, 401)
        event, now = orjson.loads(body), datetime.now(UTC)
        async with pools[0].acquire() as conn:  # the app's one statement (PAY_AT_ONCE)
            rows = await conn.fetch(PAY_AT_ONCE.text, *PAY_AT_ONCE.params(
                kind="payment", amount=Decimal(event["amount_paid"]), source="webhook",
                created_at=now, invoice_id=uuid.UUID(event["invoice_id"]), id=uuid.uuid4(),
                payment_mode="provider", payment_date=now, reference=event.get("reference"),
                event_id=event["id"], scope="webhook", key=event["id"],
                fingerprint=hashlib.sha256(body).hexdigest(), now=now, today=clock.today()))
        if not rows:
            return _json({}, 409)
        return Response(rows[0]["answer"] or rows[0]["stored_body"],
                        media_type="application/json")

    return app
