"""An event's body is encoded from plain values (app/events/render.py): the bytes must be
exactly the event model's, and a payment's transaction exactly as the model shaped it
from the row PostgreSQL wrote into the event."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from asyncpg.pgproto.pgproto import UUID as DriverUUID

from app.events.render import event_body, event_out
from app.ledger.schemas import TransactionOut
from app.ledger.service import transaction_out


def _transaction(**changes: object) -> dict:
    """As `to_jsonb(recorded)` writes it: PostgreSQL trims a time's trailing zeros."""
    return {"id": str(uuid.uuid4()), "invoice_id": str(uuid.uuid4()), "kind": "payment",
            "status": "succeeded", "amount": 123456, "currency": "INR",
            "payment_mode": "upi", "payment_date": "2026-11-27T18:30:05.1234+00:00",
            "reference": "ref ✓ \"quoted\"", "source": "api", "event_id": None,
            "created_at": "2026-11-27T18:30:05+00:00", **changes}


def _row(data: dict, previous: dict | None = None, **changes: object) -> dict:
    return {"seq": 7, "id": "evt_" + uuid.uuid4().hex, "type": "payment.succeeded",
            "invoice_id": DriverUUID(str(uuid.uuid4())),
            "created_at": datetime(2026, 11, 27, 18, 30, 5, 123456, tzinfo=UTC),
            "data": json.dumps(data), "previous": json.dumps(previous) if previous else None,
            **changes}


@pytest.mark.parametrize("row", [
    _row({"transaction": _transaction()}),
    _row({"transaction": _transaction(currency="JPY", amount=5, reference=None,
                                      event_id="evt_provider_1", source="webhook",
                                      payment_date="2026-01-01T00:00:00+00:00")}),
    _row({"transaction": _transaction(currency="KWD", amount=1001, kind="refund",
                                      created_at="2026-11-27T23:59:59.999999+00:00")}),
    _row({"transaction": _transaction(status="failed")}, type="payment.failed",
         created_at=datetime(2026, 1, 1, tzinfo=UTC)),
    _row({"object": {"id": str(uuid.uuid4()), "description": "ālice ✓ \u2028",
                     "amount": "10.00"}},
         previous={"description": "before", "amount": "9.50"}, type="invoice.updated"),
    _row({"object": {"id": str(uuid.uuid4())}}, type="invoice.deleted", invoice_id=None),
])
def test_an_event_body_is_the_models_bytes(row: dict) -> None:
    assert event_body(row) == event_out(row).model_dump_json().encode()


def test_a_transaction_is_shaped_as_the_model_shapes_its_row() -> None:
    raw = _transaction()
    typed = {**raw, "id": uuid.UUID(raw["id"]), "invoice_id": uuid.UUID(raw["invoice_id"]),
             "created_at": datetime.fromisoformat(raw["created_at"]),
             "payment_date": datetime.fromisoformat(raw["payment_date"])}
    body = json.loads(event_body(_row({"transaction": raw})))
    assert body["data"]["object"] == transaction_out(typed).model_dump(mode="json")
    assert list(body["data"]["object"]) == list(TransactionOut.model_fields)
    assert body["data"]["object"]["payment_date"] == "2026-11-27T18:30:05.123400Z"
    assert body["data"]["object"]["created_at"] == "2026-11-27T18:30:05Z"


def _typed(raw: dict) -> dict:
    """The row as the models took it before the plain path: ids, times and the due date
    parsed (infinities as Python's first and last)."""
    from datetime import date

    infinite = {"infinity": datetime.max.replace(tzinfo=UTC),
                "-infinity": datetime.min.replace(tzinfo=UTC)}
    row = dict(raw)
    for key in ("created_at", "updated_at"):
        if isinstance(row.get(key), str):
            row[key] = infinite.get(row[key]) or datetime.fromisoformat(row[key])
    for key in ("id", "payer_id", "receiver_id", "user_id", "invoice_id", "transaction_id"):
        if isinstance(row.get(key), str):
            row[key] = uuid.UUID(row[key])
    if isinstance(due := row.get("due_date"), str):
        row["due_date"] = {"infinity": date.max, "-infinity": date.min}.get(due) or \
            date.fromisoformat(due)
    return row


def _invoice(**changes: object) -> dict:
    """As INVOICE_SNAPSHOT (`to_jsonb` of the invoice row, and its parties) writes it."""
    return {"id": str(uuid.uuid4()), "payer_id": str(uuid.uuid4()),
            "receiver_id": str(uuid.uuid4()), "amount": 123456, "currency": "INR",
            "description": "ālice ✓ \"q\"\n", "due_date": "2026-11-30",
            "amount_recovered": 500, "amount_refunded": 0, "last_attempt_failed": False,
            "created_at": "2026-11-27T18:30:05.1234+00:00",
            "updated_at": "2026-11-27T18:30:06+00:00", "voided_at": None,
            "uncollectible_at": None, "overdue_notified_for": None,
            "status": "partially_paid", "amount_paid_from_credit": 0,
            "amount_returned_to_credit": 0, "last_credit_return": 0,
            "payer_username": "alice", "payer_email": "a@example.com",
            "receiver_username": "bob", "receiver_email": "b@example.com", **changes}


@pytest.mark.parametrize("raw", [
    _invoice(),
    _invoice(due_date=None, currency="JPY", amount=5, amount_recovered=5, status="completed"),
    _invoice(due_date="2020-01-31"),  # overdue
    _invoice(due_date="infinity", currency="KWD", amount=1001),
    _invoice(due_date="-infinity", updated_at="infinity", created_at="-infinity"),
    _invoice(status="void", voided_at="2026-11-27T18:30:07+00:00", due_date="2020-01-01"),
])
def test_an_invoice_in_an_event_is_the_models_json(raw: dict) -> None:
    from app.events.render import event_object
    from app.invoices.service import invoice_out

    reference = invoice_out(_typed(raw)).model_dump(mode="json")
    assert json.dumps(event_object({"invoice": raw})) == json.dumps(reference)


@pytest.mark.parametrize("changes", [
    {},
    {"currency": "JPY", "amount": -5, "balance": 0, "source": "applied",
     "invoice_id": str(uuid.uuid4()), "transaction_id": str(uuid.uuid4()), "reason": None},
    {"created_at": "2026-01-01T00:00:00+00:00"},
])
def test_a_credit_entry_in_an_event_is_the_models_json(changes: dict) -> None:
    from app.credit.service import credit_entry_out
    from app.events.render import event_object
    from app.money import format_minor

    raw = {"id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()), "currency": "INR",
           "amount": 250, "source": "grant", "invoice_id": None, "transaction_id": None,
           "reason": "goodwill ✓", "created_at": "2026-11-27T18:30:05.5+00:00",
           "balance": 1250, **changes}
    row = _typed(raw)
    reference = {**credit_entry_out(row).model_dump(mode="json"),
                 "balance": format_minor(row["balance"], row["currency"])}
    assert json.dumps(event_object({"credit": raw})) == json.dumps(reference)
