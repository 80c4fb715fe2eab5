"""Every error as application/problem+json (RFC 9457), and its place in OpenAPI."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict

from app.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotAuthenticated,
    NotFound,
    TooManyAttempts,
    Unavailable,
)

PROBLEM_JSON = "application/problem+json"

_STATUS: list[tuple[type[DomainError], int]] = [
    (NotAuthenticated, 401), (Forbidden, 403), (NotFound, 404), (Conflict, 409),
    (Invalid, 422), (TooManyAttempts, 429), (Unavailable, 503),
]


def status_of(error: DomainError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400


def problem_body(status: int, code: str, detail: str,
                 errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
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


def problem_of(error: DomainError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) for a domain error."""
    status = status_of(error)
    errors = None
    if error.field is not None:
        errors = [{"loc": [error.source, error.field], "msg": error.detail, "type": error.code}]
    headers: dict[str, str] = {}
    if isinstance(error, NotAuthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return status, problem_body(status, error.code, error.detail, errors), headers


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str | None = None


class Problem(BaseModel):
    """Every error (RFC 9457 problem+json); `code` is the stable name to branch on."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": "about:blank", "title": "Conflict", "status": 409,
        "code": "amount_exceeds_due",
        "detail": "payment of 30.00 exceeds the amount due 10.00"}]})
    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str
    errors: list[ErrorItem] | None = None


# Every route may answer these; routes list their own codes on top.
_ALWAYS: dict[int, list[str]] = {
    500: ["internal_error"],
    503: ["database_unavailable", "database_busy"],
}
_WITH_BODY: dict[int, list[str]] = {413: ["payload_too_large"]}
AUTH: dict[int, list[str]] = {401: ["not_authenticated"]}
ADMIN: dict[int, list[str]] = {401: ["not_authenticated"], 403: ["forbidden"]}


def problems(*groups: dict[int, list[str]], body: bool = False) -> dict[int | str, Any]:
    """OpenAPI `responses` for the problem+json errors a route can give, codes listed."""
    merged: dict[int, list[str]] = {}
    for group in (*groups, _ALWAYS, _WITH_BODY if body else {}):
        for status, codes in group.items():
            merged.setdefault(status, [])
            merged[status] += [c for c in codes if c not in merged[status]]
    return {
        status: {
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            "description": "`" + "`, `".join(codes) + "`",
        }
        for status, codes in sorted(merged.items())
    }
