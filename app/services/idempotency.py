"""Idempotency-Key: replay the first response, refuse a reused key, guard in-flight retries.

A key is claimed with an INSERT ... ON CONFLICT DO NOTHING on (caller, key), so exactly
one request among concurrent copies (in any worker process) runs the action. The action
and the stored response commit in one transaction: a retry either sees the stored response
or finds the key free again, never an effect without its response.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from app.config import get_settings
from app.db import db, with_retries
from app.errors import AppError, Conflict, Unprocessable, problem_body

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Outcome:
    status: int
    body: Any
    replayed: bool = False


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"


def fingerprint(route: str, body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json", exclude_unset=True), sort_keys=True)
    # Keyed, so a stored fingerprint of a sign-up says nothing about its password.
    secret = get_settings().resolved_secret_key().encode()
    return hmac.new(secret, f"{route}\n{canonical}".encode(), hashlib.sha256).hexdigest()


async def _claim(caller: str, key: str, print_: str) -> Outcome | None:
    """None when this request now owns the key; else the stored outcome to replay."""
    s = get_settings()
    for _ in range(3):
        now = datetime.now(UTC)
        cursor = await db.aexecute_sql(
            "INSERT INTO idempotency_key (caller, key, fingerprint, created_at, locked_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (caller, key, print_, now, now),
        )
        if cursor.fetchone() is not None:
            return None
        row = (await db.aexecute_sql(
            "SELECT fingerprint, response_status, response_body, created_at, locked_at "
            "FROM idempotency_key WHERE caller = %s AND key = %s", (caller, key))).fetchone()
        if row is None:
            continue  # released between our two statements; try to claim again
        stored_print, status, body, created_at, locked_at = row
        if created_at < now - timedelta(hours=s.idempotency_ttl_hours):
            await db.aexecute_sql(
                "DELETE FROM idempotency_key WHERE caller = %s AND key = %s AND created_at = %s",
                (caller, key, created_at))
            continue
        if not hmac.compare_digest(stored_print, print_):
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request; "
                "use a new key for a new request")
        if status is not None:
            return Outcome(status=status, body=json.loads(body), replayed=True)
        if locked_at < now - timedelta(seconds=s.idempotency_lock_seconds):
            # The first attempt died without finishing; this retry takes it over.
            taken = await db.aexecute_sql(
                "UPDATE idempotency_key SET locked_at = %s WHERE caller = %s AND key = %s "
                "AND locked_at = %s AND response_status IS NULL RETURNING 1",
                (now, caller, key, locked_at))
            if taken.fetchone() is not None:
                return None
        raise IdempotencyKeyInUse(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            headers={"Retry-After": "1"})
    raise IdempotencyKeyInUse("this Idempotency-Key is busy; retry shortly",
                              headers={"Retry-After": "1"})


async def _store(caller: str, key: str, status: int, body: Any) -> None:
    await db.aexecute_sql(
        "UPDATE idempotency_key SET response_status = %s, response_body = %s "
        "WHERE caller = %s AND key = %s",
        (status, json.dumps(body), caller, key))


async def _release(caller: str, key: str) -> None:
    try:
        await db.aexecute_sql(
            "DELETE FROM idempotency_key WHERE caller = %s AND key = %s "
            "AND response_status IS NULL", (caller, key))
    except Exception:
        pass


async def execute(
    *,
    caller: str | None,
    key: str | None,
    request: tuple[str, BaseModel],
    status: int,
    action: Callable[[], Awaitable[BaseModel]],
) -> Outcome:
    """Run `action` at most once per (caller, key); its response is kept for replays."""
    if key is None:
        result = await action()
        return Outcome(status=status, body=result.model_dump(mode="json"))
    caller = caller or ANONYMOUS
    route, body = request
    stored = await _claim(caller, key, fingerprint(route, body))
    if stored is not None:
        return stored
    async def run_and_store() -> Any:
        result = await action()
        response = result.model_dump(mode="json")
        await _store(caller, key, status, response)
        return response

    try:
        # The effect and its stored response commit together, or neither does.
        return Outcome(status=status, body=await with_retries(run_and_store))
    except AppError as exc:
        if exc.status < 500:
            await _store(caller, key, exc.status,
                         problem_body(exc.status, exc.code, exc.detail, exc.errors))
        else:
            await _release(caller, key)
        raise
    except BaseException:
        await _release(caller, key)
        raise


async def purge_expired() -> int:
    hours = get_settings().idempotency_ttl_hours
    cursor = await db.aexecute_sql(
        "DELETE FROM idempotency_key WHERE created_at < now() - make_interval(hours => %s)",
        (hours,))
    return cursor.rowcount
