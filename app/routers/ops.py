from __future__ import annotations

from fastapi.responses import JSONResponse

from app.errors import PROBLEM_JSON
from app.routers.common import make_router
from app.schemas import Health
from app.services import ops

router = make_router(tags=["operations"])


@router.get("/health", response_model=Health, summary="Liveness (no database)")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Health,
    summary="Readiness: the database answers",
    responses={503: {"description": "database unavailable", "content": {PROBLEM_JSON: {}}}},
)
async def ready() -> Health | JSONResponse:
    await ops.check_database()
    return Health(status="ready")
