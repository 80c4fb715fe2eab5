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
