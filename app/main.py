"""The app factory: settings, database lifecycle, routers, middleware, error handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from app import db as database
from app.config import Settings, get_settings
from app.errors import install_error_handlers
from app.logging_setup import configure_logging
from app.middleware import RequestContextMiddleware
from app.routers import auth, invoices, ops, transactions, users, webhooks
from app.schemas import ErrorItem, Problem
from app.security import warm_up
from app.services import idempotency

log = logging.getLogger("app")

DESCRIPTION = """
Invoices between a payer and a receiver, a ledger of exact payments and refunds, and signed
webhooks from the payment provider. Every error is `application/problem+json` with a stable
`code`. Amounts are strings with the currency's exact decimals.
"""


def _document_problems(app: FastAPI) -> None:
    """Put the problem+json schema the routes refer to into the OpenAPI components."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (Problem, ErrorItem):
                components[model.__name__] = model.model_json_schema(
                    ref_template="#/components/schemas/{model}")
                components[model.__name__].pop("$defs", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = await asyncio.to_thread(database.database_url, settings)
        database.init_database(settings, url)
        if settings.migrate_on_start:
            await asyncio.to_thread(database.migrate, url)
        await warm_up()
        try:
            await idempotency.purge_expired()
        except Exception:  # housekeeping must not stop the start
            log.warning("could not purge expired idempotency keys", exc_info=True)
        finally:
            # The lifespan task lives as long as the app: hand its connection back now.
            await database.db.aclose()
        log.info("ready", extra={"env": settings.app_env})
        yield
        await database.close_database()

    app = FastAPI(
        title="Payment App",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    install_error_handlers(app)
    _document_problems(app)
    for module in (ops, auth, users, invoices, transactions, webhooks):
        app.include_router(module.router)

    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
