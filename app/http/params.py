"""Query and header parameters shared by the routers.

A route's query parameters are one pydantic model (`PageQuery` or a model that extends it),
taken by the endpoint as `Annotated[Model, Depends(query_of(Model))]`: one validation of the
whole query string per request. FastAPI's own handling of `Query()` parameters validates
each one on its own and works out again, on every request, what kind of field it is: the
invoice list's eight cost about 120 µs of a request's 930 µs of CPU (docs/PERFORMANCE.md).
The route class documents the model's fields in the OpenAPI document as the query
parameters FastAPI would have written (`openapi_parameters`), and errors keep FastAPI's
shape: 422 `validation_error`, each at `["query", name]`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from app.pagination import DEFAULT_LIMIT, MAX_LIMIT

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255,
           description="retry safely: the same key and body replay the first response"),
]


class PageQuery(BaseModel):
    """A page of a list (app/pagination.py)."""

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="page size (1–100)")] = \
        DEFAULT_LIMIT
    cursor: Annotated[str | None, Field(max_length=512,
                                        description="next_cursor from the previous page")] = None


class QueryInvalid(RequestValidationError):
    """Raised by a query_of() dependency; the route class adds the errors of the route's own
    path parameters, which FastAPI would have listed with them (app/http/routing.py)."""


Model = TypeVar("Model", bound=BaseModel)
# Set on the dependency query_of() makes: the model the route class documents.
QUERY_MODEL = "_app_query_model"


def query_of(model: type[Model]) -> Callable[[Request], Awaitable[Model]]:
    """The dependency that reads the request's query string as `model`. A name given more
    than once counts with its last value, as in FastAPI; names the model lacks are ignored."""

    async def read_query(request: Request) -> Model:
        try:
            return model.model_validate(dict(request.query_params))
        except ValidationError as exc:
            raise QueryInvalid(
                [{**err, "loc": ("query", *err["loc"])}
                 for err in exc.errors(include_url=False)]) from None

    setattr(read_query, QUERY_MODEL, model)
    return read_query


def openapi_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """`model`'s fields as OpenAPI query parameters, as FastAPI writes a `Query()` one."""
    schema = model.model_json_schema(by_alias=True)
    if "$defs" in schema:  # they would point at components the document does not have
        raise TypeError(f"{model.__name__}: a query model's fields must have schemas of their "
                        f"own (a Literal, not an Enum class or a model): {list(schema['$defs'])}")
    parameters = []
    for name, field in model.model_fields.items():
        alias = field.alias or name
        prop = dict(schema["properties"][alias])
        if prop.get("default", ...) is None:
            del prop["default"]
        parameter: dict[str, Any] = {"name": alias, "in": "query",
                                     "required": field.is_required(), "schema": prop}
        if field.description:
            parameter["description"] = field.description
        if field.deprecated:
            parameter["deprecated"] = True
        parameters.append(parameter)
    return parameters


# A list's page and nothing else.
PageParams = Annotated[PageQuery, Depends(query_of(PageQuery))]
