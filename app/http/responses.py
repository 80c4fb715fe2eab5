"""The one way a route answers with a JSON body."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import Response
from pydantic import BaseModel

from app.http.problems import PROBLEM_JSON

# UUIDs, dates and UTC datetimes (with a Z, as app.http.fields.Timestamp writes them)
# encode natively; key order is kept. A naive datetime counts as UTC, as Timestamp takes
# it. (An aware one in another zone would keep its offset, where Timestamp converts it:
# none reaches here, as the driver returns timestamptz in UTC.)
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _encode_other(value: Any) -> str:
    """asyncpg's own UUID type (a uuid.UUID subclass orjson does not take as one)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_body(body: BaseModel | dict[str, Any] | list[Any]) -> bytes:
    """Encoded once: a model by pydantic-core, plain values by orjson (measured: both beat
    the standard library, and a list page built as plain values costs a quarter of one
    built as models; docs/PERFORMANCE.md)."""
    if isinstance(body, BaseModel):
        return body.model_dump_json().encode()
    return orjson.dumps(body, default=_encode_other, option=_OPTIONS)


def json_response(body: BaseModel | dict[str, Any] | list[Any], *, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """(Returned as a model, FastAPI would first validate it again against the route's
    response_model, which costs as much as building it; bodies here are built from the
    app's own rows.)"""
    return Response(json_body(body), status_code=status, headers=headers,
                    media_type=PROBLEM_JSON if status >= 400 else "application/json")
