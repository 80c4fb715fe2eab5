"""The exception handlers: every error leaves as problem+json with the right status."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import peewee
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from app.db import failures
from app.errors import DomainError
from app.http.problems import PROBLEM_JSON, problem_body, problem_of

log = logging.getLogger("app.errors")


def problem(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None,
            errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse(problem_body(status, code, detail, errors), status_code=status,
                        headers=headers, media_type=PROBLEM_JSON)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Each error once: a path parameter that a dependency reads too (the caller check of
    /users/{user_id}/...) is validated by both, and FastAPI lists both."""
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        ctx = err.get("ctx") or {}
        if err.get("type") == "json_invalid" and ctx.get("error"):
            msg = f"body is not valid JSON: {ctx['error']}"
        error = {"loc": list(err.get("loc", ())), "msg": msg, "type": err.get("type")}
        if error not in errors:
            errors.append(error)
    return errors


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "-")


def _database_problem(request: Request, exc: BaseException) -> JSONResponse | None:
    """503 for an outage or contention the client can retry; None for anything else."""
    if failures.contention(exc):
        log.warning("database contention: %s", failures.sqlstate(exc),
                    extra={"request_id": _request_id(request)})
        return problem(503, "database_busy",
                       "the database was too busy to finish this request; retry shortly",
                       headers={"Retry-After": "1"})
    if failures.database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__,
                    extra={"request_id": _request_id(request)})
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
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        status, body, headers = problem_of(exc)
        return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"]) or "request"
        return problem(422, "validation_error", f"{where}: {first['msg']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                415: "unsupported_media_type"}.get(
            exc.status_code, HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_"))
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
            detail = f"{request.url.path} accepts {headers['Allow']}"
        return problem(exc.status_code, code, detail, headers=headers)

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        return _database_problem(request, exc) or await _unexpected(request, exc)

    # Database failures get their own handler: the catch-all below also re-raises (so the
    # server logs a traceback), which an expected outage should not do.
    for exc_class in (peewee.PeeweeException, asyncpg.PostgresError,
                      asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
        app.add_exception_handler(exc_class, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        response = _database_problem(request, exc)
        if response is not None:
            return response
        request_id = _request_id(request)
        log.exception("unhandled error", extra={"request_id": request_id})
        return problem(500, "internal_error",
                       f"an unexpected error occurred; quote request id {request_id} when "
                       "reporting it")
