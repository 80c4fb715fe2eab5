"""A read answers with plain values encoded by orjson instead of models encoded by
pydantic-core (app/http/responses.py): the bytes must be exactly the model's."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from asyncpg.pgproto.pgproto import UUID as DriverUUID

from app.http.responses import json_body
from app.invoices.schemas import InvoiceOut
from app.invoices.service import invoice_json, invoice_out
from app.pagination import Page, encode_cursor, page_json


def _row(**changes: object) -> dict:
    at = datetime(2026, 11, 27, 18, 30, 5, 123456, tzinfo=UTC)
    # ids as the driver returns them (its own UUID type) and as Python makes them
    return {"id": DriverUUID(str(uuid.uuid4())), "payer_id": uuid.uuid4(),
            "receiver_id": DriverUUID(str(uuid.uuid4())),
            "payer_username": "ālice", "payer_email": "a@example.com",
            "receiver_username": "bob \"the\" receiver", "receiver_email": "b@example.com",
            "amount": 123456, "currency": "INR", "description": "line\nbreak ✓ \u2028",
            "due_date": None, "status": "partially_paid", "amount_recovered": 500,
            "amount_refunded": 100, "created_at": at, "updated_at": at, **changes}


@pytest.mark.parametrize("changes", [
    {},
    {"due_date": date(2020, 1, 31)},  # overdue
    {"currency": "JPY", "amount": 5, "amount_recovered": 5, "status": "completed"},
    {"currency": "KWD", "amount": 1001, "amount_recovered": 0, "status": "pending"},
    {"created_at": datetime(2026, 1, 1, tzinfo=UTC)},  # no microseconds
    {"updated_at": datetime(1, 1, 1, tzinfo=UTC)},
    {"created_at": datetime(2026, 5, 1, 12, 0, 0, 5)},  # naive: taken as UTC
    {"status": "void", "due_date": date(2020, 1, 1), "description": ""},
])
def test_an_invoice_encodes_to_the_models_bytes(changes: dict) -> None:
    row = _row(**changes)
    assert json_body(invoice_json(row)) == json_body(invoice_out(row))
    assert json_body(invoice_json(row)) == invoice_out(row).model_dump_json().encode()
    InvoiceOut.model_validate_json(json_body(invoice_json(row)))  # and it is a valid one


def test_the_model_keeps_the_rows_ids_and_a_page_takes_one_today() -> None:
    import warnings

    row = _row(due_date=date(2026, 11, 27), amount_recovered=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warns when it serialises a str as a UUID
        model = invoice_out(row)
        model.model_dump_json()
    assert (model.id, model.payer.id, model.receiver_id) == (
        row["id"], row["payer_id"], row["receiver_id"])
    assert invoice_json(row, today=date(2026, 11, 28))["overdue"] is True
    assert invoice_json(row, today=date(2026, 11, 27))["overdue"] is False


@pytest.mark.parametrize("n, limit", [(0, 50), (3, 50), (51, 50)])
def test_a_page_encodes_to_the_models_bytes(n: int, limit: int) -> None:
    rows = [_row() for _ in range(n)]
    plain = json_body(page_json(rows, limit, invoice_json))
    kept = rows[:limit]
    model = Page[InvoiceOut](
        data=[invoice_out(row) for row in kept],
        next_cursor=encode_cursor(kept[-1]["created_at"], kept[-1]["id"]) if n > limit
        else None)
    assert plain == json_body(model)
    assert Page[InvoiceOut].model_validate_json(plain).next_cursor == model.next_cursor


def test_what_is_not_json_is_refused() -> None:
    from decimal import Decimal

    with pytest.raises(TypeError):
        json_body({"amount": Decimal("1.00")})


# The other list pages (users, an invoice's transactions, credit entries, events) are
# plain values too; each row must encode to exactly its model's bytes.
_AT = datetime(2026, 11, 27, 18, 30, 5, 123456, tzinfo=UTC)


def _driver_id() -> DriverUUID:
    return DriverUUID(str(uuid.uuid4()))


@pytest.mark.parametrize("changes", [
    {},
    {"currency": "JPY", "amount": 7},
    {"currency": "KWD", "amount": 1, "kind": "refund", "source": "webhook",
     "reference": "ref \"q\" ✓", "event_id": "evt_1"},
    {"payment_date": datetime(2026, 1, 1, tzinfo=UTC), "status": "failed"},
    {"created_at": datetime(2026, 5, 1, 12, 0, 0, 5)},  # naive: taken as UTC
])
def test_a_transaction_encodes_to_the_models_bytes(changes: dict) -> None:
    from app.ledger.schemas import TransactionOut
    from app.ledger.service import transaction_json

    row = {"id": _driver_id(), "invoice_id": uuid.uuid4(), "kind": "payment",
           "status": "succeeded", "amount": 123456, "currency": "INR",
           "payment_mode": "upi", "payment_date": _AT, "reference": None, "source": "api",
           "event_id": None, "created_at": _AT, **changes}
    plain = json_body(transaction_json(row))
    assert plain == TransactionOut.model_validate(
        {**row, "amount": transaction_json(row)["amount"]}).model_dump_json().encode()
    assert json_body(page_json([row, row], 1, transaction_json)).startswith(b'{"data":[' + plain)


@pytest.mark.parametrize("changes", [
    {},
    {"currency": "JPY", "amount": -5, "source": "applied", "invoice_id": uuid.uuid4(),
     "transaction_id": _driver_id(), "reason": None},
    {"created_at": datetime(2026, 1, 1, tzinfo=UTC)},
])
def test_a_credit_entry_encodes_to_the_models_bytes(changes: dict) -> None:
    from app.credit.schemas import CreditEntryOut
    from app.credit.service import credit_entry_json

    row = {"id": _driver_id(), "user_id": uuid.uuid4(), "currency": "INR", "amount": 250,
           "source": "grant", "invoice_id": None, "transaction_id": None,
           "reason": "goodwill ✓\n", "created_at": _AT, **changes}
    plain = json_body(credit_entry_json(row))
    assert plain == CreditEntryOut.model_validate(
        {**row, "amount": credit_entry_json(row)["amount"]}).model_dump_json().encode()


@pytest.mark.parametrize("changes", [
    {},
    {"role": "admin", "is_active": False, "username": "ālice \"q\""},
    {"updated_at": datetime(2026, 1, 1, tzinfo=UTC)},
])
def test_a_user_encodes_to_the_models_bytes(changes: dict) -> None:
    from app.users.schemas import UserOut
    from app.users.service import user_json

    row = {"id": _driver_id(), "username": "bob", "email": "b@example.com", "role": "user",
           "is_active": True, "created_at": _AT, "updated_at": _AT, **changes}
    assert json_body(user_json(row)) == UserOut.model_validate(row).model_dump_json().encode()


@pytest.mark.parametrize("changes", [
    {},
    {"event_types": ["*"], "enabled": False, "disabled_reason": "failing since …",
     "description": "ops \"hook\""},
])
def test_an_endpoint_encodes_to_the_models_bytes(changes: dict) -> None:
    from app.events.endpoints import endpoint_json
    from app.events.schemas import EndpointOut

    row = {"id": _driver_id(), "url": "https://example.com/hooks?x=1&y=ü",
           "event_types": ["invoice.paid", "invoice.created"], "description": "",
           "enabled": True, "disabled_reason": None, "created_at": _AT, "updated_at": _AT,
           **changes}
    assert json_body(endpoint_json(row)) == EndpointOut.model_validate(
        row).model_dump_json().encode()


def _as_postgres_writes_it(row: dict) -> dict:
    """A row as `to_jsonb()` writes it: ids, dates and times as strings (times with their
    offset, whole seconds without a fraction), numbers as numbers."""
    def text(value: object) -> object:
        if isinstance(value, datetime):
            return value.isoformat()  # +00:00, and no fraction when it has none: as PostgreSQL
        if isinstance(value, uuid.UUID | date):
            return str(value)
        return value
    return {k: text(v) for k, v in row.items()}


@pytest.mark.parametrize("changes", [
    {},
    {"due_date": date(2026, 11, 27)},  # due yesterday, judged on the stored day
    {"currency": "JPY", "amount": 5, "amount_recovered": 5, "status": "completed"},
    {"created_at": datetime(2026, 1, 1, tzinfo=UTC)},  # no microseconds
])
def test_a_stored_webhook_answer_renders_to_the_models_bytes(changes: dict) -> None:
    """A provider payment made in one statement stores the rows its answer is made of
    (app/webhooks/queries.py); rendered, they must be the bytes the transaction path's
    model writes, for the first answer and for every replay."""
    from app.ledger.service import transaction_out
    from app.webhooks.schemas import WebhookResult
    from app.webhooks.service import stored_answer

    invoice = _row(**changes)
    invoice.update(payer_id=uuid.uuid4(), receiver_id=uuid.uuid4(), id=uuid.uuid4())
    paid = {"id": uuid.uuid4(), "invoice_id": invoice["id"], "kind": "payment",
            "status": "succeeded", "amount": invoice["amount_recovered"],
            "currency": invoice["currency"], "payment_mode": "provider",
            "payment_date": invoice["updated_at"], "reference": "pay_1", "source": "webhook",
            "event_id": "evt_ā\"1", "created_at": invoice["updated_at"]}
    today = date(2026, 11, 28)
    stored = {"raw": {"today": str(today), "transaction": _as_postgres_writes_it(paid),
                      "invoice": {**_as_postgres_writes_it(invoice), "voided_at": None,
                                  "last_credit_return": 0}}}
    model = WebhookResult(event_id=paid["event_id"], duplicate=False,
                          invoice=InvoiceOut.model_validate(invoice_json(invoice, today)),
                          transaction=transaction_out(paid))
    assert json_body(stored_answer(stored)) == model.model_dump_json().encode()
