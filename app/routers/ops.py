from __future__ import annotations

from fastapi import Response
from fastapi.responses import JSONResponse

from app import metrics
from app.routers.common import make_router, problems
from app.schemas import Health
from app.services import ops

router = make_router(tags=["operations"])


@router.get("/health", response_model=Health, summary="Liveness (no database)")
async def health() -> Health:
    return Health(status="ok")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}})
async def metrics_endpoint() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


@router.get(
    "/ready",
    response_model=Health,
    summary="Readiness: the database answers",
    responses=problems({503: ["database_unavailable"]}),
)
async def ready() -> Health | JSONResponse:
    await ops.check_database()
    return Health(status="ready")
