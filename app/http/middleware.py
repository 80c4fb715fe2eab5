"""Plain ASGI middleware (no BaseHTTPMiddleware: peewee's async connections follow the task).

One pass per request: a request id in and out, trailing-slash paths routed like their
no-slash twins, HEAD answered as GET without the body, a cap on body size, security
headers, metrics and one JSON access-log line. It never touches the database: the route
class (app/http/routing.py) gives the request's connection back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.problems import PROBLEM_JSON, problem_body
from app.ops import metrics

access_log = logging.getLogger("app.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Added to every response. No page of ours may be framed (the HTML ones: /docs, /redoc).
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
]
_REPLACED = (b"x-request-id", b"server")


class BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body reader lets it through to the error handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int,
                 max_header_bytes: int = 16 * 1024) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        # One pass over the headers (this runs on every request: docs/PERFORMANCE.md).
        sent_id = b""
        declared_header = b"0"
        header_bytes = 0
        for key, value in scope.get("headers") or ():
            header_bytes += len(key) + len(value)
            if key == b"x-request-id":
                sent_id = value
            elif key == b"content-length":
                declared_header = value
        request_id = sent_id.decode("latin-1")
        if not _REQUEST_ID.match(request_id):
            request_id = os.urandom(16).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id

        method = scope["method"]
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope = dict(scope, path=path.rstrip("/") or "/",
                         raw_path=(scope.get("raw_path") or b"").rstrip(b"/") or b"/")
        if method == "HEAD":  # every GET route answers HEAD (RFC 9110); routes know GET only
            scope = dict(scope, method="GET")

        status_holder: dict[str, Any] = {"status": 500, "started": False}
        fixed_headers = [(b"x-request-id", request_id.encode()), *_SECURITY_HEADERS]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                out = list(fixed_headers)
                cached = False
                for key, value in message.get("headers") or ():
                    key = key.lower()
                    if key not in _REPLACED:
                        out.append((key, value))
                        cached = cached or key == b"cache-control"
                if not cached:
                    out.append((b"cache-control", b"no-store"))
                message["headers"] = out  # a fresh dict from the response, ours to change
            elif method == "HEAD" and message["type"] == "http.response.body":
                message = dict(message, body=b"")
            await send(message)

        try:
            declared = int(declared_header or 0)
        except ValueError:
            declared = 0
        try:
            if header_bytes > self.max_header_bytes:
                await self._refuse(send_wrapper, 431, "request_headers_too_large",
                                   f"request headers total {header_bytes} bytes, more than "
                                   f"the {self.max_header_bytes} accepted")
                return
            if declared > self.max_body_bytes:
                raise BodyTooLarge(self.max_body_bytes)
            await self.app(scope, self._limited(receive), send_wrapper)
        except BodyTooLarge:
            await self._refuse(send_wrapper, 413, "payload_too_large",
                               f"request body is larger than {self.max_body_bytes} bytes")
        except Exception:
            # What no handler of the app caught would otherwise be answered by Starlette's
            # outermost layer, outside this one: without the request id and the headers.
            # Answered here, then raised on: that layer logs it (app/http/handlers.py) and
            # sends nothing more, and a TestClient raises it in the developer's test.
            if not status_holder["started"]:
                await self._refuse(send_wrapper, 500, "internal_error",
                                   "an unexpected error occurred; quote request id "
                                   f"{request_id} when reporting it")
            raise
        finally:
            elapsed = time.perf_counter() - started
            duration_ms = round(elapsed * 1000, 2)
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            metrics.record_request(method, route_path, status_holder["status"], elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %s %.1f ms", method, scope["path"], status_holder["status"],
                    duration_ms, extra={
                        "request_id": request_id,
                        "method": method,
                        "path": scope["path"],
                        "route": route_path,
                        "status": status_holder["status"],
                        "duration_ms": duration_ms,
                        "user_id": state.get("user_id"),
                    })

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        return limited_receive

    async def _refuse(self, send: Send, status: int, code: str, detail: str) -> None:
        body = json.dumps(problem_body(status, code, detail)).encode()
        try:
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]})
            await send({"type": "http.response.body", "body": body})
        except Exception:
            pass
