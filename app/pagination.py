"""Keyset pagination: newest first by (created_at, id), with an opaque cursor."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from app.errors import Unprocessable

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, OverflowError) as exc:
        raise Unprocessable(
            "cursor is not one this API issued; pass next_cursor from the previous page",
            code="invalid_cursor",
            loc=["query", "cursor"],
        ) from exc


def next_cursor(rows: list, limit: int) -> str | None:
    """`rows` was fetched with limit + 1; a surplus row means there is another page."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(last.created_at, last.id)
