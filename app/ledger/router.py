from __future__ import annotations

import uuid

from fastapi import Response

from app.auth.deps import AdminUser, Caller, admin_checked
from app.credit import service as credit
from app.db.transaction import autocommit
from app.http import idempotency
from app.http.deps import AppSettings
from app.http.params import IdempotencyKey, PageParams
from app.http.problems import ADMIN, problems
from app.http.responses import json_response
from app.http.routing import make_router
from app.ledger import service
from app.ledger.schemas import CreditedTransactionOut, TransactionCreate, TransactionOut
from app.pagination import Page

router = make_router(prefix="/invoice-transactions", tags=["transactions"])


@router.post("", status_code=201, response_model=TransactionOut,
             summary="Record a payment or a refund (admin)",
             responses=problems(ADMIN, {
                 404: ["invoice_not_found"],
                 409: ["amount_exceeds_due", "amount_exceeds_refundable", "invoice_void",
                       "invoice_changed", "credit_balance_too_large",
                       "idempotency_key_in_use"],
                 422: ["validation_error", "idempotency_key_reused"]}, body=True))
async def create_transaction(body: TransactionCreate, claims: Caller,
                             settings: AppSettings,
                             idempotency_key: IdempotencyKey = None) -> Response:
    """A payment (`"kind": "payment"`, the default) or a refund, checked and recorded in one
    step: more than is due (or refundable) is refused and nothing is recorded, unless a
    payment says `"overpayment": "credit"`: then the due part is paid and the rest credited
    to the payer (the answer says how much, in `credited`). Send an `Idempotency-Key` to
    retry safely."""
    new = service.NewTransaction(
        invoice_id=body.invoice_id, amount=body.amount, kind=body.kind,
        payment_mode=body.payment_mode, payment_date=body.payment_date,
        reference=body.reference)
    crediting = body.overpayment == "credit" and body.kind == "payment"
    if idempotency_key is None and not crediting:
        # The one write outside a transaction (app/db/transaction.py): alone, the ledger
        # statement commits by itself, so the invoice's row lock lasts one round trip, not
        # three (BEGIN, statement, COMMIT). On one busy invoice that is the whole limit
        # (docs/PERFORMANCE.md, "payment, one hot invoice"). The admin's token is checked
        # in that same statement.
        return json_response(await autocommit(
            lambda: service.record_transaction(new=new, admin=claims)), status=201)
    admin = admin_checked(claims)
    if crediting:
        async def pay_and_credit() -> CreditedTransactionOut:
            done = await credit.pay_crediting_the_excess(new=new)
            assert done.transaction is not None  # refused, before any write, if none due
            return CreditedTransactionOut(**done.transaction.model_dump(),
                                          credited=done.credited)

        return await idempotency.created(
            settings, key=idempotency_key, caller=admin, route="POST /invoice-transactions",
            body=body, run=pay_and_credit)
    return await idempotency.keyed(
        settings, key=idempotency_key, caller=admin, route="POST /invoice-transactions",
        body=body, status=201, run=lambda: service.record_transaction(new=new))


@router.get("/invoice/{invoice_id}", response_model=Page[TransactionOut],
            summary="An invoice's transactions, oldest first (admin)",
            responses=problems(ADMIN, {404: ["invoice_not_found"],
                                       422: ["validation_error", "invalid_cursor"]}))
async def list_invoice_transactions(invoice_id: uuid.UUID, admin: AdminUser,
                                    page: PageParams) -> Response:
    """Oldest first, a page at a time."""
    return json_response(await service.list_for_invoice(
        invoice_id=invoice_id, limit=page.limit, cursor=page.cursor))


@router.get("/{transaction_id}", response_model=TransactionOut,
            summary="One transaction (admin)",
            responses=problems(ADMIN, {404: ["transaction_not_found"],
                                       422: ["validation_error"]}))
async def get_transaction(transaction_id: uuid.UUID, admin: AdminUser) -> Response:
    """One transaction of the ledger."""
    return json_response(await service.get_transaction(transaction_id=transaction_id))
