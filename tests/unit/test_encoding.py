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
        if isinstance(value, datetime):  # +00:00, the fraction's trailing zeros dropped
            whole, _, offset = value.isoformat().partition("+")
            return f"{whole.rstrip('0').rstrip('.') if '.' in whole else whole}+{offset}"
        if isinstance(value, uuid.UUID | date):
            return str(value)
        return value
    return {k: text(v) for k, v in row.items()}


@pytest.mark.parametrize("changes", [
    {},
    {"due_date": date(2026, 11, 27)},  # due yesterday, judged on the stored day
    {"currency": "JPY", "amount": 5, "amount_recovered": 5, "status": "completed"},
    {"created_at": datetime(2026, 1, 1, tzinfo=UTC)},  # no microseconds
    {"updated_at": datetime(2026, 1, 1, 0, 0, 0, 120000, tzinfo=UTC)},  # written ".12"
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
    stored = {"raw": {"v": 1, "today": str(today), "transaction": _as_postgres_writes_it(paid),
                      "invoice": {**_as_postgres_writes_it(invoice), "voided_at": None,
                                  "last_credit_return": 0}}}
    model = WebhookResult(event_id=paid["event_id"], duplicate=False,
                          invoice=InvoiceOut.model_validate(invoice_json(invoice, today)),
                          transaction=transaction_out(paid))
    assert json_body(stored_answer(stored)) == model.model_dump_json().encode()


def test_a_stored_webhook_answer_keeps_its_bytes() -> None:
    """Replays of a payment made in one statement render its stored rows again, so what
    they answer must not change with the code: these bytes are pinned. A change of the
    answer's shape needs a new form (`v`) beside this one, not a change of this one."""
    from app.webhooks.service import stored_answer

    stored = {"raw": {"v": 1, "today": "2026-11-28", "transaction": {
        "id": "5d1c7e0a-3c2b-4f7e-9a51-0b8f3e6d2a41", "invoice_id":
        "0b6f2a9e-8d4c-4e1a-b3f7-6c2d9e8a1f50", "kind": "payment", "status": "succeeded",
        "amount": 6050, "currency": "INR", "payment_mode": "provider",
        "payment_date": "2026-11-28T09:01:02.5+00:00", "reference": "pay_123",
        "source": "webhook", "event_id": "evt_1", "created_at": "2026-11-28T09:01:02.5+00:00",
        "last_credit_return": 0}, "invoice": {
        "id": "0b6f2a9e-8d4c-4e1a-b3f7-6c2d9e8a1f50",
        "payer_id": "a1b2c3d4-0000-4000-8000-000000000001",
        "receiver_id": "a1b2c3d4-0000-4000-8000-000000000002",
        "payer_username": "alice", "payer_email": "alice@example.com",
        "receiver_username": "bob", "receiver_email": "bob@example.com",
        "amount": 10000, "currency": "INR", "description": None, "due_date": "2026-11-27",
        "status": "partially_paid", "amount_recovered": 6050, "amount_refunded": 0,
        "voided_at": None, "created_at": "2026-11-27T08:00:00+00:00",
        "updated_at": "2026-11-28T09:01:02.5+00:00"}}}
    assert json_body(stored_answer(stored)) == (
        b'{"event_id":"evt_1","duplicate":false,"invoice":{'
        b'"id":"0b6f2a9e-8d4c-4e1a-b3f7-6c2d9e8a1f50",'
        b'"payer_id":"a1b2c3d4-0000-4000-8000-000000000001",'
        b'"receiver_id":"a1b2c3d4-0000-4000-8000-000000000002",'
        b'"payer":{"id":"a1b2c3d4-0000-4000-8000-000000000001","username":"alice",'
        b'"email":"alice@example.com"},'
        b'"receiver":{"id":"a1b2c3d4-0000-4000-8000-000000000002","username":"bob",'
        b'"email":"bob@example.com"},'
        b'"amount":"100.00","currency":"INR","description":null,"due_date":"2026-11-27",'
        b'"status":"partially_paid","amount_recovered":"60.50","amount_refunded":"0.00",'
        b'"amount_due":"39.50","overdue":true,"created_at":"2026-11-27T08:00:00Z",'
        b'"updated_at":"2026-11-28T09:01:02.500000Z"},'
        b'"transaction":{"id":"5d1c7e0a-3c2b-4f7e-9a51-0b8f3e6d2a41",'
        b'"invoice_id":"0b6f2a9e-8d4c-4e1a-b3f7-6c2d9e8a1f50","kind":"payment",'
        b'"status":"succeeded","amount":"60.50","currency":"INR","payment_mode":"provider",'
        b'"payment_date":"2026-11-28T09:01:02.500000Z","reference":"pay_123",'
        b'"source":"webhook","event_id":"evt_1","created_at":"2026-11-28T09:01:02.500000Z"}}')
    with pytest.raises(ValueError, match="unknown form"):
        stored_answer({"raw": {**stored["raw"], "v": 2}})
