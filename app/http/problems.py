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
    431: ["request_headers_too_large"],
    500: ["internal_error"],
    503: ["database_unavailable", "database_busy"],
}
_WITH_BODY: dict[int, list[str]] = {413: ["payload_too_large"], 415: ["unsupported_media_type"]}
AUTH: dict[int, list[str]] = {401: ["not_authenticated"]}
ADMIN: dict[int, list[str]] = {401: ["not_authenticated"], 403: ["forbidden"]}


# A typical `detail` for every code, shown as the examples of each error in /docs.
EXAMPLES: dict[str, str] = {
    "validation_error": "body.amount: amount must be greater than 0",
    "read_only_field": "status is computed from the invoice's transactions and cannot be set "
                       "(it is pending)",
    "invalid_party": "payer_id: user 0b8f5c43-6d1a-4b7e-9a52-2f0c6f1b7a10 is deactivated",
    "invalid_cursor": "cursor is not one this API issued; pass next_cursor from the previous "
                      "page",
    "idempotency_key_reused": "this Idempotency-Key was already used with a different "
                              "request; use a new key for a new request",
    "not_authenticated": "sign in first: send 'Authorization: Bearer <token>'",
    "invalid_credentials": "incorrect username or password",
    "invalid_signature": "signature does not match the body",
    "forbidden": "this needs an admin account",
    "user_not_found": "no user with id 0b8f5c43-6d1a-4b7e-9a52-2f0c6f1b7a10",
    "invoice_not_found": "no invoice with id 3f1e6d2a-8c4b-4f0e-b7a9-5d2c1e0f9a84",
    "transaction_not_found": "no transaction with id 9a7b3c1d-2e4f-4a6b-8c0d-1e2f3a4b5c6d",
    "event_not_found": "no event with id evt_5f0c3a1e9b2d4c8e8a7b6c5d4e3f2a1b",
    "endpoint_not_found": "no webhook endpoint with id 6d2c1e0f-9a84-4f0e-b7a9-3f1e6d2a8c4b",
    "invalid_url": "url's host 'localhost' resolves to 127.0.0.1, a loopback or private "
                   "address; endpoints must be public (WEBHOOK_ALLOW_PRIVATE_URLS=true allows "
                   "them)",
    "username_taken": "that username is taken",
    "email_taken": "that email is already registered",
    "last_admin": "this is the last active admin; make another admin first",
    "amount_exceeds_due": "payment of 30.00 exceeds the amount due 10.00",
    "amount_exceeds_refundable": "refund of 50.00 exceeds the refundable amount 20.00",
    "amount_below_paid": "amount 40.00 is below the 50.00 already paid",
    "money_has_moved": "currency cannot change once money has moved",
    "invoice_has_transactions": "this invoice has transactions and is part of the ledger; it "
                                "cannot be deleted",
    "invoice_changed": "the invoice kept changing while this was being recorded; retry",
    "idempotency_key_in_use": "a request with this Idempotency-Key is still being processed; "
                              "retry shortly",
    "event_id_reused": "event id evt_1N2b3C was already delivered with a different body",
    "payload_too_large": "request body is larger than 65536 bytes",
    "request_headers_too_large": "request headers total 20480 bytes, more than the 16384 "
                                 "accepted",
    "invoice_void": "a void invoice cannot be changed",
    "invoice_paid": "the invoice is paid in full: nothing is left to collect",
    "amount_exceeds_credit": "the payer's credit is 20.00 INR; 30.00 cannot be applied",
    "credit_balance_too_large": "the balance would be 10000000000000.00 INR, more than the "
                                "largest amount this service keeps",
    "unsupported_media_type": "this route takes a body as application/json, not text/plain: "
                              "send Content-Type: application/json",
    "too_many_attempts": "too many failed logins for this account; try again in 300 seconds",
    "internal_error": "an unexpected error occurred; quote request id 5f0c… when reporting it",
    "database_unavailable": "the database is not reachable right now; retry shortly",
    "database_busy": "the database was too busy to finish this request; retry shortly",
}


def problems(*groups: dict[int, list[str]], body: bool = False) -> dict[int | str, Any]:
    """OpenAPI `responses` for the problem+json errors a route can give: the codes listed,
    and an example of each."""
    merged: dict[int, list[str]] = {}
    for group in (*groups, _ALWAYS, _WITH_BODY if body else {}):
        for status, codes in group.items():
            merged.setdefault(status, [])
            merged[status] += [c for c in codes if c not in merged[status]]
    return {
        status: {
            "content": {PROBLEM_JSON: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "examples": {code: {"summary": code, "value": problem_body(
                    status, code, EXAMPLES.get(code, code.replace("_", " ")))}
                    for code in codes}}},
            "description": "`" + "`, `".join(codes) + "`",
        }
        for status, codes in sorted(merged.items())
    }
