"""The app factory: settings in, routers, middleware, error handlers and the database's
lifecycle out. Everything the app uses of its settings comes from the `settings` given
here (kept on `app.state`), never from a global read deep inside."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.telemetry import TelemetryConfig
from starlette.middleware.cors import CORSMiddleware

from app import clock
from app.auth import router as auth_router
from app.auth.passwords import PasswordHasher
from app.auth.tokens import TokenCodec
from app.config import Settings, get_settings
from app.credit import router as credit_router
from app.db import connection, failures
from app.db.location import database_url
from app.db.migrations import migrate
from app.db.transaction import release_connection
from app.events import router as events_router
from app.events.worker import Deliverer
from app.http import replay
from app.http.docs import install_docs
from app.http.handlers import install_error_handlers
from app.http.middleware import RequestContextMiddleware
from app.http.problems import ErrorItem, Problem
from app.invoices import router as invoices_router
from app.ledger import router as ledger_router
from app.ops import router as ops_router
from app.ops.logging import configure_logging
from app.ops.runtime import tune_gc
from app.users import router as users_router
from app.webhooks import router as webhooks_router

log = logging.getLogger("app")

DESCRIPTION = """
Invoices between a payer and a receiver, a ledger of exact payments and refunds, and signed
webhooks from the payment provider.

The flow: an admin creates an invoice (**invoices**), records payments against it, several
partial ones if need be (**transactions**), and the payment provider reports what happened
through signed events (**webhooks**). Log in with **Authorize** (`/login` takes the
username or the email); the first admin is made with `python -m app create-admin`.

Every error is `application/problem+json` with a stable `code`. Amounts are JSON numbers or
decimal strings in, strings with the currency's exact decimals out. `Idempotency-Key` makes
a retried POST safe.
"""

# In the order /docs shows them: the payment flow first.
TAGS = [
    {"name": "invoices", "description": "Invoices between a payer and a receiver: admins "
     "create and change them; the payer and the receiver may read them."},
    {"name": "transactions", "description": "The ledger: payments and refunds against an "
     "invoice, each an immutable row. An invoice's sums and status follow from them."},
    {"name": "webhooks", "description": "Events from the payment provider, signed with "
     "`X-Signature` (Authorize: `t=<unix seconds>,v1=<hex>`, made by "
     "`python -m app sign-webhook FILE`). Each event id takes effect once."},
    {"name": "events", "description": "Events to the merchant's systems: every change of "
     "an invoice or of money, written with the change, and POSTed to the webhook endpoints "
     "subscribed to it, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, "
     "`webhook-signature`), retried with growing delays, in order per invoice."},
    {"name": "users", "description": "Accounts: anyone signs up; admins manage the rest."},
    {"name": "auth", "description": "Log in for a bearer token; log out to revoke it."},
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
]


def _document(app: FastAPI) -> None:
    """The OpenAPI document: tags in order, the problem+json schema the routes refer to, and
    the provider's signature as a security scheme."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes, tags=TAGS)
            components = schema.setdefault("components", {})
            models = components.setdefault("schemas", {})
            for model in (Problem, ErrorItem):
                models[model.__name__] = model.model_json_schema(
                    ref_template="#/components/schemas/{model}")
                models[model.__name__].pop("$defs", None)
            components.setdefault("securitySchemes", {})["ProviderSignature"] = {
                "type": "apiKey", "in": "header", "name": "X-Signature",
                "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of f'{t}.' + raw body>"}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _start_deliveries(settings: Settings) -> Callable[[], Awaitable[None]]:
    """The in-process delivery worker; returns what stops it (letting sends finish)."""
    deliverer, stop = Deliverer(settings), asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop), name="deliveries")

    async def stopped() -> None:
        stop.set()
        try:
            await asyncio.wait_for(task, settings.delivery_timeout_seconds + 5)
        except TimeoutError:
            log.warning("delivery worker did not stop in time; its leases will run out")
        await deliverer.aclose()

    return stopped


_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.resolved_log_format)
    hasher = PasswordHasher(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_gc()
        url = await asyncio.to_thread(database_url, settings)
        connection.configure(settings, url, settings.read_database_url)
        clock.configure(settings)
        if settings.migrate_on_start:
            await asyncio.to_thread(migrate, url)
        await hasher.warm_up()
        try:
            await replay.purge_expired()
        except Exception as exc:  # housekeeping must not stop the start
            log.warning("could not purge expired replays", extra={
                "error": failures.describe(exc)},
                exc_info=not failures.database_unavailable(exc))
        finally:
            await release_connection()  # the lifespan task lives as long as the app
        delivering = _start_deliveries(settings) if settings.deliver_in_process else None
        log.info("ready", extra={"env": settings.app_env})
        app.state.started = True
        yield
        app.state.started = False
        if delivering is not None:
            await delivering()
        await connection.close()

    app = FastAPI(title="Payment App", version="1.0.0", description=DESCRIPTION,
                  lifespan=lifespan, redirect_slashes=False, docs_url=None, redoc_url=None,
                  telemetry=None if settings.opentelemetry else _NO_TELEMETRY)
    app.state.settings = settings
    app.state.hasher = hasher
    app.state.tokens = TokenCodec(settings)
    install_error_handlers(app)
    _document(app)
    # Routes are matched in order, at about a microsecond each (docs/PERFORMANCE.md): the
    # busiest first. No two routers' paths overlap, so the order changes nothing else.
    for module in (ops_router, invoices_router, ledger_router, webhooks_router, auth_router,
                   users_router, credit_router, events_router):
        app.include_router(module.router)
    install_docs(app)

    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes,
                       max_header_bytes=settings.max_header_bytes)
    return app
