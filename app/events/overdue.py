"""`invoice.overdue`: once per invoice, on the day it becomes overdue (its due date is
before today, UTC, something is still due and it is not void), written by the delivery
workers' housekeeping, so no scheduler runs outside the app.

One statement marks the invoices (`overdue_notified_for` = the due date announced) and
writes their events and deliveries. Several workers may run it at once: each locks the rows
it takes with SKIP LOCKED, and READ COMMITTED re-checks a row another worker marked
meanwhile, which then no longer qualifies; so each invoice gets its event once. A due date
moved later and passed again is announced again.
"""

from __future__ import annotations

from datetime import date, datetime

from app.db.connection import db
from app.db.sql import Statement
from app.events.queries import FAN_OUT, NEW_EVENT_ID
from app.ledger.queries import INVOICE_SNAPSHOT

BATCH = 500

_ANNOUNCE = Statement(f"""
WITH due AS (
    SELECT i.id FROM invoices i
    WHERE i.due_date < :today AND i.overdue_notified_for IS DISTINCT FROM i.due_date
      AND i.voided_at IS NULL AND i.amount_recovered < i.amount
      -- implied by the two lines above; written out so the planner takes the partial
      -- index invoices_overdue_idx (migrations/0008_hot_payments.py)
      AND i.status NOT IN ('void', 'completed')
    ORDER BY i.due_date
    LIMIT {BATCH}
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE invoices i SET overdue_notified_for = i.due_date
    FROM due WHERE i.id = due.id
      AND i.due_date < :today AND i.overdue_notified_for IS DISTINCT FROM i.due_date
      AND i.voided_at IS NULL AND i.amount_recovered < i.amount
    RETURNING i.*
), new_events AS (
    INSERT INTO events (id, type, invoice_id, created_at, data)
    SELECT {NEW_EVENT_ID}, 'invoice.overdue', moved.id, :now,
           jsonb_build_object('invoice', {INVOICE_SNAPSHOT})
    FROM moved
    RETURNING seq, type, invoice_id, created_at
), {FAN_OUT}
SELECT count(*) AS announced FROM new_events
""")


async def announce(*, today: date, now: datetime) -> int:
    """Write `invoice.overdue` for the invoices that became overdue (up to a batch); how
    many."""
    row = (await db.aexecute_sql(_ANNOUNCE.text, _ANNOUNCE.params(today=today, now=now))
           ).fetchone()
    return int(row["announced"])
