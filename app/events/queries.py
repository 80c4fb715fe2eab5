"""The events domain's SQL: the outbox, its fan-out to endpoints, and the reads.

An event is written by the statement (or in the transaction) that makes the change, never
after it. `NEW_EVENT_ID` and `FAN_OUT` are pieces the ledger's one-statement payments use
too: `FAN_OUT` is a CTE that reads the CTE `new_events` (seq, type, invoice_id,
created_at) and queues one delivery per enabled endpoint subscribed to the type.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from app.db.connection import db
from app.db.models import WebhookEndpoint
from app.db.sql import Statement, newest_first, oldest_first

NEW_EVENT_ID = "'evt_' || replace(gen_random_uuid()::text, '-', '')"

FAN_OUT = """
fan_out AS (
    INSERT INTO deliveries (event_seq, endpoint_id, invoice_id, next_attempt_at, created_at,
                            updated_at)
    SELECT ev.seq, w.id, ev.invoice_id, ev.created_at, ev.created_at, ev.created_at
    FROM new_events ev
    JOIN webhook_endpoints w
      ON w.enabled AND (ev.type = ANY (w.event_types) OR '*' = ANY (w.event_types))
    -- The lock the foreign key takes anyway, taken while reading: an endpoint being
    -- deleted is waited for and then left out, instead of failing the statement (23503).
    FOR KEY SHARE OF w
)"""

_RECORD = Statement(f"""
WITH new_events AS (
    INSERT INTO events (id, type, invoice_id, created_at, data, previous)
    VALUES (:id, :type, :invoice_id, :created_at, :data::jsonb, :previous::jsonb)
    RETURNING seq, type, invoice_id, created_at
), {FAN_OUT}
SELECT seq FROM new_events
""")

_COLUMNS = "e.seq, e.id, e.type, e.invoice_id, e.created_at, e.data, e.previous"


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat")
                      else str(v))


async def record(*, type: str, invoice_id: uuid.UUID | None, created_at: datetime,
                 data: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    event_id = "evt_" + uuid.uuid4().hex
    await db.aexecute_sql(_RECORD.text, _RECORD.params(
        id=event_id, type=type, invoice_id=invoice_id, created_at=created_at,
        data=_json(data), previous=_json(previous)))
    return event_id


async def one(event_id: str) -> Any | None:
    return (await db.aexecute_sql(
        f"SELECT {_COLUMNS} FROM events e WHERE e.id = %s", (event_id,))).fetchone()


async def page(limit: int, after: tuple[datetime, int] | None,
               filters: dict[str, Any]) -> list[Any]:
    """Newest first, `limit + 1` rows; `filters` maps column conditions to values."""
    sql, params = newest_first(f"SELECT {_COLUMNS} FROM events e", created="e.created_at",
                               key="e.seq", filters=filters, after=after, limit=limit)
    return (await db.aexecute_sql(sql, params)).fetchall()


async def attempts(event_seq: int) -> list[Any]:
    """Every delivery of the event with its attempts (a delivery not yet tried has one row
    with a NULL attempt)."""
    return (await db.aexecute_sql("""
        SELECT d.id AS delivery_id, d.endpoint_id, d.status, d.attempts,
               d.next_attempt_at AS delivery_next_attempt_at,
               a.attempt, a.status_code, a.error, a.duration_ms, a.created_at,
               a.next_attempt_at
        FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
        WHERE d.event_seq = %s
        ORDER BY d.id, a.attempt
    """, (event_seq,))).fetchall()


async def redeliver(event_seq: int, endpoint_id: uuid.UUID | None,
                    now: datetime) -> list[uuid.UUID]:
    """A new delivery of the event, due now, to one endpoint or to every enabled endpoint
    subscribed to its type; the endpoints it went to."""
    rows = (await db.aexecute_sql("""
        INSERT INTO deliveries (event_seq, endpoint_id, invoice_id, next_attempt_at,
                                created_at, updated_at)
        SELECT e.seq, w.id, e.invoice_id, %s, %s, %s
        FROM events e JOIN webhook_endpoints w
          ON (w.id = %s OR (%s::uuid IS NULL AND w.enabled
              AND (e.type = ANY (w.event_types) OR '*' = ANY (w.event_types))))
        WHERE e.seq = %s
        FOR KEY SHARE OF w  -- an endpoint being deleted is waited for, then left out
        RETURNING endpoint_id
    """, (now, now, now, endpoint_id, endpoint_id, event_seq))).fetchall()
    return [row["endpoint_id"] for row in rows]


# -- webhook endpoints ----------------------------------------------------------------------

async def insert_endpoint(values: dict[str, Any]) -> Any:
    await WebhookEndpoint.insert(**values).aexecute()
    return await endpoint(values["id"])


async def endpoint(endpoint_id: uuid.UUID) -> Any | None:
    rows = await db.list(WebhookEndpoint.select().where(WebhookEndpoint.id == endpoint_id)
                         .dicts())
    return rows[0] if rows else None


async def endpoint_page(limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[Any]:
    """Oldest first, `limit + 1` rows: EndpointOut's columns (never the secrets)."""
    sql, params = oldest_first(
        "SELECT id, url, event_types, description, enabled, disabled_reason, created_at, "
        "updated_at FROM webhook_endpoints", created="created_at", key="id", filters={},
        after=after, limit=limit)
    return (await db.aexecute_sql(sql, params)).fetchall()


async def update_endpoint(endpoint_id: uuid.UUID, values: dict[str, Any]) -> bool:
    return bool(await WebhookEndpoint.update(**values)
                .where(WebhookEndpoint.id == endpoint_id).aexecute())


async def delete_endpoint(endpoint_id: uuid.UUID) -> bool:
    return bool(await WebhookEndpoint.delete().where(WebhookEndpoint.id == endpoint_id)
                .aexecute())


async def rotate_secret(endpoint_id: uuid.UUID, secret: str, old_until: datetime,
                        now: datetime) -> bool:
    return bool(await WebhookEndpoint.update(
        previous_secret=WebhookEndpoint.secret, secret=secret,
        previous_secret_expires_at=old_until, updated_at=now,
    ).where(WebhookEndpoint.id == endpoint_id).aexecute())
