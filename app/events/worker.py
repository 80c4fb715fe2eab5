"""Delivery workers: send due deliveries to the merchant's endpoints, on PostgreSQL alone.

A worker claims a batch with `FOR UPDATE SKIP LOCKED` and, in the same statement, leases
it (pushes `next_attempt_at` past the send's deadline), so several workers never send one
delivery at the same moment; a worker that dies leaves a lease that simply runs out, and
the delivery is sent again (at least once, same `webhook-id`). A delivery waits while an
earlier delivery of the same invoice to the same endpoint is still pending: per invoice
and endpoint, events arrive in the order they were made. Polling, not LISTEN/NOTIFY: it
works the same behind pgbouncer's transaction pooling, and a short poll interval keeps
the queue's age low (docs/EVENTS.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from app import clock
from app.config import Settings
from app.db.connection import db
from app.db.failures import database_unavailable, describe, retryable
from app.db.models import utcnow
from app.db.sql import Statement
from app.db.transaction import release_connection, transaction
from app.events import overdue
from app.events.render import event_body
from app.events.sender import Sender
from app.events.signing import headers as signed_headers
from app.ops import metrics

log = logging.getLogger("app.deliveries")

# The head of each (endpoint, invoice) line is its earliest pending delivery: only heads
# are sent, so one invoice's events reach an endpoint in order. For each enabled endpoint,
# its due deliveries are read from its index in due order, each kept only if it is the
# first pending one of its line, and locked with SKIP LOCKED as it is kept (READ COMMITTED
# re-checks a row another worker leased meanwhile, and its new next_attempt_at excludes
# it); the batch is leased in the same statement. The statement is shaped so that no
# plan can walk more than that, even on a table that grew faster than its statistics:
# - the head check is a scalar subquery, one probe per row, never planned as a join over
#   every pending row (an anti-join here once went quadratic), and ordered by event_seq
#   so the line index answers it (unordered, the planner took the due index and walked
#   the endpoint's whole queue for each row);
# - the rows are locked inside the per-endpoint LATERAL; the UPDATE takes their ids as
#   one array, computed once, and finds each by its key (an outer `id IN (…)` layer was
#   planned as a scan of every due row, and a join to the LATERAL as a hash join over a
#   scan of the whole table while it was under some 20,000 rows);
# - what is walked beyond the batch is the due deliveries held behind a head, which
#   `_HOLD` keeps few;
# - the head check reads `>=`, which is `=` here (the line's first pending seq is never
#   above the row's own, pending in the same snapshot), because the planner takes an
#   equality to keep 1 row in 200 and so expected to walk the whole due queue for a
#   batch: from about 5,000 pending rows to some 10,000 it read and sorted all of them
#   (10 ms a claim at 6,000, against 0.5 ms now). An inequality counts as a third.
CLAIM = Statement("""
UPDATE deliveries d SET next_attempt_at = :lease_until, attempts = d.attempts + 1,
       updated_at = :now
FROM events e, webhook_endpoints w
WHERE d.id = ANY (ARRAY(
    SELECT head.id FROM webhook_endpoints hw CROSS JOIN LATERAL (
        SELECT h.id, h.next_attempt_at FROM deliveries h
        WHERE h.endpoint_id = hw.id AND h.status = 'pending' AND h.next_attempt_at <= :now
          AND COALESCE((SELECT p.event_seq FROM deliveries p
               WHERE p.endpoint_id = h.endpoint_id AND p.invoice_id = h.invoice_id
                 AND p.status = 'pending'
               ORDER BY p.event_seq LIMIT 1), h.event_seq) >= h.event_seq
        ORDER BY h.next_attempt_at
        LIMIT :batch
        FOR UPDATE OF h SKIP LOCKED) head
    WHERE hw.enabled
    ORDER BY head.next_attempt_at
    LIMIT :batch))
  AND e.seq = d.event_seq AND w.id = d.endpoint_id
RETURNING d.id AS delivery_id, d.attempts AS attempt, d.endpoint_id,
          e.seq, e.id, e.type, e.invoice_id, e.created_at, e.data, e.previous,
          w.url, w.secret, w.previous_secret, w.previous_secret_expires_at
""")

# Deliveries held behind a head that waits for a retry later than any lease are moved to
# that retry's time, so the claim does not walk them again and again while an endpoint is
# down. Only a hint for the walk: order is kept by the claim's head check, and a head's
# retry time is only ever moved by its own attempt, so a follower held to it is due again
# when the head is.
_HOLD = Statement("""
UPDATE deliveries d SET next_attempt_at = held.until
FROM (
    SELECT f.id, min(h.next_attempt_at) AS until
    FROM deliveries f JOIN deliveries h
      ON h.endpoint_id = f.endpoint_id AND h.invoice_id = f.invoice_id
     AND h.status = 'pending' AND h.event_seq < f.event_seq
    WHERE f.status = 'pending' AND f.next_attempt_at <= :now
      AND h.next_attempt_at > :beyond_leases
    GROUP BY f.id
) held
WHERE d.id = held.id AND d.status = 'pending' AND d.next_attempt_at < held.until
""")

# A batch's outcomes in one statement: each delivery's new state and its attempt row. A
# delivery dropped meanwhile (its endpoint deleted) or already finished is left alone.
_FINISH = Statement("""
WITH outcome AS (
    SELECT * FROM unnest(:ids::bigint[], :attempts::int[], :statuses::text[],
                         :next_ats::timestamptz[], :codes::int[], :errors::text[],
                         :durations::float8[])
        AS o (id, attempt, status, next_at, status_code, error, duration_ms)
), finished AS (
    UPDATE deliveries d SET status = o.status,
           next_attempt_at = COALESCE(o.next_at, d.next_attempt_at), updated_at = :now
    FROM outcome o
    WHERE d.id = o.id AND d.status = 'pending'
    RETURNING d.id
), logged AS (
    INSERT INTO delivery_attempts (delivery_id, attempt, status_code, error, duration_ms,
                                   created_at, next_attempt_at)
    SELECT o.id, o.attempt, o.status_code, o.error, o.duration_ms, :now, o.next_at
    FROM outcome o JOIN finished f ON f.id = o.id
)
SELECT id FROM finished
""")

# Before a batch's outcomes: its endpoints, locked in one order. Deleting an endpoint locks
# it, then its deliveries (the cascade); recording locks deliveries, then the endpoint's
# health: without this, the two could wait for each other (a deadlock).
_LOCK_ENDPOINTS = Statement("""
SELECT id FROM webhook_endpoints WHERE id = ANY (:ids::uuid[]) ORDER BY id FOR NO KEY UPDATE
""")

_ENDPOINT_OK = Statement("""
UPDATE webhook_endpoints SET failing_since = NULL
WHERE id = :endpoint_id AND failing_since IS NOT NULL
""")

# Failing since the first failure after a success; disabled once that is long enough ago.
_ENDPOINT_FAILED = Statement("""
UPDATE webhook_endpoints SET
    failing_since = COALESCE(failing_since, :now),
    enabled = enabled AND COALESCE(failing_since, :now) > :disable_before,
    disabled_reason = CASE WHEN enabled AND COALESCE(failing_since, :now) <= :disable_before
        THEN 'every delivery failed since ' || to_char(
            COALESCE(failing_since, :now) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        ELSE disabled_reason END
WHERE id = :endpoint_id
""")

_QUEUE = """
SELECT count(*) AS pending,
       EXTRACT(EPOCH FROM now() - min(created_at)) AS oldest
FROM deliveries WHERE status = 'pending'
"""

_PRUNE = "DELETE FROM events WHERE created_at < %s"


class Deliverer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.delays = settings.retry_delays
        self.sender = Sender(timeout=settings.delivery_timeout_seconds,
                             connections=settings.delivery_concurrency,
                             allow_private=settings.private_urls_allowed)
        self._last_housekeeping = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: claim, send, record; sleep when nothing is due, and longer
        (up to 5 s) while the database is unreachable or does not take writes."""
        pause = self.settings.delivery_poll_seconds
        while not stop.is_set():
            try:
                sent = await self.run_once()
                await self._housekeeping()
                pause = self.settings.delivery_poll_seconds
            except Exception as exc:
                sent = 0
                if not database_unavailable(exc):
                    log.exception("delivery loop")
                else:  # a failover, a restart: say so once per pause, without a traceback
                    log.warning("deliveries paused: the database is unavailable", extra={
                        "error": describe(exc), "retry_in_s": pause})
                    pause = min(max(pause * 2, 0.5), 5.0)
            finally:
                await release_connection()
            if sent < self.settings.delivery_concurrency:
                try:
                    await asyncio.wait_for(stop.wait(), pause)
                except TimeoutError:
                    pass

    async def run_once(self) -> int:
        """Send one batch of due deliveries; how many were claimed."""
        now = utcnow()
        # Past the send's own deadline with as much again to spare: only a worker that died
        # (or stalled longer than that) lets its lease run out and the delivery go again.
        lease = self._lease()
        claimed = await transaction(lambda: self._bookkeeping(CLAIM, {
            "now": now, "lease_until": now + lease,
            "batch": self.settings.delivery_concurrency}))
        await release_connection()
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._attempt(row) for row in claimed))
        # One transaction (one pooled connection) records the whole batch.
        try:
            next_ats = await transaction(lambda: self._record_all(claimed, results))
        finally:
            await release_connection()
        for row, (status_code, error, duration_ms), next_at in zip(
                claimed, results, next_ats, strict=True):
            ok = status_code is not None and 200 <= status_code < 300
            outcome = "delivered" if ok else ("retrying" if next_at else "failed")
            metrics.DELIVERIES.labels(outcome).inc()
            log.info("delivery attempt", extra={
                "event_id": row["id"], "event_type": row["type"],
                "endpoint_id": row["endpoint_id"], "attempt": row["attempt"],
                "status_code": status_code, "error": error, "duration_ms": duration_ms,
                "outcome": outcome})
        return len(claimed)

    def _lease(self) -> timedelta:
        return timedelta(seconds=2 * self.settings.delivery_timeout_seconds + 1)

    async def _bookkeeping(self, statement: Statement, values: dict[str, Any]) -> list[Any]:
        """A statement of the queue's own state, in a transaction that does not wait for
        its commit to reach the disk: a crash may forget the last moments of it, which
        only sends those deliveries again (at least once, same webhook-id), and the
        payments' commits do not queue behind these for the WAL (docs/EVENTS.md)."""
        await db.aexecute_sql("SET LOCAL synchronous_commit = off")
        return await self._fetch(statement, values)

    async def _fetch(self, statement: Statement, values: dict[str, Any]) -> list[Any]:
        return (await db.aexecute_sql(statement.text, statement.params(values))).fetchall()

    async def _attempt(self, row: Any) -> tuple[int | None, str | None, float]:
        started = time.perf_counter()
        try:
            status_code, error = await self._send(row)
        except Exception as exc:
            # An event that cannot be rendered or signed (a bug, or a row changed by
            # hand) fails its own attempt, not the batch: otherwise no outcome of the batch
            # is recorded and every other delivery in it is sent again once its lease runs
            # out, for ever.
            log.exception("delivery could not be sent", extra={
                "event_id": row["id"], "endpoint_id": row["endpoint_id"]})
            status_code, error = None, f"the event could not be sent: {type(exc).__name__}"
        return status_code, error, round((time.perf_counter() - started) * 1000, 1)

    async def _record_all(self, rows: list[Any],
                          results: list[tuple[int | None, str | None, float]],
                          ) -> list[datetime | None]:
        """The batch's attempts and the deliveries' new states, then each endpoint's health:
        one transaction, a statement per endpoint besides the batch's own. The next
        attempt's time of each delivery that will be tried again."""
        now = utcnow()
        outcomes = []
        for row, (code, error, _) in zip(rows, results, strict=True):
            ok = code is not None and 200 <= code < 300
            attempt = row["attempt"]
            if ok:
                outcomes.append(("delivered", None, None))
            elif attempt <= len(self.delays):
                outcomes.append(("pending", now + timedelta(seconds=self.delays[attempt - 1]),
                                 error))
            else:
                outcomes.append(("failed", None, error))
        await self._fetch(_LOCK_ENDPOINTS, {"ids": sorted({r["endpoint_id"] for r in rows})})
        await self._bookkeeping(_FINISH, {
            "ids": [r["delivery_id"] for r in rows], "attempts": [r["attempt"] for r in rows],
            "statuses": [o[0] for o in outcomes], "next_ats": [o[1] for o in outcomes],
            "codes": [res[0] for res in results], "errors": [o[2] for o in outcomes],
            "durations": [res[2] for res in results], "now": now})
        health: dict[Any, bool] = {}
        for row, (status, _, _) in zip(rows, outcomes, strict=True):
            health[row["endpoint_id"]] = health.get(row["endpoint_id"], False) or \
                status == "delivered"
        for endpoint_id, any_ok in health.items():
            if any_ok:
                await self._fetch(_ENDPOINT_OK, {"endpoint_id": endpoint_id})
            else:
                await self._fetch(_ENDPOINT_FAILED, {
                    "endpoint_id": endpoint_id, "now": now,
                    "disable_before": now - timedelta(
                        seconds=self.settings.endpoint_disable_after_seconds)})
        return [o[1] for o in outcomes]

    async def _send(self, row: Any) -> tuple[int | None, str | None]:
        body = event_body(row)
        secrets = [row["secret"]]
        if row["previous_secret"] and row["previous_secret_expires_at"] and \
                row["previous_secret_expires_at"] > utcnow():
            secrets.append(row["previous_secret"])
        headers = signed_headers(secrets, row["id"], int(time.time()), body)
        headers["content-type"] = "application/json"
        answer = await self.sender.post(row["url"], body, headers)
        return answer.status_code, answer.error

    async def _housekeeping(self) -> None:
        """Every few seconds: invoices that became overdue announced (app/events/
        overdue.py); followers held behind retrying heads; the queue's gauges; old events
        pruned."""
        if time.monotonic() - self._last_housekeeping < 5:
            return
        self._last_housekeeping = time.monotonic()
        try:
            await self._housekeeping_round()
        except Exception as exc:
            if not retryable(exc):
                raise
            # Its statements run alone, not retried: PostgreSQL rolled one back (a
            # deadlock with another session, a serialization failure). Each is whole on
            # its own, so the next round does what this one left.
            log.warning("housekeeping rolled back by the database; the next round goes on",
                        extra={"error": describe(exc)})

    async def _housekeeping_round(self) -> None:
        for _ in range(10):  # at most 10 batches a round; the rest next round
            if await overdue.announce(today=clock.today(), now=utcnow()) < overdue.BATCH:
                break
        now = utcnow()
        await db.aexecute_sql(_HOLD.text, _HOLD.params(
            {"now": now, "beyond_leases": now + self._lease()}))
        queue = (await db.aexecute_sql(_QUEUE)).fetchone()
        metrics.DELIVERY_QUEUE.set(queue["pending"])
        metrics.DELIVERY_AGE.set(float(queue["oldest"] or 0))
        cutoff = utcnow() - timedelta(days=self.settings.event_retention_days)
        await db.aexecute_sql(_PRUNE, (cutoff,))

    async def aclose(self) -> None:
        await self.sender.aclose()
