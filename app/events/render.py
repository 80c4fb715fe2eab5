"""Events as the API shows them and sends them: `data.object` is the invoice or the
transaction exactly as the API returned it when the event happened.

Events written from Python store that object already shaped; the ledger's one-statement
payments store the raw rows they wrote (`{"invoice": …}` or `{"transaction": …}`), which
are shaped here by the same functions that shape the API's answers."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import orjson

from app.credit.service import credit_entry_out
from app.events.schemas import EventOut
from app.http.fields import iso_z
from app.http.responses import json_body
from app.invoices.service import invoice_out
from app.ledger.service import transaction_json
from app.money import format_minor

_TIMES = ("created_at", "updated_at", "payment_date")
_IDS = ("id", "invoice_id", "payer_id", "receiver_id", "user_id", "transaction_id")


# The driver stores the first and the last moment and day Python has as PostgreSQL's
# infinities, and reads them back as those: so does an event's row.
_INFINITE_TIMES = {"-infinity": datetime.min.replace(tzinfo=UTC),
                   "infinity": datetime.max.replace(tzinfo=UTC)}
_INFINITE_DATES = {"-infinity": date.min, "infinity": date.max}


def _time(text: str) -> datetime:
    """A timestamptz as `to_jsonb` wrote it."""
    return _INFINITE_TIMES.get(text) or datetime.fromisoformat(text)


def _typed(raw: dict[str, Any]) -> dict[str, Any]:
    row = dict(raw)
    for key in _TIMES:
        if isinstance(row.get(key), str):
            row[key] = _time(row[key])
    for key in _IDS:
        if isinstance(row.get(key), str):
            row[key] = uuid.UUID(row[key])
    if isinstance(due := row.get("due_date"), str):
        row["due_date"] = _INFINITE_DATES.get(due) or date.fromisoformat(due)
    return row


def event_object(data: dict[str, Any]) -> dict[str, Any]:
    if "object" in data:
        return data["object"]
    if "credit" in data:  # a credit entry, and the balance it left
        row = _typed(data["credit"])
        return {**credit_entry_out(row).model_dump(mode="json"),
                "balance": format_minor(row["balance"], row["currency"])}
    if "transaction" in data:  # the commonest event, shaped without a model (docs/EVENTS.md)
        raw = data["transaction"]  # ids already as the API writes them; times as PostgreSQL
        return transaction_json({**raw, "created_at": iso_z(_time(raw["created_at"])),
                                 "payment_date": iso_z(_time(raw["payment_date"]))})
    return invoice_out(_typed(data["invoice"])).model_dump(mode="json")


def _loaded(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def event_json(row: Any) -> dict[str, Any]:
    """An event row as the API shows it: EventOut's fields in its order, as plain values."""
    return {"id": row["id"], "type": row["type"], "created_at": row["created_at"],
            "invoice_id": row["invoice_id"],
            "data": {"object": event_object(_loaded(row["data"]))},
            "previous": _loaded(row["previous"])}


def event_out(row: Any) -> EventOut:
    return EventOut.model_construct(**event_json(row))


def event_body(row: Any) -> bytes:
    """The bytes sent to endpoints: the same on every attempt, so the same signature
    input for the same event and timestamp. Byte for byte event_out()'s JSON, encoded from
    plain values (tests/unit/test_event_body.py): a quarter of the model's cost, on every
    delivery."""
    return json_body(event_json(row))
