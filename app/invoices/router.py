from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Response

from app.auth.deps import AdminUser, CheckedUser, ensure_can_see_invoice
from app.db.transaction import transaction
from app.http import idempotency
from app.http.deps import AppSettings
from app.http.params import IdempotencyKey, query_of
from app.http.problems import ADMIN, problems
from app.http.responses import json_response
from app.http.routing import make_router
from app.invoices import service
from app.invoices.schemas import InvoiceCreate, InvoiceOut, InvoiceQuery, InvoiceUpdate
from app.pagination import Page

router = make_router(prefix="/invoices", tags=["invoices"])
InvoiceListQuery = Annotated[InvoiceQuery, Depends(query_of(InvoiceQuery))]


@router.post("", status_code=201, response_model=InvoiceOut, summary="Create an invoice (admin)",
             responses=problems(ADMIN, {409: ["idempotency_key_in_use"], 422: [
                 "validation_error", "read_only_field", "invalid_party",
                 "idempotency_key_reused"]}, body=True))
async def create_invoice(body: InvoiceCreate, admin: AdminUser,
                         settings: AppSettings,
                         idempotency_key: IdempotencyKey = None) -> Response:
    """From a payer to a receiver (two different, active users), in `currency` (ISO 4217;
    `DEFAULT_CURRENCY` when left out). `status` and the sums follow its transactions."""
    return await idempotency.created(
        settings, key=idempotency_key, caller=admin, route="POST /invoices", body=body,
        run=lambda: service.create_invoice(data=body,
                                           default_currency=settings.default_currency))


@router.get("", response_model=Page[InvoiceOut], summary="List invoices, newest first (admin)",
            responses=problems(ADMIN, {422: ["validation_error", "invalid_cursor"]}))
async def list_invoices(admin: AdminUser, query: InvoiceListQuery) -> Response:
    """Newest first, a page at a time; filter by status, payer, receiver, creation time or
    whether it is overdue."""
    return json_response(await service.list_invoices(
        limit=query.limit, cursor=query.cursor, status=query.status, payer_id=query.payer_id,
        receiver_id=query.receiver_id, created_after=query.created_after,
        created_before=query.created_before, overdue=query.overdue))


@router.get("/{invoice_id}", response_model=InvoiceOut,
            summary="One invoice (admin, its payer or its receiver)",
            responses=problems(ADMIN, {404: ["invoice_not_found"], 422: ["validation_error"]}))
async def get_invoice(invoice_id: uuid.UUID, caller: CheckedUser) -> Response:
    """An admin, the payer or the receiver may read it."""
    invoice = await service.invoice_as_json(invoice_id=invoice_id)
    ensure_can_see_invoice(caller, invoice["payer_id"], invoice["receiver_id"])
    return json_response(invoice)


_UPDATE_ERRORS = problems(ADMIN, {
    404: ["invoice_not_found"], 409: ["amount_below_paid", "money_has_moved", "invoice_void"],
    422: ["validation_error", "read_only_field", "invalid_party"]}, body=True)


@router.put("/{invoice_id}", response_model=InvoiceOut, summary="Change an invoice (admin)",
            responses=_UPDATE_ERRORS)
@router.patch("/{invoice_id}", response_model=InvoiceOut, summary="Change an invoice (admin)",
              responses=_UPDATE_ERRORS)
async def update_invoice(invoice_id: uuid.UUID, body: InvoiceUpdate, admin: AdminUser) -> Response:
    """`PUT` and `PATCH` both change only the fields sent. The amount never goes below what
    was paid; payer, receiver and currency change only while nothing has been paid."""
    return json_response(await transaction(
        lambda: service.update_invoice(invoice_id=invoice_id, data=body)))


@router.delete("/{invoice_id}", status_code=204,
               summary="Delete an invoice that has no transactions (admin)",
               responses=problems(ADMIN, {404: ["invoice_not_found"],
                                          409: ["invoice_has_transactions"],
                                          422: ["validation_error"]}))
async def delete_invoice(invoice_id: uuid.UUID, admin: AdminUser) -> Response:
    """Only an invoice with no transactions at all; one in the ledger stays for good."""
    await transaction(lambda: service.delete_invoice(invoice_id=invoice_id))
    return Response(status_code=204)


@router.post("/{invoice_id}/void", response_model=InvoiceOut,
             summary="Void an invoice nothing has been paid on (admin)",
             responses=problems(ADMIN, {404: ["invoice_not_found"],
                                        409: ["invoice_void", "money_has_moved"],
                                        422: ["validation_error"]}))
async def void_invoice(invoice_id: uuid.UUID, admin: AdminUser) -> Response:
    """Final: a void invoice takes no payment, refund or change, and cannot be un-voided.
    Only while nothing has been paid (else `409 money_has_moved`: refund instead)."""
    return json_response(await transaction(
        lambda: service.void_invoice(invoice_id=invoice_id)))


@router.post("/{invoice_id}/mark-uncollectible", response_model=InvoiceOut,
             summary="Mark an invoice uncollectible (admin)",
             responses=problems(ADMIN, {404: ["invoice_not_found"],
                                        409: ["invoice_void", "invoice_paid"],
                                        422: ["validation_error"]}))
async def mark_uncollectible(invoice_id: uuid.UUID, admin: AdminUser) -> Response:
    """Status `uncollectible` until it is paid in full; it stays payable. Marking it again
    changes nothing."""
    return json_response(await transaction(
        lambda: service.mark_uncollectible(invoice_id=invoice_id)))


@router.post("/{invoice_id}/mark-collectible", response_model=InvoiceOut,
             summary="Undo mark-uncollectible (admin)",
             responses=problems(ADMIN, {404: ["invoice_not_found"], 409: ["invoice_void"],
                                        422: ["validation_error"]}))
async def mark_collectible(invoice_id: uuid.UUID, admin: AdminUser) -> Response:
    """Its status follows its sums again; on an invoice not so marked it changes nothing."""
    return json_response(await transaction(
        lambda: service.mark_collectible(invoice_id=invoice_id)))
