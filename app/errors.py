"""Domain errors and the one handler that turns every error into problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import peewee
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

log = logging.getLogger("app.errors")

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    """A refusal the client can act on. Subclasses fix `status` and `code`."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.errors = errors


class NotAuthenticated(AppError):
    status, code = 401, "not_authenticated"

    def __init__(self, detail: str = "sign in first: send 'Authorization: Bearer <token>'",
                 **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class AmountExceedsDue(Conflict):
    code = "amount_exceeds_due"


class AmountExceedsRefundable(Conflict):
    code = "amount_exceeds_refundable"


class Unprocessable(AppError):
    """422 with `errors` naming the fields at fault."""

    status, code = 422, "validation_error"

    def __init__(self, detail: str, *, loc: list[str | int] | None = None, **kw: Any) -> None:
        if loc is not None and "errors" not in kw:
            kw["errors"] = [{"loc": loc, "msg": detail, "type": kw.get("code") or self.code}]
        super().__init__(detail, **kw)


class ReadOnlyField(Unprocessable):
    code = "read_only_field"


class TooManyAttempts(AppError):
    status, code = 429, "too_many_attempts"


class InvalidSignature(AppError):
    status, code = 401, "invalid_signature"


class DatabaseUnavailable(AppError):
    status, code = 503, "database_unavailable"


def problem_body(
    status: int, code: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return body


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, code, detail, errors),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        ctx = err.get("ctx") or {}
        if err.get("type") == "json_invalid" and ctx.get("error"):
            msg = f"body is not valid JSON: {ctx['error']}"
        errors.append({"loc": list(err.get("loc", ())), "msg": msg, "type": err.get("type")})
    return errors


def is_database_unavailable(exc: BaseException) -> bool:
    """The database is down, restarting or unreachable, or the pool had no connection."""
    import asyncio

    from app.db import connection_broken, underlying

    if connection_broken(exc):
        return True
    current: BaseException | None = exc
    for _ in range(5):
        if current is None:
            return False
        if isinstance(current, asyncio.TimeoutError):
            return True
        if isinstance(current, (peewee.OperationalError, peewee.InterfaceError)):
            message = str(current).lower()
            if "timed out" in message or "pool" in message or "connect" in message:
                return True
        current = underlying(current)
    return False


def _database_problem(request: Request, exc: Exception) -> JSONResponse | None:
    """503 for an outage or contention the client can retry; None for anything else."""
    from app.db import RETRYABLE_SQLSTATES, sqlstate

    request_id = request.scope.get("state", {}).get("request_id", "-")
    code = sqlstate(exc)
    if code in RETRYABLE_SQLSTATES or code in ("57014", "55P03"):
        log.warning("database contention: %s", code, extra={"request_id": request_id})
        return problem(503, "database_busy",
                       "the database was too busy to finish this request; retry shortly",
                       headers={"Retry-After": "1"})
    if is_database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__,
                    extra={"request_id": request_id})
        return problem(503, "database_unavailable",
                       "the database is not reachable right now; retry shortly",
                       headers={"Retry-After": "1"})
    return None


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path (routing stops at the first route whose
    path matches, so its own 405 names only that route's methods)."""
    state = request.app.state
    if not hasattr(state, "route_methods"):
        state.route_methods = [(compile_path(ctx.path)[0], ctx.methods)
                               for ctx in iter_route_contexts(request.app.routes)
                               if ctx.path and ctx.methods]
    methods: set[str] = set()
    for pattern, route_methods in state.route_methods:
        if pattern.match(request.scope["path"]):
            methods |= route_methods
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.detail, headers=exc.headers, errors=exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"]) or "request"
        return problem(422, "validation_error", f"{where}: {first['msg']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        )
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
            detail = f"{request.url.path} accepts {headers['Allow']}"
        return problem(exc.status_code, code, detail, headers=headers)

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        response = _database_problem(request, exc)
        if response is None:
            return await _unexpected(request, exc)
        return response

    # Database failures get their own handler: the catch-all below also re-raises (so the
    # server logs a traceback), which an expected outage should not do.
    import asyncpg

    for exc_class in (peewee.PeeweeException, asyncpg.PostgresError,
                      asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
        app.add_exception_handler(exc_class, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        response = _database_problem(request, exc)
        if response is not None:
            return response
        request_id = request.scope.get("state", {}).get("request_id", "-")
        log.exception("unhandled error", extra={"request_id": request_id})
        return problem(500, "internal_error",
                       f"an unexpected error occurred; quote request id {request_id} when "
                       "reporting it")
