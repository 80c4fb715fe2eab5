"""Query and header parameters shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query

from app.pagination import MAX_LIMIT

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size (1–100)")]
Cursor = Annotated[str | None, Query(max_length=512,
                                     description="next_cursor from the previous page")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255,
           description="retry safely: the same key and body replay the first response"),
]
