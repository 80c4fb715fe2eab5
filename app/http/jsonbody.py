"""JSON bodies parsed exactly: numbers with a fraction or exponent become Decimal, never float.

FastAPI reads bodies through `Request.json()`; the app's route class (app/http/routing.py)
hands endpoints an ExactJSONRequest, whose `json()` keeps `0.30000000000000004` as that
exact decimal so the money rules can refuse it, and turns NaN, Infinity, nesting deeper
than MAX_DEPTH and giant integers into a plain "not valid JSON" instead of a crash.

The depth limit is checked right after parsing, without recursion: everything after it
(validation, fingerprints, stored responses) may then walk a body recursively. The parser's
own recursion limit (about 1,000 levels) is not a safe bound, since those later walks start
deeper in the stack.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


# No body of this API comes near it; a client may nest this deep and no deeper.
MAX_DEPTH = 32
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def _deeper_than(value: Any, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def loads_exact(body: bytes | str) -> Any:
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        message = _TOO_DEEP if isinstance(exc, RecursionError) else str(exc)
        raise json.JSONDecodeError(message, text, 0) from None
    if _deeper_than(value, MAX_DEPTH):
        raise json.JSONDecodeError(_TOO_DEEP, text, 0)
    return value


class ExactJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = loads_exact(body)
            except UnicodeDecodeError:
                raise json.JSONDecodeError("body is not UTF-8", "", 0) from None
        return self._json


def json_invalid(message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": ("body",),
                                    "msg": "JSON decode error", "ctx": {"error": message}}])


def validate_as(model: type[BaseModel], data: Any, loc: str = "body") -> Any:
    """Validate a body read by the route itself, failing the way FastAPI's parsing does."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": (loc, *err["loc"])} for err in exc.errors()]) from None
