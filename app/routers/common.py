"""Small helpers shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from app.errors import PROBLEM_JSON
from app.jsonbody import ExactJSONRoute
from app.pagination import MAX_LIMIT
from app.services.idempotency import Outcome

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size (1–100)")]
Cursor = Annotated[str | None, Query(max_length=512,
                                     description="next_cursor from the previous page")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255,
           description="retry safely: the same key and body replay the first response"),
]


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


def make_router(**kwargs: Any) -> APIRouter:
    """Routers whose JSON bodies keep numbers exact (see app/jsonbody.py)."""
    return APIRouter(route_class=ExactJSONRoute, **kwargs)


def json_of(model: BaseModel) -> Response:
    """Serialise a response once. Returned as a model, FastAPI would first validate it
    against the route's response_model, which costs as much as building it."""
    return Response(model.model_dump_json(), media_type="application/json")


def outcome_response(outcome: Outcome) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    media = "application/problem+json" if outcome.status >= 400 else "application/json"
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers,
                        media_type=media)


def validate_as(model: type[BaseModel], data: Any, loc: str = "body") -> Any:
    """Validate outside FastAPI's own parsing, failing the same way it does."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": (loc, *err["loc"])} for err in exc.errors()]
        ) from None
