from __future__ import annotations

import uuid

from fastapi import Response

from app.auth.deps import AdminOrSelf, AdminUser
from app.credit import service
from app.credit.schemas import CreditApply, CreditBalances, CreditEntryOut, CreditGrant
from app.http import idempotency
from app.http.deps import AppSettings
from app.http.params import IdempotencyKey, PageParams
from app.http.problems import ADMIN, problems
from app.http.responses import json_response
from app.http.routing import make_router
from app.ledger.schemas import TransactionOut
from app.pagination import Page

router = make_router(tags=["credit"])


@router.get("/users/{user_id}/credit", response_model=CreditBalances,
            summary="A user's credit balances (admin or self)",
            responses=problems(ADMIN, {404: ["user_not_found"], 422: ["validation_error"]}))
async def get_balances(user_id: uuid.UUID, viewer: AdminOrSelf) -> Response:
    """One balance per currency that has any credit."""
    return json_response(await service.balances(user_id=user_id))


@router.get("/users/{user_id}/credit/entries", response_model=Page[CreditEntryOut],
            summary="A user's credit ledger, newest first (admin or self)",
            responses=problems(ADMIN, {404: ["user_not_found"],
                                       422: ["validation_error", "invalid_cursor"]}))
async def list_entries(user_id: uuid.UUID, viewer: AdminOrSelf, page: PageParams) -> Response:
    """Every grant, overpayment, application (negative) and refund returned to credit; the
    balance is their sum."""
    return json_response(await service.entries(user_id=user_id, limit=page.limit,
                                                     cursor=page.cursor))


@router.post("/users/{user_id}/credit", status_code=201, response_model=CreditEntryOut,
             summary="Grant credit to a user (admin)",
             responses=problems(ADMIN, {404: ["user_not_found"],
                                        409: ["credit_balance_too_large",
                                              "idempotency_key_in_use"],
                                        422: ["validation_error", "idempotency_key_reused"]},
                                body=True))
async def grant_credit(user_id: uuid.UUID, body: CreditGrant, admin: AdminUser,
                       settings: AppSettings,
                       idempotency_key: IdempotencyKey = None) -> Response:
    """Adds `amount` in `currency` to the user's balance, with the reason, as a `grant`
    entry and a `credit.granted` event."""
    return await idempotency.created(
        settings, key=idempotency_key, caller=admin, route=f"POST /users/{user_id}/credit",
        body=body, run=lambda: service.grant(user_id=user_id, data=body))


@router.post("/invoices/{invoice_id}/apply-credit", status_code=201,
             response_model=TransactionOut,
             summary="Pay an invoice from its payer's credit (admin)",
             responses=problems(ADMIN, {
                 404: ["invoice_not_found"],
                 409: ["amount_exceeds_credit", "amount_exceeds_due", "invoice_void",
                       "idempotency_key_in_use"],
                 422: ["validation_error", "idempotency_key_reused"]}, body=True))
async def apply_credit(invoice_id: uuid.UUID, admin: AdminUser, settings: AppSettings,
                       body: CreditApply | None = None,
                       idempotency_key: IdempotencyKey = None) -> Response:
    """A payment with `payment_mode: "credit"` and `source: "credit"` from the payer's
    balance in the invoice's currency: `amount`, or as much as both the balance and the
    amount due allow. Concurrent applies never take more than the balance; refunding the
    payment returns it to credit."""
    body = body or CreditApply()
    return await idempotency.created(
        settings, key=idempotency_key, caller=admin,
        route=f"POST /invoices/{invoice_id}/apply-credit", body=body,
        run=lambda: service.apply(invoice_id=invoice_id, amount=body.amount))
