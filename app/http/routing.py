"""The app's route class: every route reads JSON exactly and gives its database
connection back when it is done."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from app.db.transaction import release_connection
from app.http.jsonbody import ExactJSONRequest


class AppRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            # The dependencies, the endpoint and its unit of work all run in here, on one
            # pooled connection at most (taken on first use); it goes back here, whatever
            # happened, before the answer is sent.
            try:
                return await handler(ExactJSONRequest(request.scope, request.receive))
            finally:
                await release_connection()

        return handle


def make_router(**kwargs: Any) -> APIRouter:
    """Every router of the app."""
    return APIRouter(route_class=AppRoute, **kwargs)
