"""`invoice.overdue`: once per invoice, on the day it becomes overdue (its due date is
before today, UTC, something is still due and it is not void), written by the delivery
workers' housekeeping, so no scheduler runs outside the app.

One statement marks the invoices (`overdue_notified_for` = the due date announced) and
writes their events and deliveries. Several workers may run it at once: each locks the rows
it takes with SKIP LOCKED, and READ COMMITTED re-checks a row another worker marked
meanwhile, which then no longer qualifies; so each invoice gets its event once. A due date
moved later and passed again is announced again.

A candidate past its due date with nothing due (paid in full, then refunded) is marked
checked for that due date (`overdue_checked_for`) in the same statement, so it leaves the
index instead of being read again every round; a change of its amount clears the mark.
"""

from __future__ import annotations

from datetime import date, datetime

from app.db.connection import db
from app.db.sql import Statement
from app.events.queries import FAN_OUT, NEW_EVENT_ID
from app.ledger.queries import INVOICE_SNAPSHOT

BATCH = 500

# The partial index invoices_overdue_due_idx holds the invoices neither announced nor
# checked for their due date, and neither void nor completed (migrations/0008): the
# candidates. Both SELECTs write its predicate out, so the planner takes it.
_CANDIDATE = """i.due_date < :today AND i.overdue_notified_for IS DISTINCT FROM i.due_date
      AND i.overdue_checked_for IS DISTINCT FROM i.due_date
      AND i.status NOT IN ('void', 'completed')"""
_SOMETHING_DUE = "i.voided_at IS NULL AND i.amount_recovered < i.amount"

_ANNOUNCE = Statement(f"""
WITH due AS (
    SELECT i.id FROM invoices i
    WHERE {_CANDIDATE} AND {_SOMETHING_DUE}
    ORDER BY i.due_date
    LIMIT {BATCH}
    FOR UPDATE SKIP LOCKED
), settled AS (
    -- paid in full, then refunded: not overdue, and marked so it leaves the index
    SELECT i.id FROM invoices i
    WHERE {_CANDIDATE} AND NOT ({_SOMETHING_DUE})
    ORDER BY i.due_date
    LIMIT {BATCH}
    FOR UPDATE SKIP LOCKED
), checked AS (
    UPDATE invoices i SET overdue_checked_for = i.due_date
    FROM settled WHERE i.id = settled.id AND {_CANDIDATE} AND NOT ({_SOMETHING_DUE})
), moved AS (
    UPDATE invoices i SET overdue_notified_for = i.due_date
    FROM due WHERE i.id = due.id AND {_CANDIDATE} AND {_SOMETHING_DUE}
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
