"""Events (the outbox, read-only) and the merchant's webhook endpoints: admin only."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Response

from app.auth.deps import AdminUser, check_now
from app.db.transaction import transaction
from app.events import endpoints, service
from app.events.schemas import (
    DeliveryAttempts,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventOut,
    EventQuery,
    RedeliverIn,
    RedeliverOut,
    SecretOut,
)
from app.http.deps import AppSettings
from app.http.params import PageParams, query_of
from app.http.problems import ADMIN, problems
from app.http.responses import json_response
from app.http.routing import make_router
from app.pagination import Page

router = make_router(tags=["events"])
EventId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$",
                              examples=["evt_5f0c3a1e9b2d4c8e8a7b6c5d4e3f2a1b"])]
EventListQuery = Annotated[EventQuery, Depends(query_of(EventQuery))]


@router.get("/events", response_model=Page[EventOut], summary="List events, newest first (admin)",
            responses=problems(ADMIN, {422: ["validation_error", "invalid_cursor"]}))
async def list_events(admin: AdminUser, query: EventListQuery) -> Response:
    """Every change of an invoice or of money, written in the same transaction as the
    change. Kept `EVENT_RETENTION_DAYS`."""
    return json_response(await service.list_events(
        limit=query.limit, cursor=query.cursor, type=query.type, invoice_id=query.invoice_id,
        created_after=query.created_after, created_before=query.created_before))


@router.get("/events/{event_id}", response_model=EventOut, summary="One event (admin)",
            responses=problems(ADMIN, {404: ["event_not_found"], 422: ["validation_error"]}))
async def get_event(event_id: EventId, admin: AdminUser) -> Response:
    """The event exactly as it is sent to endpoints."""
    return json_response(await service.get_event(event_id=event_id))


@router.get("/events/{event_id}/deliveries", response_model=DeliveryAttempts,
            summary="Every delivery attempt of an event (admin)",
            responses=problems(ADMIN, {404: ["event_not_found"], 422: ["validation_error"]}))
async def event_deliveries(event_id: EventId, admin: AdminUser) -> Response:
    """One row per attempt (a delivery not tried yet has one row with `attempt` null):
    endpoint, status code or error, duration, time, and when the next attempt is due."""
    return json_response(await service.event_deliveries(event_id=event_id))


@router.post("/events/{event_id}/redeliver", status_code=202, response_model=RedeliverOut,
             summary="Send an event again (admin)",
             responses=problems(ADMIN, {404: ["event_not_found", "endpoint_not_found"],
                                        422: ["validation_error"]}, body=True))
async def redeliver(event_id: EventId, admin: AdminUser,
                    body: RedeliverIn | None = None) -> Response:
    """A new delivery, due now, to `endpoint_id` or to every enabled endpoint subscribed
    to the event's type; also for events already delivered."""
    target = body.endpoint_id if body else None
    return json_response(await transaction(
        lambda: service.redeliver(event_id=event_id, endpoint_id=target)), status=202)


@router.post("/webhook-endpoints", status_code=201, response_model=EndpointWithSecret,
             summary="Add a webhook endpoint (admin)",
             responses=problems(ADMIN, {422: ["validation_error", "invalid_url"]}, body=True))
async def create_endpoint(body: EndpointCreate, admin: AdminUser,
                          settings: AppSettings) -> Response:
    """Events of `event_types` (or `["*"]`) are POSTed to `url`, signed per Standard
    Webhooks with `secret`, which is shown only here and on rotation."""
    await check_now(admin)  # before the URL's host is looked up
    return json_response(await transaction(lambda: endpoints.create_endpoint(
        data=body, allow_private=settings.private_urls_allowed)), status=201)


@router.get("/webhook-endpoints", response_model=Page[EndpointOut],
            summary="List webhook endpoints (admin)",
            responses=problems(ADMIN, {422: ["validation_error", "invalid_cursor"]}))
async def list_endpoints(admin: AdminUser, page: PageParams) -> Response:
    """Oldest first, without their secrets."""
    return json_response(await endpoints.list_endpoints(limit=page.limit, cursor=page.cursor))


@router.get("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut,
            summary="One webhook endpoint (admin)",
            responses=problems(ADMIN, {404: ["endpoint_not_found"], 422: ["validation_error"]}))
async def get_endpoint(endpoint_id: uuid.UUID, admin: AdminUser) -> Response:
    """Without its secret; `enabled` false with a `disabled_reason` after long failure."""
    return json_response(await endpoints.get_endpoint(endpoint_id=endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut,
              summary="Change a webhook endpoint (admin)",
              responses=problems(ADMIN, {404: ["endpoint_not_found"],
                                         422: ["validation_error", "invalid_url"]}, body=True))
async def update_endpoint(endpoint_id: uuid.UUID, body: EndpointUpdate, admin: AdminUser,
                          settings: AppSettings) -> Response:
    """`enabled: true` re-enables an endpoint that was disabled after failing."""
    await check_now(admin)  # before the URL's host is looked up
    return json_response(await transaction(lambda: endpoints.update_endpoint(
        endpoint_id=endpoint_id, data=body, allow_private=settings.private_urls_allowed)))


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204,
               summary="Delete a webhook endpoint (admin)",
               responses=problems(ADMIN, {404: ["endpoint_not_found"],
                                          422: ["validation_error"]}))
async def delete_endpoint(endpoint_id: uuid.UUID, admin: AdminUser) -> Response:
    """Its pending deliveries are dropped."""
    await transaction(lambda: endpoints.delete_endpoint(endpoint_id=endpoint_id))
    return Response(status_code=204)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=SecretOut,
             summary="Rotate an endpoint's secret (admin)",
             responses=problems(ADMIN, {404: ["endpoint_not_found"], 422: ["validation_error"]}))
async def rotate_secret(endpoint_id: uuid.UUID, admin: AdminUser,
                        settings: AppSettings) -> Response:
    """A new secret; for `SECRET_ROTATION_OVERLAP_SECONDS` (24 h) deliveries are signed
    with both the new and the old one."""
    return json_response(await transaction(lambda: endpoints.rotate_secret(
        endpoint_id=endpoint_id, overlap_seconds=settings.secret_rotation_overlap_seconds)))
