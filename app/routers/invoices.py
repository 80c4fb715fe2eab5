from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response

from app.auth import AdminUser, CurrentUser, ensure_can_see_invoice
from app.pagination import DEFAULT_LIMIT
from app.routers.common import (
    ADMIN,
    Cursor,
    IdempotencyKey,
    Limit,
    json_of,
    make_router,
    outcome_response,
    problems,
)
from app.schemas import InTimestamp, InvoiceCreate, InvoiceOut, InvoiceStatus, InvoiceUpdate, Page
from app.services import idempotency
from app.services import invoices as invoices_service

router = make_router(prefix="/invoices", tags=["invoices"])


@router.post("", status_code=201, response_model=InvoiceOut, summary="Create an invoice (admin)",
             responses=problems(ADMIN, {409: ["idempotency_key_in_use"], 422: [
                 "validation_error", "read_only_field", "invalid_party",
                 "idempotency_key_reused"]}, body=True))
async def create_invoice(body: InvoiceCreate, admin: AdminUser,
                         idempotency_key: IdempotencyKey = None) -> Response:
    outcome = await idempotency.execute(
        caller=str(admin.id), key=idempotency_key, request=("POST /invoices", body),
        status=201, action=lambda: invoices_service.create_invoice(data=body))
    return outcome_response(outcome)


@router.get("", response_model=Page[InvoiceOut], summary="List invoices, newest first (admin)",
            responses=problems(ADMIN, {422: ["validation_error", "invalid_cursor"]}))
async def list_invoices(
    admin: AdminUser,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: Annotated[InvoiceStatus | None, Query()] = None,
    payer_id: Annotated[uuid.UUID | None, Query()] = None,
    receiver_id: Annotated[uuid.UUID | None, Query()] = None,
    created_after: Annotated[InTimestamp | None, Query()] = None,
    created_before: Annotated[InTimestamp | None, Query()] = None,
) -> Response:
    return json_of(await invoices_service.list_invoices(
        limit=limit, cursor=cursor, status=status, payer_id=payer_id, receiver_id=receiver_id,
        created_after=created_after, created_before=created_before))


@router.get("/{invoice_id}", response_model=InvoiceOut,
            summary="One invoice (admin, its payer or its receiver)",
            responses=problems(ADMIN, {404: ["invoice_not_found"], 422: ["validation_error"]}))
async def get_invoice(invoice_id: uuid.UUID, viewer: CurrentUser) -> Response:
    invoice = await invoices_service.load_invoice(invoice_id)
    ensure_can_see_invoice(viewer, invoice.payer_id, invoice.receiver_id)
    return json_of(invoice)


_UPDATE_ERRORS = problems(ADMIN, {
    404: ["invoice_not_found"], 409: ["amount_below_paid", "money_has_moved"],
    422: ["validation_error", "read_only_field", "invalid_party"]}, body=True)


@router.put("/{invoice_id}", response_model=InvoiceOut, summary="Change an invoice (admin)",
            responses=_UPDATE_ERRORS)
@router.patch("/{invoice_id}", response_model=InvoiceOut, summary="Change an invoice (admin)",
              responses=_UPDATE_ERRORS)
async def update_invoice(invoice_id: uuid.UUID, body: InvoiceUpdate,
                         admin: AdminUser) -> InvoiceOut:
    return await invoices_service.update_invoice(invoice_id=invoice_id, data=body)


@router.delete("/{invoice_id}", status_code=204,
               summary="Delete an invoice that has no transactions (admin)",
               responses=problems(ADMIN, {404: ["invoice_not_found"],
                                          409: ["invoice_has_transactions"],
                                          422: ["validation_error"]}))
async def delete_invoice(invoice_id: uuid.UUID, admin: AdminUser) -> Response:
    await invoices_service.delete_invoice(invoice_id=invoice_id)
    return Response(status_code=204)
