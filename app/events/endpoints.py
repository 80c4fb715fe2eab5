"""The merchant's webhook endpoints: saved with a checked URL and a fresh secret; rotated
with an overlap during which both secrets sign."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from app.db.models import utcnow
from app.events import queries
from app.events.schemas import (
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    SecretOut,
)
from app.events.service import EndpointNotFound
from app.events.signing import new_secret
from app.events.urls import check
from app.pagination import decode_cursor, page_json


def endpoint_json(row: Any) -> dict[str, Any]:
    """An endpoint row as the API shows it: EndpointOut's fields in its order, as plain
    values that app.http.responses encodes to the bytes the model would."""
    return {"id": row["id"], "url": row["url"], "event_types": list(row["event_types"]),
            "description": row["description"], "enabled": row["enabled"],
            "disabled_reason": row["disabled_reason"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


def endpoint_out(row: Any) -> EndpointOut:
    return EndpointOut.model_construct(**endpoint_json(row))


def _subscriptions(types: list[str]) -> list[str]:
    return ["*"] if "*" in types else sorted(set(types))


async def create_endpoint(*, data: EndpointCreate, allow_private: bool) -> EndpointWithSecret:
    await check(data.url, allow_private=allow_private)
    now = utcnow()
    row = await queries.insert_endpoint({
        "id": uuid.uuid4(), "url": data.url, "event_types": _subscriptions(data.event_types),
        "description": data.description, "secret": new_secret(), "created_at": now,
        "updated_at": now})
    return EndpointWithSecret.model_construct(**endpoint_out(row).__dict__,
                                              secret=row["secret"])


async def get_endpoint(*, endpoint_id: uuid.UUID) -> EndpointOut:
    row = await queries.endpoint(endpoint_id)
    if row is None:
        raise EndpointNotFound(f"no webhook endpoint with id {endpoint_id}", source="path")
    return endpoint_out(row)


async def list_endpoints(*, limit: int, cursor: str | None) -> dict[str, Any]:
    """Oldest first, as plain values (app.pagination.page_json)."""
    rows = await queries.endpoint_page(limit, decode_cursor(cursor) if cursor else None)
    return page_json(rows, limit, endpoint_json)


async def update_endpoint(*, endpoint_id: uuid.UUID, data: EndpointUpdate,
                          allow_private: bool) -> EndpointOut:
    changes = data.model_dump(exclude_unset=True)
    values: dict[str, Any] = {}
    if changes.get("url") is not None:
        await check(changes["url"], allow_private=allow_private)
        values["url"] = changes["url"]
    if changes.get("event_types") is not None:
        values["event_types"] = _subscriptions(changes["event_types"])
    if changes.get("description") is not None:
        values["description"] = changes["description"]
    if changes.get("enabled") is not None:
        values["enabled"] = changes["enabled"]
        if changes["enabled"]:  # re-enabled: its failures so far no longer count
            values.update(disabled_reason=None, failing_since=None)
        else:
            values["disabled_reason"] = "disabled by an admin"
    if values:
        values["updated_at"] = utcnow()
        if not await queries.update_endpoint(endpoint_id, values):
            raise EndpointNotFound(f"no webhook endpoint with id {endpoint_id}",
                                   source="path")
    return await get_endpoint(endpoint_id=endpoint_id)


async def delete_endpoint(*, endpoint_id: uuid.UUID) -> None:
    """Its pending deliveries go with it."""
    if not await queries.delete_endpoint(endpoint_id):
        raise EndpointNotFound(f"no webhook endpoint with id {endpoint_id}", source="path")


async def rotate_secret(*, endpoint_id: uuid.UUID, overlap_seconds: int) -> SecretOut:
    """One statement: two rotations at once each keep the secret they replaced."""
    now, secret = utcnow(), new_secret()
    if not await queries.rotate_secret(endpoint_id, secret,
                                       now + timedelta(seconds=overlap_seconds), now):
        raise EndpointNotFound(f"no webhook endpoint with id {endpoint_id}", source="path")
    return SecretOut(secret=secret)
