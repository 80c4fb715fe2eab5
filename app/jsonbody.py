"""JSON bodies parsed exactly: numbers with a fraction or exponent become Decimal, never float.

FastAPI reads bodies through `Request.json()`; the route class below hands endpoints a
request whose `json()` keeps `0.30000000000000004` as that exact decimal so the money
rules can refuse it, and turns NaN, Infinity, absurd nesting and giant integers into a
plain "not valid JSON" instead of a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def loads_exact(body: bytes | str) -> Any:
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise json.JSONDecodeError(message, text, 0) from None


class ExactJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = loads_exact(body)
            except UnicodeDecodeError:
                raise json.JSONDecodeError("body is not UTF-8", "", 0) from None
        return self._json


class ExactJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_handler(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact_handler
