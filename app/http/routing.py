"""The app's route class: every route reads JSON exactly, refuses a body in a media type it
does not take, and gives its database connection back when it is done."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from app.db.connection import reading_from_replica
from app.db.failures import contention, database_unavailable
from app.db.guard import set_guard, settle_pending
from app.db.transaction import release_connection
from app.errors import DomainError
from app.http.jsonbody import ExactJSONRequest
from app.http.params import QUERY_MODEL, QueryInvalid, openapi_parameters

NOT_STARTED = ("the app's lifespan has not run, so it has no database: serve it with uvicorn, "
               "or in tests use `with TestClient(app) as client:` (a TestClient made without "
               "`with` never starts the app)")


class AppRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._bearer = _bearer_of(self.dependant)
        self._document_query_models()
        documented = ((self.openapi_extra or {}).get("requestBody") or {}).get("content")
        # The media types the route's body may come in; None: it takes no body.
        self.media_types: list[str] | None = (
            list(documented) if documented else ["application/json"] if self.body_field
            else None)

    def _document_query_models(self) -> None:
        """The query parameters of the route's query_of() models (app/http/params.py), which
        FastAPI does not see as parameters, written into its OpenAPI operation."""
        extra = dict(self.openapi_extra or {})
        parameters = list(extra.get("parameters", []))
        for model in _query_models(self.dependant):
            known = {(p["name"], p["in"]) for p in parameters}
            parameters += [p for p in openapi_parameters(model)
                           if (p["name"], p["in"]) not in known]
        if parameters:
            self.openapi_extra = {**extra, "parameters": parameters}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if getattr(self.endpoint, WITHOUT_DATABASE, False):
            return handler

        async def handle(request: Request) -> Response:
            if not getattr(request.app.state, "started", False):
                raise RuntimeError(NOT_STARTED)
            # The dependencies, the endpoint and its unit of work all run in here, on one
            # pooled connection at most (taken on first use); it goes back here, whatever
            # happened, before the answer is sent. A GET only reads: from the replica, if
            # there is one (a unit of work that writes takes the primary regardless).
            reading_from_replica(request.method in ("GET", "HEAD"))
            set_guard(None)
            try:
                try:
                    self._check_media_type(request)
                    response = await handler(
                        request if self.media_types is None  # no body to read
                        else ExactJSONRequest(request.scope, request.receive))
                except Exception as exc:
                    # The caller comes first: a refused one learns nothing from the route's
                    # own answer, not even about its body.
                    await self._caller_before(request, exc)
                    if isinstance(exc, QueryInvalid):
                        raise self._with_path_errors(request, exc) from None
                    raise
                await settle_pending()
                return response
            finally:
                await release_connection()

        return handle

    async def _caller_before(self, request: Request, exc: Exception) -> None:
        """Raise the caller's refusal, if there is one, instead of `exc`: from a token check
        no statement carried (app/db/guard.py), or from the route's bearer token itself
        when the request failed before its dependencies ran (a body that is not JSON, or
        in another media type)."""
        if database_unavailable(exc) or contention(exc):
            return  # 503 either way: checking alone would only wait for the pool again
        try:
            if self._bearer is not None and BEARER_READ not in request.scope:
                await self._bearer(request)
            await settle_pending()
        except DomainError as refused:
            raise refused from exc

    def _with_path_errors(self, request: Request, exc: QueryInvalid) -> RequestValidationError:
        """`exc` after the errors of the route's own path parameters, in FastAPI's order: a
        query_of() dependency raised before FastAPI had read them."""
        _, errors = request_params_to_args(self.dependant.path_params, request.path_params)
        return RequestValidationError([*errors, *exc.errors()]) if errors else exc

    def _check_media_type(self, request: Request) -> None:
        """415 for a body the route does not read: another media type, or none at all (as
        FastAPI's own strict default would not read it either)."""
        if self.media_types is None:
            return
        headers = request.headers
        if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
            return  # no body: the route's own validation says what is missing
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type in self.media_types or (
                media_type.endswith("+json") and "application/json" in self.media_types):
            return
        raise HTTPException(415, f"this route takes a body as {' or '.join(self.media_types)}"
                                 f", not {media_type or 'one without a Content-Type'}: send "
                                 f"Content-Type: {self.media_types[-1]}")


WITHOUT_DATABASE = "_app_without_database"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def without_database(endpoint: Endpoint) -> Endpoint:
    """Marks a route that never touches the database and reads no body (liveness): none of
    the route class's per-request work runs for it (docs/PERFORMANCE.md)."""
    setattr(endpoint, WITHOUT_DATABASE, True)
    return endpoint


# Set in the scope by the app's bearer-token dependency once it has run (app/auth/deps.py).
BEARER_READ = "app.bearer_read"


def _bearer_of(dependant: Dependant) -> OAuth2PasswordBearer | None:
    """The route's bearer-token dependency, however deep, if it has one."""
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, OAuth2PasswordBearer):
            return dependency.call
        if (found := _bearer_of(dependency)) is not None:
            return found
    return None


def _query_models(dependant: Dependant) -> list[type[BaseModel]]:
    models = []
    for dependency in dependant.dependencies:
        if (model := getattr(dependency.call, QUERY_MODEL, None)) is not None:
            models.append(model)
        models += _query_models(dependency)
    return models


def make_router(**kwargs: Any) -> APIRouter:
    """Every router of the app."""
    return APIRouter(route_class=AppRoute, **kwargs)
