from __future__ import annotations

import uuid

from fastapi import Response

from app.auth import AdminUser
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
from app.schemas import Page, TransactionCreate, TransactionOut
from app.services import idempotency, payments

router = make_router(prefix="/invoice-transactions", tags=["transactions"])


@router.post("", status_code=201, response_model=TransactionOut,
             summary="Record a payment or a refund (admin)",
             responses=problems(ADMIN, {
                 404: ["invoice_not_found"],
                 409: ["amount_exceeds_due", "amount_exceeds_refundable", "invoice_changed",
                       "idempotency_key_in_use"],
                 422: ["validation_error", "idempotency_key_reused"]}, body=True))
async def create_transaction(body: TransactionCreate, admin: AdminUser,
                             idempotency_key: IdempotencyKey = None) -> Response:
    movement = payments.Movement(
        invoice_id=body.invoice_id, amount=body.amount, kind=body.kind,
        payment_mode=body.payment_mode, payment_date=body.payment_date,
        reference=body.reference)
    outcome = await idempotency.execute(
        caller=str(admin.id), key=idempotency_key,
        request=("POST /invoice-transactions", body), status=201,
        action=lambda: payments.move_money(movement=movement))
    return outcome_response(outcome)


@router.get("/invoice/{invoice_id}", response_model=Page[TransactionOut],
            summary="An invoice's transactions, oldest first (admin)",
            responses=problems(ADMIN, {404: ["invoice_not_found"],
                                       422: ["validation_error", "invalid_cursor"]}))
async def list_invoice_transactions(invoice_id: uuid.UUID, admin: AdminUser,
                                    limit: Limit = DEFAULT_LIMIT,
                                    cursor: Cursor = None) -> Response:
    return json_of(await payments.list_for_invoice(invoice_id=invoice_id, limit=limit,
                                                   cursor=cursor))


@router.get("/{transaction_id}", response_model=TransactionOut,
            summary="One transaction (admin)",
            responses=problems(ADMIN, {404: ["transaction_not_found"],
                                       422: ["validation_error"]}))
async def get_transaction(transaction_id: uuid.UUID, admin: AdminUser) -> Response:
    return json_of(await payments.get_transaction(transaction_id=transaction_id))
