"""`Idempotency-Key` on the POST routes that create: the replay mechanism (replay.py) with
the contract's answers. A key belongs to its caller, lives IDEMPOTENCY_TTL_HOURS, and a
copy sent while the first is still running is refused at once (409, Retry-After)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from fastapi import Response
from pydantic import BaseModel

from app.config import Settings
from app.db.transaction import transaction
from app.errors import Conflict, Invalid
from app.http import replay
from app.http.responses import json_response


class IdempotencyKeyReused(Invalid, code="idempotency_key_reused"): ...


class IdempotencyKeyInUse(Conflict, code="idempotency_key_in_use"):
    retry_after = 1


class Caller(Protocol):
    @property
    def id(self) -> object: ...


async def keyed(settings: Settings, *, key: str, caller: Caller | None,
                route: str, body: BaseModel, status: int,
                run: Callable[[], Awaitable[BaseModel]]) -> Response:
    """Run `run` (in one transaction with its stored answer) at most once per key.
    `route` is the method and the path with its ids (`POST /users/<id>/credit`): a key
    sent again to another path is another request, refused as a reused key."""
    claim = replay.Claim(
        scope=f"idempotency:{caller.id if caller else 'anonymous'}", key=key,
        fingerprint=replay.fingerprint(settings.resolved_secret_key(), route,
                                       body.model_dump(mode="json", exclude_unset=True)),
        wait=False, ttl=timedelta(hours=settings.idempotency_ttl_hours),
        reused=lambda: IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request; use a new key "
            "for a new request"),
        busy=lambda: IdempotencyKeyInUse(
            "a request with this Idempotency-Key is still being processed; retry shortly"))
    outcome = await transaction(lambda: replay.once(claim, status=status, run=run))
    return json_response(outcome.body, status=outcome.status,
                         headers={"Idempotent-Replayed": "true"} if outcome.replayed else None)


async def created(settings: Settings, *, key: str | None,
                  caller: Caller | None, route: str, body: BaseModel,
                  run: Callable[[], Awaitable[BaseModel]]) -> Response:
    """201 with what `run` made, in one transaction; replayed when a key is sent."""
    if key is None:
        return json_response(await transaction(run), status=201)
    return await keyed(settings, key=key, caller=caller, route=route, body=body,
                       status=201, run=run)
