"""Claim once, run, store, replay: one mechanism for Idempotency-Key and provider event ids.

Everything happens inside the caller's one transaction: the key is claimed with
`INSERT ... ON CONFLICT`, the work runs, and its answer (a refusal too) is stored in the
same transaction. (A provider's payment as it is is first tried in one statement,
at_once(), which takes the key with the answer at its end instead.) So a stored answer
always belongs to a committed effect, and a request that dies half-way leaves nothing
behind: its rollback frees the key for the retry.

A copy that arrives while the first is still running either waits for it and then replays
its answer (`wait=True`: provider events, whose retries should simply succeed), or is told
at once that the key is busy (`wait=False`: Idempotency-Key, as the contract says). The
second needs a transaction-level advisory lock on the key: whoever holds it is the only
one that may be inserting that key, so the claim never waits on anyone.

Every effect run here either refuses before it writes or writes with `ON CONFLICT DO
NOTHING`, so a refusal leaves the transaction usable and is stored like an answer.
Answers with a 5xx status, and refusals that say to try again (`Retry-After`, such as
`invoice_changed`), are never stored: those errors propagate and roll back, and the key is
free for the retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import peewee
from pydantic import BaseModel

from app.db.connection import db
from app.db.failures import constraint, sqlstate
from app.db.guard import set_guard, take_guard
from app.db.models import Replay, utcnow
from app.db.sql import Statement
from app.errors import DomainError
from app.http.problems import problem_of

# Rows moved from the tables this one replaced keep the old fingerprints, which cannot be
# recomputed; such a row is replayed for any body with its key.
LEGACY = "legacy:"

# The claim and the store are written out: with the ledger statement they are the whole
# database work of a provider event (docs/PERFORMANCE.md, "webhook payment success").
def _claim(refused: str = "false") -> str:
    return f"""
INSERT INTO replays AS r (scope, key, fingerprint, created_at, expires_at)
SELECT :scope, :key, :fingerprint, :now, :expires_at
WHERE CASE WHEN {refused} THEN false
           WHEN :wait THEN true
           ELSE pg_try_advisory_xact_lock(hashtextextended(:scope || ' ' || :key, 0)) END
ON CONFLICT (scope, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, response_status = NULL, response_body = NULL,
        created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
    WHERE r.expires_at <= EXCLUDED.created_at
RETURNING 1 AS claimed
"""


_CLAIM = _claim()
CLAIM = Statement(_CLAIM)


def claim_then(read: str) -> Statement:
    """CLAIM and, in the same statement and only once the key is ours, `read` (named
    parameters; at most one row, which it may lock): the claim and the effect's first read
    in one round trip. No row: not claimed. The read's columns are NULL if it found
    nothing. (A lateral join: the read runs for the claim's row, so strictly after it.)"""
    return Statement(f"""
WITH claim AS ({_CLAIM})
SELECT claim.claimed, read.* FROM claim LEFT JOIN LATERAL ({read}) read ON true
""")


@lru_cache(maxsize=8)
def _guarded_claim(cte: str, n_params: int) -> Statement:
    """CLAIM carrying the request's guard (app/db/guard.py) instead of the token check
    costing a round trip of its own: a caller the guard refuses claims nothing, and takes
    no lock on the key. One row: the guard's verdict, and `claimed` if the key is ours."""
    numbers = iter(range(1, n_params + 1))
    named = re.sub("%s", lambda _: f":guard_{next(numbers)}", cte)
    return Statement(f"""
WITH guard AS ({named}),
claim AS ({_claim("(SELECT allowed FROM guard) IS NOT TRUE")})
SELECT claim.claimed, guard.allowed AS guard_allowed, guard.info AS guard_info
FROM (SELECT 1) one LEFT JOIN guard ON true LEFT JOIN claim ON true
""")


# The unique keys a copy racing at_once()'s statement may fail on (migrations/0001, 0003).
ONCE_KEYS = frozenset({"replays_pkey", "invoice_transaction_event_id_key"})

# The one-statement form (at_once()): the answer stored for the key, if any, read by the
# statement whose effect runs only if there is none; and the effect's answer inserted by
# that statement. Its CTEs, for a statement built around an effect (app/webhooks/queries.py).
STORED = """stored AS (
    SELECT response_status, response_body, fingerprint FROM replays
    WHERE scope = :scope AND key = :key
)"""
NOT_STORED = "NOT EXISTS (SELECT FROM stored)"


def answer_cte(body: str, rows: str) -> str:
    """A CTE storing the answer `body` (an SQL expression of text) once per row of `rows`:
    200, for good (no expiry)."""
    return f"""answer AS (
    INSERT INTO replays (scope, key, fingerprint, created_at, response_status, response_body)
    SELECT :scope, :key, :fingerprint, :now, 200, {body} FROM {rows}
    RETURNING response_body
)"""


# Its final SELECT: the new answer, or the stored one, or no row (the effect refused).
ANSWER_OR_STORED = """SELECT response_body AS answer, NULL::integer AS stored_status,
       NULL::text AS stored_body, NULL::text AS stored_fingerprint FROM answer
UNION ALL
SELECT NULL, response_status, response_body, fingerprint FROM stored"""

STORE = Statement("""
UPDATE replays SET response_status = :status, response_body = :body
WHERE scope = :scope AND key = :key
""")


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Claim:
    scope: str  # whose keys these are: "idempotency:<caller>", "webhook"
    key: str
    fingerprint: str
    wait: bool  # a copy in flight: wait for it, or refuse at once
    ttl: timedelta | None  # None: kept for good
    reused: Callable[[], DomainError]  # the key came with another request
    busy: Callable[[], DomainError]  # the first request with the key is still running
    # A stored body as it is answered: at_once() stores what its statement can write
    # (app/webhooks/service.py: stored_answer()).
    render: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: body


def fingerprint(secret: str, what: str, data: Any) -> str:
    """Keyed, so a stored fingerprint says nothing about the body (a password in a sign-up)."""
    canonical = json.dumps(data, sort_keys=True, default=str)
    return hmac.new(secret.encode(), f"{what}\n{canonical}".encode(), hashlib.sha256).hexdigest()


async def once(claim: Claim, *, status: int,
               run: Callable[[], Awaitable[BaseModel]]) -> Outcome:
    """Run `run` at most once per (scope, key) and keep its answer; or replay the answer."""
    if await _claimed(claim, CLAIM, {}) is None:
        return await _replay(claim)
    return await _run_and_store(claim, status, run)


async def once_reading(claim: Claim, read: Statement, values: dict[str, Any], *,
                       status: int, run: Callable[[Any], Awaitable[BaseModel]]) -> Outcome:
    """once(), with `read` (made by claim_then()) run in the claim's statement and its row
    given to `run`: one round trip fewer."""
    row = await _claimed(claim, read, values)
    if row is None:
        return await _replay(claim)
    return await _run_and_store(claim, status, lambda: run(row))


async def at_once(claim: Claim, statement: Statement, values: dict[str, Any]) -> Outcome | None:
    """once() in one statement, in autocommit: `statement` (STORED, an effect gated by
    NOT_STORED, answer_cte(), ANSWER_OR_STORED) replays the stored answer, or runs the
    effect and stores its answer with it. None: it did neither (the effect refused, or a
    copy took the key while it ran), and once() is to decide.

    The statement cannot claim the key first: a row it inserts cannot be given the answer
    by the same statement, nor removed if the effect refuses. The lookup of the stored
    answer is only a shortcut (it sees the statement's snapshot, and is not looked at
    again when the effect waits for a lock); exactly-once rests on unique keys: the key
    is inserted with the answer, at the end, by a plain INSERT, and the effect's own rows
    carry the same id under a unique key (the ledger row's `event_id`). A copy that got
    past the lookup at the same moment waits for the first on one of them, fails with
    23505 when the first commits, and PostgreSQL undoes all it did, effect and events
    included; or, re-checked after waiting for the invoice, it no longer fits and moves
    nothing. Either way once() replays the first answer (tests/test_races.py)."""
    try:
        row = (await db.aexecute_sql(statement.text, statement.params(
            values, scope=claim.scope, key=claim.key, fingerprint=claim.fingerprint,
            now=utcnow()))).fetchone()
    except peewee.IntegrityError as exc:
        if sqlstate(exc) != "23505" or constraint(exc) not in ONCE_KEYS:
            raise
        return None
    if row is None:
        return None
    if row["answer"] is not None:
        return Outcome(200, claim.render(json.loads(row["answer"])))
    if row["stored_status"] is None:
        return None  # not answered: left to once()
    return _replayed(claim, row["stored_status"], row["stored_body"], row["stored_fingerprint"])


async def _claimed(claim: Claim, statement: Statement, values: dict[str, Any]) -> Any | None:
    guard = take_guard() if statement is CLAIM else None
    if guard is not None:
        statement = _guarded_claim(guard.cte, len(guard.params))
        values = {**values, **{f"guard_{n}": value
                               for n, value in enumerate(guard.params, start=1)}}
    now = utcnow()
    try:
        row = (await db.aexecute_sql(statement.text, statement.params(
            values, scope=claim.scope, key=claim.key, fingerprint=claim.fingerprint, now=now,
            expires_at=now + claim.ttl if claim.ttl is not None else None,
            wait=claim.wait))).fetchone()
    except BaseException:
        if guard is not None:
            set_guard(guard)  # not checked yet: a retry must still carry it
        raise
    if guard is None:
        return row
    guard.settle(None if row["guard_info"] is None else (row["guard_allowed"], row["guard_info"]))
    return row if row["claimed"] is not None else None


async def _run_and_store(claim: Claim, status: int,
                         run: Callable[[], Awaitable[BaseModel]]) -> Outcome:
    try:
        outcome = Outcome(status, (await run()).model_dump(mode="json"))
    except DomainError as error:
        refused, body, _ = problem_of(error)
        if refused >= 500 or error.retry_after is not None:
            raise  # not an answer to keep: the same request may succeed when sent again
        outcome = Outcome(refused, body)
    await db.aexecute_sql(STORE.text, STORE.params(
        scope=claim.scope, key=claim.key, status=outcome.status,
        body=json.dumps(outcome.body)))
    return outcome


async def _replay(claim: Claim) -> Outcome:
    stored = await Replay.aget_or_none((Replay.scope == claim.scope) & (Replay.key == claim.key))
    if stored is None or stored.response_status is None:
        raise claim.busy()
    return _replayed(claim, stored.response_status, stored.response_body, stored.fingerprint)


def _replayed(claim: Claim, status: int, body: str, stored_fingerprint: str) -> Outcome:
    if not stored_fingerprint.startswith(LEGACY) \
            and not hmac.compare_digest(stored_fingerprint, claim.fingerprint):
        raise claim.reused()
    return Outcome(status, claim.render(json.loads(body)), replayed=True)


async def purge_expired(now: datetime | None = None) -> int:
    return await Replay.delete().where(Replay.expires_at < (now or utcnow())).aexecute()
