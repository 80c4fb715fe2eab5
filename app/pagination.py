"""Keyset pagination by (created_at, id), with an opaque cursor: one implementation for
every list. A query fetches `limit + 1` rows past the cursor; `page_json()` keeps `limit` of
them and makes the next cursor from the last one kept when there was a surplus row."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from app.errors import Invalid

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


class InvalidCursor(Invalid, code="invalid_cursor"): ...


def encode_cursor(created_at: datetime, row_id: Any) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, id_of: Callable[[str], Any] = uuid.UUID) -> tuple[datetime, Any]:
    """The (created_at, id) after which the next page starts; `id_of` parses the id."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when.astimezone(UTC), id_of(row_id)
    except (ValueError, OverflowError) as exc:
        raise InvalidCursor(
            "cursor is not one this API issued; pass next_cursor from the previous page",
            field="cursor", source="query") from exc


def page_json(rows: Sequence[Mapping[str, Any]], limit: int,
              out: Callable[[Mapping[str, Any]], dict[str, Any]],
              id_key: str = "id") -> dict[str, Any]:
    """`limit` of the rows shaped by `out`, as plain values (app.http.responses encodes them
    as the route's `Page` model would), and the cursor past the last one kept when there
    was a surplus row."""
    kept = rows[:limit]
    return {"data": [out(row) for row in kept],
            "next_cursor": encode_cursor(kept[-1]["created_at"], kept[-1][id_key])
            if len(rows) > limit else None}
