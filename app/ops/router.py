"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import Request, Response
from pydantic import BaseModel

from app.config import Settings
from app.db.connection import db, reading_from_replica
from app.errors import Forbidden, NotAuthenticated, Unavailable
from app.http.deps import AppSettings
from app.http.problems import problems
from app.http.responses import json_response
from app.http.routing import make_router, without_database
from app.ops import metrics

router = make_router(tags=["operations"])

READY_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: str


@router.get("/health", response_model=Health, summary="Liveness (no database)")
@without_database
async def health() -> Response:
    """Answers while the process runs, without touching the database."""
    return Response(_OK, media_type="application/json")


_OK = Health(status="ok").model_dump_json().encode()


@router.get("/metrics", summary="Prometheus metrics (bearer METRICS_TOKEN when set)",
            response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"},
                       **problems({401: ["not_authenticated"], 403: ["forbidden"]})})
async def metrics_endpoint(request: Request, settings: AppSettings) -> Response:
    """Prometheus text format: requests, latencies, transactions, provider events, pool.
    With `METRICS_TOKEN` set, only with `Authorization: Bearer <METRICS_TOKEN>`; in
    production, closed until it is set."""
    _check_scraper(request, settings)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


def _check_scraper(request: Request, settings: Settings) -> None:
    if settings.metrics_token is None:
        if settings.app_env == "production":
            raise Forbidden("metrics are closed in production until METRICS_TOKEN is set")
        return
    sent = request.headers.getlist("authorization")
    expected = f"Bearer {settings.metrics_token}".encode()
    if len(sent) != 1 or not hmac.compare_digest(sent[0].encode(), expected):
        raise NotAuthenticated("send 'Authorization: Bearer <METRICS_TOKEN>'")


@router.get("/ready", response_model=Health, summary="Readiness: the database answers",
            responses=problems({503: ["database_unavailable"]}))
async def ready() -> Response:
    """200 when the primary answers within 2 s and takes writes, else 503: for load
    balancers. (Never the replica: a server that cannot take payments is not ready.)"""
    reading_from_replica(False)
    try:  # in this task (not wait_for's), so the connection it holds is this request's
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            row = (await db.aexecute_sql("SELECT pg_is_in_recovery()")).fetchone()
    except Exception as exc:
        raise Unavailable("the database is not answering") from exc
    if row[0]:
        await db.discard_connection()  # the next one may reach the new primary
        raise Unavailable("the database is a standby and does not take writes")
    return json_response(Health(status="ready"))
